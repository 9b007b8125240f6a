#pragma warning disable CS8981 // the kernel's lower-case struct names are kept on purpose
using System.Runtime.InteropServices;

namespace EdgeViT.Capture.Interop;

// Structures and ioctls of <linux/videodev2.h> that the capture source uses, laid out as the kernel's UAPI.
// Pointer-sized members (the timeval of v4l2_buffer, its m union, the pointer-holding v4l2_window inside the
// v4l2_format union) are nint/nuint so the same declarations give the LP64 layout (x86-64, arm64: the sizes the
// tests pin) and the classic ILP32 one (armhf). Ioctl numbers are computed from the structure sizes with the
// kernel's _IOR/_IOW/_IOWR macros, never written as magic numbers.

/// <summary>The asm-generic _IOC encoding (x86, arm, arm64, riscv): dir:2 | size:14 | type:8 | nr:8.</summary>
internal static class Ioc
{
    public const int NrBits = 8, TypeBits = 8, SizeBits = 14, DirBits = 2;
    public const int NrShift = 0, TypeShift = NrShift + NrBits, SizeShift = TypeShift + TypeBits, DirShift = SizeShift + SizeBits;
    public const uint None = 0, Write = 1, Read = 2;

    public static nuint IOC(uint dir, char type, uint nr, int size)
    {
        if ((uint)size >= 1u << SizeBits) throw new ArgumentOutOfRangeException(nameof(size), size, "ioctl argument too large for _IOC");
        return (nuint)((dir << DirShift) | ((uint)size << SizeShift) | ((uint)type << TypeShift) | (nr << NrShift));
    }

    public static nuint IO(char type, uint nr) => IOC(None, type, nr, 0);
    public static unsafe nuint IOR<T>(char type, uint nr) where T : unmanaged => IOC(Read, type, nr, sizeof(T));
    public static unsafe nuint IOW<T>(char type, uint nr) where T : unmanaged => IOC(Write, type, nr, sizeof(T));
    public static unsafe nuint IOWR<T>(char type, uint nr) where T : unmanaged => IOC(Read | Write, type, nr, sizeof(T));
}

internal static class V4l2
{
    public static readonly nuint VIDIOC_QUERYCAP = Ioc.IOR<v4l2_capability>('V', 0);
    public static readonly nuint VIDIOC_ENUM_FMT = Ioc.IOWR<v4l2_fmtdesc>('V', 2);
    public static readonly nuint VIDIOC_G_FMT = Ioc.IOWR<v4l2_format>('V', 4);
    public static readonly nuint VIDIOC_S_FMT = Ioc.IOWR<v4l2_format>('V', 5);
    public static readonly nuint VIDIOC_REQBUFS = Ioc.IOWR<v4l2_requestbuffers>('V', 8);
    public static readonly nuint VIDIOC_QUERYBUF = Ioc.IOWR<v4l2_buffer>('V', 9);
    public static readonly nuint VIDIOC_QBUF = Ioc.IOWR<v4l2_buffer>('V', 15);
    public static readonly nuint VIDIOC_DQBUF = Ioc.IOWR<v4l2_buffer>('V', 17);
    public static readonly nuint VIDIOC_STREAMON = Ioc.IOW<int>('V', 18);
    public static readonly nuint VIDIOC_STREAMOFF = Ioc.IOW<int>('V', 19);
    public static readonly nuint VIDIOC_G_PARM = Ioc.IOWR<v4l2_streamparm>('V', 21);
    public static readonly nuint VIDIOC_S_PARM = Ioc.IOWR<v4l2_streamparm>('V', 22);
    public static readonly nuint VIDIOC_ENUM_FRAMESIZES = Ioc.IOWR<v4l2_frmsizeenum>('V', 74);

    // enum v4l2_buf_type / v4l2_memory / v4l2_field / v4l2_frmsizetypes
    public const uint V4L2_BUF_TYPE_VIDEO_CAPTURE = 1;
    public const uint V4L2_MEMORY_MMAP = 1;
    public const uint V4L2_FIELD_ANY = 0, V4L2_FIELD_NONE = 1;
    public const uint V4L2_FRMSIZE_TYPE_DISCRETE = 1, V4L2_FRMSIZE_TYPE_CONTINUOUS = 2, V4L2_FRMSIZE_TYPE_STEPWISE = 3;

