using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Imaging;

/// <summary>Byte-layout conversions between the decoder's and the preprocessor's pixel formats.</summary>
public static class PixelConvert
{
    /// <summary>
    /// RGBA/RGBX (4 bytes a pixel) -> tightly packed RGB24, dropping the 4th byte (as PIL's convert("RGB") does:
    /// no premultiplication, no compositing). Any level at or above Vector128 uses the 128-bit shuffle:
    /// this is memory-bound, wider vectors would not help.
    /// </summary>
    public static void RgbaToRgb(ReadOnlySpan<byte> rgba, Span<byte> rgb, SimdLevel level)
    {
        int pixels = rgba.Length / 4;
        if (rgba.Length != pixels * 4) throw new ArgumentException("RGBA length must be a multiple of 4", nameof(rgba));
        if (rgb.Length < pixels * 3) throw new ArgumentException($"RGB buffer holds {rgb.Length} bytes, {pixels * 3} needed", nameof(rgb));

        int p = 0;
        if (level >= SimdLevel.Vector128)
        {
            ref byte src = ref MemoryMarshal.GetReference(rgba);
            ref byte dst = ref MemoryMarshal.GetReference(rgb);
            // Each step reads 4 pixels and stores 16 bytes of which 12 are kept: the 4 surplus bytes are
            // overwritten by the next step, so stop while a 16-byte store still ends inside the output pixels
            // (nothing past pixels*3 is touched, even when rgb is a longer reused buffer).
            for (; p * 3 + 16 <= pixels * 3; p += 4)
            {
                var v = Vector128.LoadUnsafe(ref src, (nuint)(p * 4));
                var packed = Vector128.Shuffle(v, Vector128.Create((byte)0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0xFF, 0xFF, 0xFF, 0xFF));
                packed.StoreUnsafe(ref dst, (nuint)(p * 3));
            }
        }
        for (; p < pixels; p++)
        {
            rgb[p * 3] = rgba[p * 4];
            rgb[p * 3 + 1] = rgba[p * 4 + 1];
            rgb[p * 3 + 2] = rgba[p * 4 + 2];
        }
    }

    /// <summary>
    /// RGB24 -> one int per channel plus a zero 4th lane (RGBX as int32), pixel p at rgbx[p * pixelStride]:
    /// the resampler interleaves several rows this way so one vector holds the same pixel of each.
    /// </summary>
    internal static void RgbToRgbx32(ReadOnlySpan<byte> rgb, Span<int> rgbx, int pixelStride, SimdLevel level)
    {
        int pixels = rgb.Length / 3;
        if (pixelStride < 4 || pixels > 0 && rgbx.Length < (pixels - 1) * pixelStride + 4) throw new ArgumentException("RGBX buffer too small", nameof(rgbx));

        int p = 0;
        if (level >= SimdLevel.Vector128)
        {
            ref byte src = ref MemoryMarshal.GetReference(rgb);
            ref int dst = ref MemoryMarshal.GetReference(rgbx);
            // Reads 16 bytes to use 12 (4 pixels), so the last few pixels go to the scalar tail.
            for (; p * 3 + 16 <= rgb.Length; p += 4)
            {
                var v = Vector128.LoadUnsafe(ref src, (nuint)(p * 3));
                var spread = Vector128.Shuffle(v, Vector128.Create((byte)0, 1, 2, 0xFF, 3, 4, 5, 0xFF, 6, 7, 8, 0xFF, 9, 10, 11, 0xFF));
                var (lo, hi) = Vector128.Widen(spread);
                var (p0, p1) = Vector128.Widen(lo);
                var (p2, p3) = Vector128.Widen(hi);
                ref int d = ref Unsafe.Add(ref dst, p * pixelStride);
                p0.AsInt32().StoreUnsafe(ref d, 0);
                p1.AsInt32().StoreUnsafe(ref d, (nuint)pixelStride);
                p2.AsInt32().StoreUnsafe(ref d, (nuint)(2 * pixelStride));
                p3.AsInt32().StoreUnsafe(ref d, (nuint)(3 * pixelStride));
            }
        }
        for (; p < pixels; p++)
        {
            var d = rgbx.Slice(p * pixelStride, 4);
            d[0] = rgb[p * 3];
            d[1] = rgb[p * 3 + 1];
            d[2] = rgb[p * 3 + 2];
            d[3] = 0;
        }
    }
}
