using System.Runtime.InteropServices;
using EdgeViT.Capture;
using EdgeViT.Capture.Interop;
using static EdgeViT.Capture.Interop.V4l2;

namespace EdgeViT.Tests.Capture;

/// <summary>
/// A simulated UVC camera behind the V4L2 system-call seam: answers QUERYCAP, ENUM_FMT, ENUM_FRAMESIZES,
/// S_FMT, G/S_PARM, REQBUFS, QUERYBUF, mmap, QBUF/DQBUF, STREAMON/OFF and poll the way uvcvideo does, with
/// frames from a generator, and can be unplugged mid-stream and plugged back in.
/// </summary>
internal sealed unsafe class FakeCamera : IV4l2Io, IDisposable
{
    public string Driver { get; set; } = "uvcvideo";
    public string Card { get; set; } = "Fake UVC Camera";
    public uint DeviceCaps { get; set; } = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_STREAMING;
    public List<(string FourCc, string Description)> Formats { get; set; } = [("YUYV", "YUYV 4:2:2"), ("MJPG", "Motion-JPEG")];
    public List<(int Width, int Height)> Sizes { get; set; } = [(320, 240), (640, 480), (1280, 720)];
    public int StridePadding { get; set; }
    public bool CanSetFrameRate { get; set; } = true;
    public int OpenErrno { get; set; }
    /// <summary>The camera stops filling buffers (poll times out, DQBUF says EAGAIN).</summary>
    public bool Stalled { get; set; }
    /// <summary>Fills a mapped buffer for frame n (1-based); returns bytesused.</summary>
    public Func<Span<byte>, long, int>? Generator { get; set; }
    /// <summary>Driver sequence increment per frame (2 simulates the driver dropping every other frame).</summary>
    public uint SequenceStep { get; set; } = 1;
    /// <summary>After this many frames the camera is unplugged (next DQBUF ENODEV, then poll POLLERR); 0 never.</summary>
    public int UnplugAfterFrames { get; set; }
    /// <summary>Opens that fail with ENOENT after an unplug before the camera is back.</summary>
    public int AbsentOpensAfterUnplug { get; set; }
    /// <summary>Buffer indices to flag V4L2_BUF_FLAG_ERROR on their next dequeue.</summary>
    public HashSet<long> ErrorFrames { get; } = [];

    public int OpenCalls, Closes, Mapped, StreamOns;
    public uint Fourcc, Width, Height, BytesPerLine, SizeImage;
    public v4l2_fract TimePerFrame = new() { numerator = 1, denominator = 30 };
    public long Delivered;
    public bool IsOpen => _open;

    private readonly Queue<uint> _queued = new();
    private (nint Address, uint Length)[] _buffers = [];
    private bool _streaming, _unplugged, _open;
    private int _absentLeft;

    public int Open(string path)
    {
        OpenCalls++;
        if (_unplugged)
        {
            if (_absentLeft-- > 0) return -Libc.ENOENT;
            _unplugged = false;
        }
        if (OpenErrno != 0) return -OpenErrno;
        if (_open) return -Libc.EBUSY;
        _open = true;
        return 42;
    }

    public void Close(int fd)
    {
        Closes++;
        _open = false;
        _streaming = false;
        _queued.Clear();
    }