    // v4l2_capability.capabilities / device_caps
    public const uint V4L2_CAP_VIDEO_CAPTURE = 0x00000001;
    public const uint V4L2_CAP_VIDEO_OUTPUT = 0x00000002;
    public const uint V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000;
    public const uint V4L2_CAP_VIDEO_M2M_MPLANE = 0x00004000;
    public const uint V4L2_CAP_VIDEO_M2M = 0x00008000;
    public const uint V4L2_CAP_META_CAPTURE = 0x00800000;
    public const uint V4L2_CAP_READWRITE = 0x01000000;
    public const uint V4L2_CAP_STREAMING = 0x04000000;
    public const uint V4L2_CAP_DEVICE_CAPS = 0x80000000;

    // v4l2_fmtdesc.flags
    public const uint V4L2_FMT_FLAG_COMPRESSED = 0x0001, V4L2_FMT_FLAG_EMULATED = 0x0002;
    // v4l2_captureparm.capability
    public const uint V4L2_CAP_TIMEPERFRAME = 0x1000;
    // v4l2_buffer.flags
    public const uint V4L2_BUF_FLAG_MAPPED = 0x0001, V4L2_BUF_FLAG_QUEUED = 0x0002, V4L2_BUF_FLAG_DONE = 0x0004, V4L2_BUF_FLAG_ERROR = 0x0040;

    /// <summary>v4l2_fourcc(a, b, c, d).</summary>
    public static uint FourCc(char a, char b, char c, char d) => (uint)a | (uint)b << 8 | (uint)c << 16 | (uint)d << 24;

    public static uint FourCc(string s) => s.Length == 4 ? FourCc(s[0], s[1], s[2], s[3]) : throw new ArgumentException($"fourcc must be 4 characters: '{s}'");

    public static string FourCcToString(uint f)
    {
        Span<char> c = stackalloc char[4];
        for (int i = 0; i < 4; i++)
        {
            char ch = (char)(f >> (8 * i) & 0xFF);
            c[i] = ch is >= ' ' and <= '~' ? ch : '?';
        }
        return new string(c).TrimEnd();
    }

    public static readonly uint V4L2_PIX_FMT_YUYV = FourCc('Y', 'U', 'Y', 'V');
    public static readonly uint V4L2_PIX_FMT_MJPEG = FourCc('M', 'J', 'P', 'G');
    public static readonly uint V4L2_PIX_FMT_JPEG = FourCc('J', 'P', 'E', 'G');
    public static readonly uint V4L2_PIX_FMT_RGB24 = FourCc('R', 'G', 'B', '3');

    /// <summary>Reads a NUL-terminated fixed char array (driver, card, description...).</summary>
    public static unsafe string CString(byte* p, int max)
    {
        int n = 0;
        while (n < max && p[n] != 0) n++;
        return System.Text.Encoding.UTF8.GetString(p, n);
    }

    public static unsafe void SetCString(byte* p, int max, string s)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(s);
        int n = Math.Min(bytes.Length, max - 1);
        for (int i = 0; i < max; i++) p[i] = i < n ? bytes[i] : (byte)0;
    }
}

/// <summary>struct v4l2_capability: 104 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_capability
{
    public fixed byte driver[16];
    public fixed byte card[32];
    public fixed byte bus_info[32];
    public uint version;
    public uint capabilities;
    public uint device_caps;
    public fixed uint reserved[3];
}

/// <summary>struct v4l2_fmtdesc: 64 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_fmtdesc
{
    public uint index;
    public uint type;
    public uint flags;
    public fixed byte description[32];
    public uint pixelformat;
    public uint mbus_code;
    public fixed uint reserved[3];
}

