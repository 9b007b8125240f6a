using EdgeViT.Capture.Interop;

namespace EdgeViT.Capture;

/// <summary>
/// The system calls the V4L2 source makes, behind a seam so tests can stand in a simulated camera. Every call
/// reports failure as a positive errno instead of throwing.
/// </summary>
internal unsafe interface IV4l2Io
{
    /// <summary>Opens the device node (read/write, non-blocking, close-on-exec): fd &gt;= 0, or -errno.</summary>
    int Open(string path);

    void Close(int fd);

    /// <summary>0, or the errno (EINTR is retried inside).</summary>
    int Ioctl(int fd, nuint request, void* arg);

    /// <summary>Maps a driver buffer shared read/write: its address, or 0 with <paramref name="errno"/> set.</summary>
    nint Mmap(int fd, nuint length, long offset, out int errno);

    void Munmap(nint address, nuint length);

    /// <summary>Waits for POLLIN on fd: &gt; 0 ready (revents set), 0 timed out, or -errno.</summary>
    int Poll(int fd, int timeoutMs, out short revents);
}

/// <summary>The real thing: libc.</summary>
internal sealed unsafe class LibcV4l2Io : IV4l2Io
{
    public static readonly LibcV4l2Io Instance = new();

    public int Open(string path)
    {
        int fd = Libc.open(path, Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC);
        return fd >= 0 ? fd : -System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
    }

    public void Close(int fd) => Libc.close(fd);

    public int Ioctl(int fd, nuint request, void* arg)
    {
        while (true)
        {
            if (Libc.ioctl(fd, request, arg) != -1) return 0;
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR) return errno;
        }
    }

    public nint Mmap(int fd, nuint length, long offset, out int errno)
    {
        nint p = Libc.mmap(0, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, (nint)offset);
        errno = p == Libc.MAP_FAILED ? System.Runtime.InteropServices.Marshal.GetLastPInvokeError() : 0;
        return p == Libc.MAP_FAILED ? 0 : p;
    }

    public void Munmap(nint address, nuint length) => Libc.munmap(address, length);

    public int Poll(int fd, int timeoutMs, out short revents)
    {
        var pfd = new Libc.PollFd { fd = fd, events = Libc.POLLIN };
        while (true)
        {
            int r = Libc.poll(&pfd, 1, timeoutMs);
            if (r >= 0) { revents = pfd.revents; return r; }
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR) { revents = 0; return -errno; }
        }
    }
}
