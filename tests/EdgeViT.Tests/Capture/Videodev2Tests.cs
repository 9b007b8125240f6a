using System.Runtime.InteropServices;
using EdgeViT.Capture;
using EdgeViT.Capture.Interop;
using Xunit;
using static EdgeViT.Capture.Interop.V4l2;

namespace EdgeViT.Tests.Capture;

/// <summary>The interop declarations against the kernel's numbers (64-bit Linux, as on arm64 Pi/Jetson and x86-64).</summary>
public sealed unsafe class Videodev2Tests
{
    [Fact]
    public void IoctlNumbersMatchTheKernel()
    {
        Assert.Equal(8, IntPtr.Size);   // the values below are the LP64 ones
        Assert.Equal((nuint)0x80685600, VIDIOC_QUERYCAP);
        Assert.Equal((nuint)0xC0405602, VIDIOC_ENUM_FMT);
        Assert.Equal((nuint)0xC0D05604, VIDIOC_G_FMT);
        Assert.Equal((nuint)0xC0D05605, VIDIOC_S_FMT);
        Assert.Equal((nuint)0xC0145608, VIDIOC_REQBUFS);
        Assert.Equal((nuint)0xC0585609, VIDIOC_QUERYBUF);
        Assert.Equal((nuint)0xC058560F, VIDIOC_QBUF);
        Assert.Equal((nuint)0xC0585611, VIDIOC_DQBUF);
        Assert.Equal((nuint)0x40045612, VIDIOC_STREAMON);
        Assert.Equal((nuint)0x40045613, VIDIOC_STREAMOFF);
        Assert.Equal((nuint)0xC0CC5615, VIDIOC_G_PARM);
        Assert.Equal((nuint)0xC0CC5616, VIDIOC_S_PARM);
        Assert.Equal((nuint)0xC02C564A, VIDIOC_ENUM_FRAMESIZES);
        Assert.Equal((nuint)0x5600, Ioc.IO('V', 0));
    }

    [Fact]
    public void StructSizesMatchTheKernel()
    {
        Assert.Equal(104, sizeof(v4l2_capability));
        Assert.Equal(104, Marshal.SizeOf<v4l2_capability>());
        Assert.Equal(64, sizeof(v4l2_fmtdesc));
        Assert.Equal(48, sizeof(v4l2_pix_format));
        Assert.Equal(208, sizeof(v4l2_format));
        Assert.Equal(208, Marshal.SizeOf<v4l2_format>());
        Assert.Equal(20, sizeof(v4l2_requestbuffers));
        Assert.Equal(16, sizeof(timeval));
        Assert.Equal(16, sizeof(v4l2_timecode));
        Assert.Equal(88, sizeof(v4l2_buffer));
        Assert.Equal(88, Marshal.SizeOf<v4l2_buffer>());
        Assert.Equal(40, sizeof(v4l2_captureparm));
        Assert.Equal(204, sizeof(v4l2_streamparm));
        Assert.Equal(44, sizeof(v4l2_frmsizeenum));
    }

    [Fact]
    public void FieldOffsetsMatchTheKernel()
    {
        Assert.Equal(80, (int)Marshal.OffsetOf<v4l2_capability>(nameof(v4l2_capability.version)));
        Assert.Equal(84, (int)Marshal.OffsetOf<v4l2_capability>(nameof(v4l2_capability.capabilities)));
        Assert.Equal(88, (int)Marshal.OffsetOf<v4l2_capability>(nameof(v4l2_capability.device_caps)));
        Assert.Equal(44, (int)Marshal.OffsetOf<v4l2_fmtdesc>(nameof(v4l2_fmtdesc.pixelformat)));
        Assert.Equal(8, (int)Marshal.OffsetOf<v4l2_format>(nameof(v4l2_format.fmt)));   // the union is pointer-aligned
        Assert.Equal(24, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.timestamp)));
        Assert.Equal(40, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.timecode)));
        Assert.Equal(56, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.sequence)));
        Assert.Equal(60, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.memory)));
        Assert.Equal(64, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.m)));
        Assert.Equal(72, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.length)));
        Assert.Equal(80, (int)Marshal.OffsetOf<v4l2_buffer>(nameof(v4l2_buffer.request_fd)));
        Assert.Equal(4, (int)Marshal.OffsetOf<v4l2_streamparm>(nameof(v4l2_streamparm.parm)));
        Assert.Equal(12, (int)Marshal.OffsetOf<v4l2_frmsizeenum>(nameof(v4l2_frmsizeenum.size)));
    }

    [Fact]
    public void FourCcsRoundTrip()
    {
        Assert.Equal(0x56595559u, V4L2_PIX_FMT_YUYV);   // 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24
        Assert.Equal(0x47504A4Du, V4L2_PIX_FMT_MJPEG);
        Assert.Equal(0x33424752u, V4L2_PIX_FMT_RGB24);
        Assert.Equal("MJPG", FourCcToString(V4L2_PIX_FMT_MJPEG));
        Assert.Equal("Y10", FourCcToString(FourCc("Y10 ")));
    }
}