/// <summary>struct v4l2_pix_format: 48 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_pix_format
{
    public uint width;
    public uint height;
    public uint pixelformat;
    public uint field;
    public uint bytesperline;
    public uint sizeimage;
    public uint colorspace;
    public uint priv;
    public uint flags;
    public uint ycbcr_enc;      // union { ycbcr_enc; hsv_enc; }
    public uint quantization;
    public uint xfer_func;
}

/// <summary>
/// The fmt union of v4l2_format: raw_data[200], but pointer-aligned because one member (v4l2_window) holds
/// pointers, so the union starts at offset 8 on 64-bit and v4l2_format is 208 bytes (204 on 32-bit).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 200)]
internal struct v4l2_format_union
{
    [FieldOffset(0)] public v4l2_pix_format pix;
    [FieldOffset(0)] private nint _pointerAlignment;
}

/// <summary>struct v4l2_format: 208 bytes on 64-bit.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_format
{
    public uint type;
    public v4l2_format_union fmt;
}

/// <summary>struct v4l2_requestbuffers: 20 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_requestbuffers
{
    public uint count;
    public uint type;
    public uint memory;
    public uint capabilities;
    public byte flags;
    public fixed byte reserved[3];
}

/// <summary>struct timeval (time_t and suseconds_t are longs).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct timeval
{
    public nint tv_sec;
    public nint tv_usec;
}

/// <summary>struct v4l2_timecode: 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_timecode
{
    public uint type;
    public uint flags;
    public byte frames;
    public byte seconds;
    public byte minutes;
    public byte hours;
    public fixed byte userbits[4];
}

/// <summary>The m union of v4l2_buffer: { __u32 offset; unsigned long userptr; struct v4l2_plane *planes; __s32 fd; }.</summary>
[StructLayout(LayoutKind.Explicit)]
internal struct v4l2_buffer_m
{
    [FieldOffset(0)] public uint offset;
    [FieldOffset(0)] public nuint userptr;
    [FieldOffset(0)] public nint planes;
    [FieldOffset(0)] public int fd;
}

/// <summary>struct v4l2_buffer: 88 bytes on 64-bit (padding after field, and at the end, to 8-byte alignment).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_buffer
{
    public uint index;
    public uint type;
    public uint bytesused;
    public uint flags;
    public uint field;
    public timeval timestamp;
    public v4l2_timecode timecode;
    public uint sequence;
    public uint memory;
    public v4l2_buffer_m m;
    public uint length;
    public uint reserved2;
    public uint request_fd;   // union { __s32 request_fd; __u32 reserved; }
}

/// <summary>struct v4l2_fract.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_fract
{
    public uint numerator;
    public uint denominator;
}

/// <summary>struct v4l2_captureparm: 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_captureparm
{
    public uint capability;
    public uint capturemode;
    public v4l2_fract timeperframe;
    public uint extendedmode;
    public uint readbuffers;
    public fixed uint reserved[4];
}

/// <summary>The parm union of v4l2_streamparm: raw_data[200], no pointers, so 4-byte aligned.</summary>
[StructLayout(LayoutKind.Explicit, Size = 200)]
internal struct v4l2_streamparm_union
{
    [FieldOffset(0)] public v4l2_captureparm capture;
}

/// <summary>struct v4l2_streamparm: 204 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_streamparm
{
    public uint type;
    public v4l2_streamparm_union parm;
}

[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_frmsize_discrete
{
    public uint width;
    public uint height;
}

[StructLayout(LayoutKind.Sequential)]
internal struct v4l2_frmsize_stepwise
{
    public uint min_width;
    public uint max_width;
    public uint step_width;
    public uint min_height;
    public uint max_height;
    public uint step_height;
}

[StructLayout(LayoutKind.Explicit, Size = 24)]
internal struct v4l2_frmsize_union
{
    [FieldOffset(0)] public v4l2_frmsize_discrete discrete;
    [FieldOffset(0)] public v4l2_frmsize_stepwise stepwise;
}

/// <summary>struct v4l2_frmsizeenum: 44 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct v4l2_frmsizeenum
{
    public uint index;
    public uint pixel_format;
    public uint type;
    public v4l2_frmsize_union size;
    public fixed uint reserved[2];
}
