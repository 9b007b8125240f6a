using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace EdgeViT.Capture;

/// <summary>Camera pixel-format conversions to packed RGB24.</summary>
public static class PixelFormats
{
    // BT.601 "limited"/studio range (Y 16..235, Cb/Cr 16..240), what UVC cameras send for YUYV:
    //   R = 255/219 (Y-16)                         + 2(1-Kr) 255/224 (V-128)
    //   G = 255/219 (Y-16) - 2Kb(1-Kb)/Kg 255/224 (U-128) - 2Kr(1-Kr)/Kg 255/224 (V-128)
    //   B = 255/219 (Y-16) + 2(1-Kb) 255/224 (U-128)
    // with Kr = 0.299, Kb = 0.114, Kg = 1 - Kr - Kb; evaluated in 16.16 fixed point with rounding.
    public const double Kr = 0.299, Kb = 0.114, Kg = 1 - Kr - Kb;
    public const double YScale = 255.0 / 219.0;
    public const double CScale = 255.0 / 224.0;
    public const double RFromV = 2 * (1 - Kr) * CScale;            // 1.596027
    public const double GFromU = 2 * Kb * (1 - Kb) / Kg * CScale;  // 0.391762
    public const double GFromV = 2 * Kr * (1 - Kr) / Kg * CScale;  // 0.812968
    public const double BFromU = 2 * (1 - Kb) * CScale;            // 2.017232

    private const int Shift = 16;
    private const int Half = 1 << (Shift - 1);
    private const int CY = (int)(YScale * (1 << Shift) + 0.5);
    private const int CRV = (int)(RFromV * (1 << Shift) + 0.5);
    private const int CGU = (int)(GFromU * (1 << Shift) + 0.5);
    private const int CGV = (int)(GFromV * (1 << Shift) + 0.5);
    private const int CBU = (int)(BFromU * (1 << Shift) + 0.5);

    /// <summary>
    /// Converts packed YUYV 4:2:2 (Y0 U Y1 V per pixel pair; rows of <paramref name="stride"/> bytes, which may
    /// include padding) to tightly packed RGB24 (width*3 bytes per row) with BT.601 limited-range coefficients.
    /// </summary>
    /// <exception cref="ArgumentException">Odd or non-positive width, stride below width*2, buffers too small.</exception>
    public static void YuyvToRgb24(ReadOnlySpan<byte> yuyv, int width, int height, int stride, Span<byte> rgb)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"YUYV size must be positive (got {width}x{height})");
        if ((width & 1) != 0) throw new ArgumentException($"YUYV width must be even: pixels come in pairs sharing U and V (got {width})", nameof(width));
        if (stride < width * 2) throw new ArgumentException($"YUYV stride {stride} is less than width*2 = {width * 2}", nameof(stride));
        long need = (long)(height - 1) * stride + width * 2;
        if (yuyv.Length < need) throw new ArgumentException($"YUYV buffer holds {yuyv.Length} bytes, {width}x{height} stride {stride} needs {need}", nameof(yuyv));
        if (rgb.Length < (long)width * height * 3) throw new ArgumentException($"RGB buffer holds {rgb.Length} bytes, {width}x{height} needs {(long)width * height * 3}", nameof(rgb));

        ref byte src0 = ref MemoryMarshal.GetReference(yuyv);
        ref byte dst = ref MemoryMarshal.GetReference(rgb);
        int pairs = width / 2;
        for (int y = 0; y < height; y++)
        {
            ref byte s = ref Unsafe.Add(ref src0, (nint)y * stride);
            ref byte d = ref Unsafe.Add(ref dst, (nint)y * width * 3);
            for (int p = 0; p < pairs; p++)
            {
                int y0 = (Unsafe.Add(ref s, 0) - 16) * CY + Half;
                int u = Unsafe.Add(ref s, 1) - 128;
                int y1 = (Unsafe.Add(ref s, 2) - 16) * CY + Half;
                int v = Unsafe.Add(ref s, 3) - 128;
                int r = CRV * v, g = -CGU * u - CGV * v, b = CBU * u;
                Unsafe.Add(ref d, 0) = Clamp(y0 + r);
                Unsafe.Add(ref d, 1) = Clamp(y0 + g);
                Unsafe.Add(ref d, 2) = Clamp(y0 + b);
                Unsafe.Add(ref d, 3) = Clamp(y1 + r);
                Unsafe.Add(ref d, 4) = Clamp(y1 + g);
                Unsafe.Add(ref d, 5) = Clamp(y1 + b);
                s = ref Unsafe.Add(ref s, 4);
                d = ref Unsafe.Add(ref d, 6);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte Clamp(int fixedPoint) => (byte)Math.Clamp(fixedPoint >> Shift, 0, 255);

    /// <summary>Copies RGB24 rows of <paramref name="stride"/> bytes (with padding) into tightly packed RGB24.</summary>
    public static void CopyRgb24(ReadOnlySpan<byte> source, int width, int height, int stride, Span<byte> rgb)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"RGB24 size must be positive (got {width}x{height})");
        int row = width * 3;
        if (stride < row) throw new ArgumentException($"RGB24 stride {stride} is less than width*3 = {row}", nameof(stride));
        long need = (long)(height - 1) * stride + row;
        if (source.Length < need) throw new ArgumentException($"RGB24 buffer holds {source.Length} bytes, {width}x{height} stride {stride} needs {need}", nameof(source));
        if (rgb.Length < (long)row * height) throw new ArgumentException($"RGB buffer holds {rgb.Length} bytes, {width}x{height} needs {(long)row * height}", nameof(rgb));
        if (stride == row) { source[..(row * height)].CopyTo(rgb); return; }
        for (int y = 0; y < height; y++) source.Slice(y * stride, row).CopyTo(rgb.Slice(y * row, row));
    }
}