    public int Ioctl(int fd, nuint request, void* arg)
    {
        if (fd != 42 || !_open) return Libc.EBADF;
        if (_unplugged) return Libc.ENODEV;
        if (request == VIDIOC_QUERYCAP)
        {
            var c = (v4l2_capability*)arg;
            *c = default;
            SetCString(c->driver, 16, Driver);
            SetCString(c->card, 32, Card);
            SetCString(c->bus_info, 32, "usb-0000:00:14.0-1");
            c->capabilities = DeviceCaps | V4L2_CAP_DEVICE_CAPS;
            c->device_caps = DeviceCaps;
            return 0;
        }
        if (request == VIDIOC_ENUM_FMT)
        {
            var d = (v4l2_fmtdesc*)arg;
            if (d->type != V4L2_BUF_TYPE_VIDEO_CAPTURE || d->index >= Formats.Count) return Libc.EINVAL;
            var (fourcc, description) = Formats[(int)d->index];
            d->pixelformat = FourCc(fourcc);
            SetCString(d->description, 32, description);
            d->flags = fourcc == "MJPG" ? V4L2_FMT_FLAG_COMPRESSED : 0;
            return 0;
        }
        if (request == VIDIOC_ENUM_FRAMESIZES)
        {
            var s = (v4l2_frmsizeenum*)arg;
            if (s->index >= Sizes.Count || !Formats.Any(f => FourCc(f.FourCc) == s->pixel_format)) return Libc.EINVAL;
            s->type = V4L2_FRMSIZE_TYPE_DISCRETE;
            s->size.discrete.width = (uint)Sizes[(int)s->index].Width;
            s->size.discrete.height = (uint)Sizes[(int)s->index].Height;
            return 0;
        }
        if (request == VIDIOC_S_FMT || request == VIDIOC_G_FMT)
        {
            var f = (v4l2_format*)arg;
            if (f->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return Libc.EINVAL;
            if (request == VIDIOC_S_FMT)
            {
                if (_streaming) return Libc.EBUSY;
                uint want = f->fmt.pix.pixelformat;
                Fourcc = Formats.Any(x => FourCc(x.FourCc) == want) ? want : FourCc(Formats[0].FourCc);
                // uvcvideo picks the closest frame size it has.
                var best = Sizes.OrderBy(s => Math.Abs(s.Width - (int)f->fmt.pix.width) + Math.Abs(s.Height - (int)f->fmt.pix.height)).First();
                (Width, Height) = ((uint)best.Width, (uint)best.Height);
                BytesPerLine = Fourcc == FourCc("YUYV") ? Width * 2 + (uint)StridePadding : Fourcc == FourCc("RGB3") ? Width * 3 + (uint)StridePadding : 0;
                SizeImage = BytesPerLine > 0 ? BytesPerLine * Height : Width * Height * 2;
            }
            f->fmt.pix = new v4l2_pix_format
            {
                width = Width, height = Height, pixelformat = Fourcc, field = V4L2_FIELD_NONE,
                bytesperline = BytesPerLine, sizeimage = SizeImage,
            };
            return 0;
        }
        if (request == VIDIOC_G_PARM || request == VIDIOC_S_PARM)
        {
            var p = (v4l2_streamparm*)arg;
            if (p->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return Libc.EINVAL;
            if (request == VIDIOC_S_PARM)
            {
                if (!CanSetFrameRate) return Libc.EINVAL;
                TimePerFrame = p->parm.capture.timeperframe;
            }
            p->parm.capture = default;
            p->parm.capture.capability = CanSetFrameRate ? V4L2_CAP_TIMEPERFRAME : 0;
            p->parm.capture.timeperframe = TimePerFrame;
            return 0;
        }
        if (request == VIDIOC_REQBUFS)
        {
            var r = (v4l2_requestbuffers*)arg;
            if (r->memory != V4L2_MEMORY_MMAP || r->type != V4L2_BUF_TYPE_VIDEO_CAPTURE) return Libc.EINVAL;
            FreeBuffers();
            uint n = Math.Min(r->count, 8);
            _buffers = new (nint, uint)[n];
            for (int i = 0; i < n; i++) _buffers[i] = ((nint)NativeMemory.AllocZeroed(SizeImage), SizeImage);
            r->count = n;
            return 0;
        }
        if (request == VIDIOC_QUERYBUF)
        {
            var b = (v4l2_buffer*)arg;
            if (b->index >= _buffers.Length) return Libc.EINVAL;
            b->length = _buffers[b->index].Length;
            b->m.offset = b->index * 0x1000u;
            return 0;
        }
        if (request == VIDIOC_QBUF)
        {
            var b = (v4l2_buffer*)arg;
            if (b->index >= _buffers.Length || _queued.Contains(b->index)) return Libc.EINVAL;
            _queued.Enqueue(b->index);
            return 0;
        }
        if (request == VIDIOC_DQBUF)
        {
            var b = (v4l2_buffer*)arg;
            if (UnplugAfterFrames > 0 && Delivered >= UnplugAfterFrames)
            {
                _unplugged = true;
                _absentLeft = AbsentOpensAfterUnplug;
                UnplugAfterFrames = 0;
                return Libc.ENODEV;
            }
            if (!_streaming || _queued.Count == 0 || Stalled) return Libc.EAGAIN;
            uint index = _queued.Dequeue();
            long n = ++Delivered;
            var (address, length) = _buffers[index];
            int used = Generator?.Invoke(new Span<byte>((void*)address, (int)length), n) ?? (int)length;
            *b = default;
            b->index = index;
            b->type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b->memory = V4L2_MEMORY_MMAP;
            b->bytesused = (uint)used;
            b->length = length;
            b->sequence = (uint)(n * SequenceStep);
            b->flags = V4L2_BUF_FLAG_MAPPED | V4L2_BUF_FLAG_DONE | (ErrorFrames.Contains(n) ? V4L2_BUF_FLAG_ERROR : 0);
            return 0;
        }
        if (request == VIDIOC_STREAMON)
        {
            if (_queued.Count == 0) return Libc.EINVAL;
            _streaming = true;
            StreamOns++;
            return 0;
        }
        if (request == VIDIOC_STREAMOFF)
        {
            _streaming = false;
            _queued.Clear();
            return 0;
        }
        return Libc.ENOTTY;
    }

    public nint Mmap(int fd, nuint length, long offset, out int errno)
    {
        int index = (int)(offset / 0x1000);
        if (index >= _buffers.Length || length != _buffers[index].Length)
        {
            errno = Libc.EINVAL;
            return 0;
        }
        errno = 0;
        Mapped++;
        return _buffers[index].Address;
    }

    public void Munmap(nint address, nuint length) => Mapped--;

    public int Poll(int fd, int timeoutMs, out short revents)
    {
        revents = 0;
        if (!_open) { revents = Libc.POLLNVAL; return 1; }
        if (_unplugged) { revents = Libc.POLLERR | Libc.POLLHUP; return 1; }
        if (_streaming && _queued.Count > 0 && !Stalled) { revents = Libc.POLLIN; return 1; }
        Thread.Sleep(Math.Min(timeoutMs, 5));
        return 0;
    }

    private void FreeBuffers()
    {
        foreach (var (address, _) in _buffers) NativeMemory.Free((void*)address);
        _buffers = [];
    }

    public void Dispose() => FreeBuffers();
}
