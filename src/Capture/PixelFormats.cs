using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
    public static void YuyvToRgb24(ReadOnlySpan<byte> yuyv, int width, int height, int stride, Span<byte> rgb) =>
        YuyvToRgb24(yuyv, width, height, stride, rgb, Vector128.IsHardwareAccelerated);

    /// <summary>As above, choosing the path (tests check the vector path against the scalar one).</summary>
    internal static void YuyvToRgb24(ReadOnlySpan<byte> yuyv, int width, int height, int stride, Span<byte> rgb, bool useVectors)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"YUYV size must be positive (got {width}x{height})");
        if ((width & 1) != 0) throw new ArgumentException($"YUYV width must be even: pixels come in pairs sharing U and V (got {width})", nameof(width));
        if (stride < width * 2) throw new ArgumentException($"YUYV stride {stride} is less than width*2 = {width * 2}", nameof(stride));
        long need = (long)(height - 1) * stride + width * 2;
        if (yuyv.Length < need) throw new ArgumentException($"YUYV buffer holds {yuyv.Length} bytes, {width}x{height} stride {stride} needs {need}", nameof(yuyv));
        if (rgb.Length < (long)width * height * 3) throw new ArgumentException($"RGB buffer holds {rgb.Length} bytes, {width}x{height} needs {(long)width * height * 3}", nameof(rgb));

        ref byte src0 = ref MemoryMarshal.GetReference(yuyv);
        ref byte dst = ref MemoryMarshal.GetReference(rgb);
        bool vector = useVectors && Vector128.IsHardwareAccelerated;
        for (int y = 0; y < height; y++)
        {
            ref byte s = ref Unsafe.Add(ref src0, (nint)y * stride);
            ref byte d = ref Unsafe.Add(ref dst, (nint)y * width * 3);
            int x = vector ? YuyvRowVector128(ref s, ref d, width) : 0;
            YuyvRowScalar(ref Unsafe.Add(ref s, x * 2), ref Unsafe.Add(ref d, x * 3), width - x);
        }
    }

    private static void YuyvRowScalar(ref byte s, ref byte d, int width)
    {
        for (int p = 0; p < width / 2; p++)
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

    /// <summary>
    /// 8 pixels (16 YUYV bytes -> 24 RGB bytes) per step with the same 16.16 arithmetic in 32-bit lanes (SSSE3/SSE4.1
    /// on x86, AdvSimd on arm64), so results equal the scalar path's. Returns the pixels done.
    /// </summary>
    private static int YuyvRowVector128(ref byte s, ref byte d, int width)
    {
        const byte Z = 0xFF;   // shuffle index out of range: zero
        var cy = Vector128.Create(CY);
        var half = Vector128.Create(Half);
        var crv = Vector128.Create(CRV);
        var cgu = Vector128.Create(CGU);
        var cgv = Vector128.Create(CGV);
        var cbu = Vector128.Create(CBU);
        var c16 = Vector128.Create(16);
        var c128 = Vector128.Create(128);
        var zero = Vector128<int>.Zero;
        var max = Vector128.Create(255);
        int x = 0;
        for (; x + 8 <= width; x += 8)
        {
            var v = Vector128.LoadUnsafe(ref Unsafe.Add(ref s, x * 2));
            var ya = Vector128.Shuffle(v, Vector128.Create((byte)0, Z, Z, Z, 2, Z, Z, Z, 4, Z, Z, Z, 6, Z, Z, Z)).AsInt32();
            var yb = Vector128.Shuffle(v, Vector128.Create((byte)8, Z, Z, Z, 10, Z, Z, Z, 12, Z, Z, Z, 14, Z, Z, Z)).AsInt32();
            var ua = Vector128.Shuffle(v, Vector128.Create((byte)1, Z, Z, Z, 1, Z, Z, Z, 5, Z, Z, Z, 5, Z, Z, Z)).AsInt32() - c128;
            var ub = Vector128.Shuffle(v, Vector128.Create((byte)9, Z, Z, Z, 9, Z, Z, Z, 13, Z, Z, Z, 13, Z, Z, Z)).AsInt32() - c128;
            var va = Vector128.Shuffle(v, Vector128.Create((byte)3, Z, Z, Z, 3, Z, Z, Z, 7, Z, Z, Z, 7, Z, Z, Z)).AsInt32() - c128;
            var vb = Vector128.Shuffle(v, Vector128.Create((byte)11, Z, Z, Z, 11, Z, Z, Z, 15, Z, Z, Z, 15, Z, Z, Z)).AsInt32() - c128;
            ya = (ya - c16) * cy + half;
            yb = (yb - c16) * cy + half;

            var ra = ClampShift(ya + crv * va, zero, max);
            var rb = ClampShift(yb + crv * vb, zero, max);
            var ga = ClampShift(ya - cgu * ua - cgv * va, zero, max);
            var gb = ClampShift(yb - cgu * ub - cgv * vb, zero, max);
            var ba = ClampShift(ya + cbu * ua, zero, max);
            var bb = ClampShift(yb + cbu * ub, zero, max);

            // Values are 0..255, so truncating narrows are exact: [R0..R7 G0..G7] and [B0..B7 0...].
            var rg = Vector128.Narrow(Vector128.Narrow(ra, rb), Vector128.Narrow(ga, gb)).AsByte();
            var b8 = Vector128.Narrow(Vector128.Narrow(ba, bb), Vector128<short>.Zero).AsByte();
            var out0 = Vector128.Shuffle(rg, Vector128.Create((byte)0, 8, Z, 1, 9, Z, 2, 10, Z, 3, 11, Z, 4, 12, Z, 5))
                     | Vector128.Shuffle(b8, Vector128.Create(Z, Z, 0, Z, Z, 1, Z, Z, 2, Z, Z, 3, Z, Z, 4, Z));
            var out1 = Vector128.Shuffle(rg, Vector128.Create((byte)13, Z, 6, 14, Z, 7, 15, Z, Z, Z, Z, Z, Z, Z, Z, Z))
                     | Vector128.Shuffle(b8, Vector128.Create(Z, 5, Z, Z, 6, Z, Z, 7, Z, Z, Z, Z, Z, Z, Z, Z));
            ref byte o = ref Unsafe.Add(ref d, x * 3);
            out0.StoreUnsafe(ref o);
            Unsafe.WriteUnaligned(ref Unsafe.Add(ref o, 16), out1.AsUInt64().ToScalar());
        }
        return x;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> ClampShift(Vector128<int> fixedPoint, Vector128<int> zero, Vector128<int> max) =>
        Vector128.Min(Vector128.Max(Vector128.ShiftRightArithmetic(fixedPoint, Shift), zero), max);

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
