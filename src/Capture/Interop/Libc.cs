using System.Runtime.InteropServices;

namespace EdgeViT.Capture.Interop;

/// <summary>
/// The few libc calls the V4L2 source needs. Constants are the Linux values shared by x86-64, arm64 and armhf
/// (the asm-generic ones); other architectures (mips, powerpc, alpha) differ and are not supported.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int O_RDWR = 2;
    public const int O_NONBLOCK = 0x800;   // 04000
    public const int O_CLOEXEC = 0x80000;  // 02000000

    public const int PROT_READ = 1, PROT_WRITE = 2;
    public const int MAP_SHARED = 1;
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 0x001, POLLPRI = 0x002, POLLERR = 0x008, POLLHUP = 0x010, POLLNVAL = 0x020;

    public const int EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, ENXIO = 6, EBADF = 9, EAGAIN = 11, ENOMEM = 12,
        EACCES = 13, EBUSY = 16, ENODEV = 19, EINVAL = 22, ENOTTY = 25, ENOSPC = 28, EPIPE = 32, ENOSYS = 38;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int fd;
        public short events;
        public short revents;
    }

    [LibraryImport(Lib, EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int open(string path, int flags);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int close(int fd);

    /// <summary>ioctl(int fd, unsigned long request, void *arg): the request is an unsigned long (nuint).</summary>
    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* arg);

    /// <summary>mmap with a native-sized off_t (64-bit on LP64; the classic 32-bit symbol on armhf).</summary>
    [LibraryImport(Lib, EntryPoint = "mmap", SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport(Lib, EntryPoint = "munmap", SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);

    [LibraryImport(Lib, EntryPoint = "poll", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint nfds, int timeout);

    /// <summary>"No such device (ENODEV)": strerror text plus the symbolic name when known.</summary>
    public static string Describe(int errno)
    {
        string name = errno switch
        {
            EPERM => "EPERM", ENOENT => "ENOENT", EINTR => "EINTR", EIO => "EIO", ENXIO => "ENXIO", EBADF => "EBADF",
            EAGAIN => "EAGAIN", ENOMEM => "ENOMEM", EACCES => "EACCES", EBUSY => "EBUSY", ENODEV => "ENODEV",
            EINVAL => "EINVAL", ENOTTY => "ENOTTY", ENOSPC => "ENOSPC", EPIPE => "EPIPE", ENOSYS => "ENOSYS", _ => $"errno {errno}",
        };
        return $"{Marshal.GetPInvokeErrorMessage(errno)} ({name})";
    }
}
