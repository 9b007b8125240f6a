using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Imaging;

/// <summary>Preprocessing constants (timm/DeiT eval defaults).</summary>
public sealed record PreprocessOptions(int ResizeShortSide = 256, int CropSize = 224)
{
    public float[] Mean { get; init; } = [0.485f, 0.456f, 0.406f];
    public float[] Std { get; init; } = [0.229f, 0.224f, 0.225f];
}

/// <summary>
/// RGB24 pixels -> normalised CHW float input, reproducing torchvision's eval transform on a PIL image:
/// Resize(short side, BICUBIC) -> CenterCrop -> ToTensor -> Normalize.
/// The resize is PIL's 8-bit two-pass resampler (horizontal then vertical, antialiased bicubic a=-0.5,
/// 22-bit fixed-point coefficients, bytes rounded and clamped between passes), computed only for the crop's
/// pixels; its integer arithmetic makes every SIMD level bit-identical to the scalar path and to PIL.
/// Coefficient plans are cached per source size and buffers reused, so a repeated size allocates nothing.
/// Not thread-safe: one instance per preprocessing thread.
/// </summary>
public sealed class ImagePreprocessor
{
    private const int PrecisionBits = 32 - 8 - 2; // PIL's Resample.c: 8-bit pixels, 2 bits headroom
    private const int Half = 1 << (PrecisionBits - 1);
    private const int MaxCachedPlans = 32; // a camera has one size; a dataset would otherwise grow the cache unboundedly

    private readonly int _crop;
    private readonly float[] _normalize; // [3][256]: (b/255f - mean)/std, torchvision's float32 order of operations
    private readonly Dictionary<(int Width, int Height), Plan> _plans = new();
    private byte[] _cropBytes;
    private int[] _rows = [];      // 4 source row segments as int RGBX, interleaved per pixel
    private byte[] _horizontal = []; // horizontal pass output: source rows the crop needs x crop width x 3

    /// <summary>The options; Mean and Std are read once, at construction.</summary>
    public PreprocessOptions Options { get; }
    public SimdLevel Simd { get; }
    public int OutputLength => 3 * _crop * _crop;

    public ImagePreprocessor(PreprocessOptions? options = null, SimdLevel? simd = null)
    {
        Options = options ?? new PreprocessOptions();
        Simd = simd ?? SimdLevels.Best;
        SimdLevels.EnsureSupported(Simd);
        var (resize, crop) = (Options.ResizeShortSide, Options.CropSize);
        if (crop <= 0 || resize < crop)
            throw new ArgumentException($"need 0 < CropSize <= ResizeShortSide (got crop {crop}, resize {resize}); padding is not supported");
        if (Options.Mean is not { Length: 3 } || Options.Std is not { Length: 3 } || Options.Std.Any(s => s == 0))
            throw new ArgumentException("Mean and Std need 3 entries each, Std non-zero");

        _crop = crop;
        _cropBytes = new byte[crop * crop * 3];
        _normalize = new float[3 * 256];
        for (int c = 0; c < 3; c++)
            for (int b = 0; b < 256; b++)
                _normalize[c * 256 + b] = (b / 255f - Options.Mean[c]) / Options.Std[c];
    }

    /// <summary>rgb: rows of width*3 bytes with the given stride. output: [3, Crop, Crop].</summary>
    public void Process(ReadOnlySpan<byte> rgb, int width, int height, int stride, Span<float> output)
    {
        if (output.Length < OutputLength) throw new ArgumentException($"output holds {output.Length} floats, {OutputLength} needed", nameof(output));
        ResizeCrop(rgb, width, height, stride, _cropBytes);
        Normalize(_cropBytes, output);
    }

    /// <summary>
    /// The resized and centre-cropped image as RGB24 bytes [Crop, Crop, 3], i.e. what PIL's resize + crop return
    /// before ToTensor. Useful to compare with PIL or to save what the model sees.
    /// </summary>
    public void ResizeCrop(ReadOnlySpan<byte> rgb, int width, int height, int stride, Span<byte> crop)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"image size {width}x{height} must be positive");
        if (stride < width * 3) throw new ArgumentException($"stride {stride} < width*3 ({width * 3})", nameof(stride));
        if (rgb.Length < (long)(height - 1) * stride + width * 3) throw new ArgumentException($"rgb holds {rgb.Length} bytes, too few for {width}x{height} with stride {stride}", nameof(rgb));
        int rowBytes = _crop * 3;
        if (crop.Length < _crop * rowBytes) throw new ArgumentException($"crop holds {crop.Length} bytes, {_crop * rowBytes} needed", nameof(crop));

        var plan = GetPlan(width, height);
        var (h, v) = (plan.Horizontal, plan.Vertical);

        // Horizontal pass over just the source rows and columns the crop reads, 4 rows at a time: the int buffer
        // interleaves them per pixel ([pixel][row 0..3][R, G, B, X]) so one coefficient scales the same tap of
        // all 4 rows in 16 lanes. In a last partial block the surplus rows hold stale data and are not stored.
        Grow(ref _rows, h.SourceCount * 16);
        Grow(ref _horizontal, v.SourceCount * rowBytes);
        for (int r0 = 0; r0 < v.SourceCount; r0 += 4)
        {
            int rows = Math.Min(4, v.SourceCount - r0);
            for (int r = 0; r < rows; r++)
            {
                var source = rgb.Slice((v.SourceFirst + r0 + r) * stride + h.SourceFirst * 3, h.SourceCount * 3);
                PixelConvert.RgbToRgbx32(source, _rows.AsSpan(r * 4), 16, Simd);
            }
            var dst = _horizontal.AsSpan(r0 * rowBytes, rows * rowBytes);
            switch (Simd)
            {
                case SimdLevel.Vector512: Horizontal512(_rows, h, dst, rowBytes); break;
                case SimdLevel.Vector256: Horizontal256(_rows, h, dst, rowBytes); break;
                case SimdLevel.Vector128: Horizontal128(_rows, h, dst, rowBytes); break;
                default: HorizontalScalar(_rows, h, dst, rowBytes); break;
            }
        }

        // Vertical pass: each output row is a weighted sum of whole intermediate rows, vectorised along the row.
        for (int y = 0; y < _crop; y++)
        {
            var dst = crop.Slice(y * rowBytes, rowBytes);
            int done = Simd switch
            {
                SimdLevel.Vector512 => Vertical512(_horizontal, rowBytes, v, y, dst, 0),
                SimdLevel.Vector256 => Vertical256(_horizontal, rowBytes, v, y, dst, 0),
                _ => 0,
            };
            if (Simd >= SimdLevel.Vector128) done = Vertical128(_horizontal, rowBytes, v, y, dst, done);
            VerticalScalar(_horizontal, rowBytes, v, y, dst, done);
        }
    }

    /// <summary>HWC crop bytes -> CHW normalised floats (torchvision's ToTensor + Normalize, bit for bit).</summary>
    private void Normalize(ReadOnlySpan<byte> crop, Span<float> output)
    {
        int plane = _crop * _crop;
        var lut = _normalize.AsSpan();
        Span<float> r = output[..plane], g = output.Slice(plane, plane), b = output.Slice(2 * plane, plane);
        ReadOnlySpan<float> lr = lut[..256], lg = lut.Slice(256, 256), lb = lut.Slice(512, 256);
        for (int i = 0; i < plane; i++)
        {
            r[i] = lr[crop[3 * i]];
            g[i] = lg[crop[3 * i + 1]];
            b[i] = lb[crop[3 * i + 2]];
        }
    }

    // ---- geometry and coefficients ----

    /// <summary>torchvision's Resize(int): short side to S, long side int(S * long / short) (truncated).</summary>
    public static (int Width, int Height) ResizedSize(int width, int height, int shortSide)
    {
        int shortIn = Math.Min(width, height), longIn = Math.Max(width, height);
        double longOut = (double)((long)shortSide * longIn) / shortIn;
        if (longOut > int.MaxValue) throw new ArgumentException($"aspect ratio of {width}x{height} too extreme to resize");
        return width <= height ? (shortSide, (int)longOut) : ((int)longOut, shortSide);
    }

    /// <summary>torchvision's CenterCrop offset: int(round((size - crop) / 2.0)), round half to even as Python does.</summary>
    /// <summary>Mirrors a CHW image left to right in place (calibration's flip augmentation).</summary>
    public static void MirrorHorizontally(Span<float> chw, int channels, int size)
    {
        if (chw.Length != channels * size * size) throw new ArgumentException($"{chw.Length} values are not {channels}x{size}x{size}");
        for (int r = 0; r < channels * size; r++) chw.Slice(r * size, size).Reverse();
    }

    public static int CropOffset(int size, int crop) => (int)Math.Round((size - crop) / 2.0, MidpointRounding.ToEven);

    private sealed record Plan(Axis Horizontal, Axis Vertical);

    private Plan GetPlan(int width, int height)
    {
        if (_plans.TryGetValue((width, height), out var plan)) return plan;
        if (_plans.Count >= MaxCachedPlans) _plans.Clear();
        var (rw, rh) = ResizedSize(width, height, Options.ResizeShortSide);
        plan = new Plan(
            Axis.Build(width, rw, CropOffset(rw, _crop), _crop),
            Axis.Build(height, rh, CropOffset(rh, _crop), _crop));
        _plans[(width, height)] = plan;
        return plan;
    }

    /// <summary>
    /// PIL's precompute_coeffs + normalize_coeffs_8bpc for one axis, restricted to the outputs [first, first+count).
    /// Tap starts are relative to <see cref="SourceFirst"/>, the first source pixel any output reads.
    /// </summary>
    private sealed class Axis
    {
        public required int SourceFirst { get; init; }
        public required int SourceCount { get; init; }
        public required int[] Start { get; init; }  // per output: first tap's source index - SourceFirst
        public required int[] Taps { get; init; }   // per output: number of taps
        public required int Stride { get; init; }   // coefficients per output (PIL's ksize)
        public required int[] Coeffs { get; init; } // [output * Stride + tap]

        public static Axis Build(int inSize, int outSize, int first, int count)
        {
            // Same expressions and order as Resample.c (box = (0, inSize)), so the doubles and hence the
            // fixed-point coefficients are identical to PIL's.
            double scale = (double)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);    // antialias: widen the kernel when downscaling
            double support = 2.0 * filterScale;           // bicubic support 2
            int stride = (int)Math.Ceiling(support) * 2 + 1;
            var start = new int[count];
            var taps = new int[count];
            var coeffs = new int[count * stride];
            var weights = new double[stride];
            for (int i = 0; i < count; i++)
            {
                double center = (first + i + 0.5) * scale;
                double ss = 1.0 / filterScale;
                int xmin = Math.Max((int)(center - support + 0.5), 0);
                int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
                double sum = 0;
                for (int x = 0; x < xmax; x++) sum += weights[x] = Bicubic((x + xmin - center + 0.5) * ss);
                for (int x = 0; x < xmax; x++)
                {
                    double k = sum != 0 ? weights[x] / sum : weights[x];
                    coeffs[i * stride + x] = k < 0 ? (int)(-0.5 + k * (1 << PrecisionBits)) : (int)(0.5 + k * (1 << PrecisionBits));
                }
                start[i] = xmin;
                taps[i] = xmax;
            }
            int sourceFirst = start[0], sourceEnd = 0;
            for (int i = 0; i < count; i++)
            {
                sourceFirst = Math.Min(sourceFirst, start[i]);
                sourceEnd = Math.Max(sourceEnd, start[i] + taps[i]);
            }
            for (int i = 0; i < count; i++) start[i] -= sourceFirst;
            return new Axis
            {
                SourceFirst = sourceFirst, SourceCount = sourceEnd - sourceFirst,
                Start = start, Taps = taps, Stride = stride, Coeffs = coeffs,
            };
        }

        private static double Bicubic(double x)
        {
            const double a = -0.5;
            if (x < 0.0) x = -x;
            if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
            if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
            return 0.0;
        }
    }

    // ---- horizontal pass: output pixel x of 4 rows = sum over taps of those rows' RGBX pixels x coefficient ----

    private static void HorizontalScalar(int[] rows, Axis h, Span<byte> dst, int rowBytes)
    {
        for (int x = 0; x < h.Start.Length; x++)
        {
            var k = h.Coeffs.AsSpan(x * h.Stride, h.Taps[x]);
            for (int r = 0; r * rowBytes < dst.Length; r++)
            {
                var px = rows.AsSpan(h.Start[x] * 16 + r * 4);
                int red = Half, green = Half, blue = Half;
                for (int j = 0; j < k.Length; j++)
                {
                    red += px[16 * j] * k[j];
                    green += px[16 * j + 1] * k[j];
                    blue += px[16 * j + 2] * k[j];
                }
                int o = r * rowBytes + 3 * x;
                dst[o] = Clip8(red);
                dst[o + 1] = Clip8(green);
                dst[o + 2] = Clip8(blue);
            }
        }
    }

    private static void Horizontal128(int[] rows, Axis h, Span<byte> dst, int rowBytes)
    {
        ref int px0 = ref MemoryMarshal.GetArrayDataReference(rows);
        for (int x = 0; x < h.Start.Length; x++)
        {
            ref int px = ref Unsafe.Add(ref px0, h.Start[x] * 16);
            var k = h.Coeffs.AsSpan(x * h.Stride, h.Taps[x]);
            Vector128<int> a0 = Vector128.Create(Half), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < k.Length; j++)
            {
                var kj = Vector128.Create(k[j]);
                a0 += Vector128.LoadUnsafe(ref px, (nuint)(16 * j)) * kj;
                a1 += Vector128.LoadUnsafe(ref px, (nuint)(16 * j + 4)) * kj;
                a2 += Vector128.LoadUnsafe(ref px, (nuint)(16 * j + 8)) * kj;
                a3 += Vector128.LoadUnsafe(ref px, (nuint)(16 * j + 12)) * kj;
            }
            StorePixel(Vector128.Narrow(Vector128.Narrow(Clip8(a0), Clip8(a1)), Vector128.Narrow(Clip8(a2), Clip8(a3))), dst, x, rowBytes);
        }
    }

    private static void Horizontal256(int[] rows, Axis h, Span<byte> dst, int rowBytes)
    {
        ref int px0 = ref MemoryMarshal.GetArrayDataReference(rows);
        for (int x = 0; x < h.Start.Length; x++)
        {
            ref int px = ref Unsafe.Add(ref px0, h.Start[x] * 16);
            var k = h.Coeffs.AsSpan(x * h.Stride, h.Taps[x]);
            Vector256<int> a0 = Vector256.Create(Half), a1 = a0;
            for (int j = 0; j < k.Length; j++)
            {
                var kj = Vector256.Create(k[j]);
                a0 += Vector256.LoadUnsafe(ref px, (nuint)(16 * j)) * kj;
                a1 += Vector256.LoadUnsafe(ref px, (nuint)(16 * j + 8)) * kj;
            }
            var words = Vector256.Narrow(Clip8(a0), Clip8(a1));
            StorePixel(Vector256.Narrow(words, words).GetLower(), dst, x, rowBytes);
        }
    }

    private static void Horizontal512(int[] rows, Axis h, Span<byte> dst, int rowBytes)
    {
        ref int px0 = ref MemoryMarshal.GetArrayDataReference(rows);
        for (int x = 0; x < h.Start.Length; x++)
        {
            ref int px = ref Unsafe.Add(ref px0, h.Start[x] * 16);
            var k = h.Coeffs.AsSpan(x * h.Stride, h.Taps[x]);
            var acc = Vector512.Create(Half);
            for (int j = 0; j < k.Length; j++)
                acc += Vector512.LoadUnsafe(ref px, (nuint)(16 * j)) * Vector512.Create(k[j]);
            var clipped = Clip8(acc);
            var words = Vector512.Narrow(clipped, clipped).GetLower();
            StorePixel(Vector256.Narrow(words, words).GetLower(), dst, x, rowBytes);
        }
    }

    /// <summary>Stores pixel x of each row in dst from 16 bytes holding 4 rows' R, G, B, X.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePixel(Vector128<byte> rgbx, Span<byte> dst, int x, int rowBytes)
    {
        var quads = rgbx.AsUInt32();
        for (int r = 0, o = 3 * x; o < dst.Length; r++, o += rowBytes)
        {
            uint quad = quads.GetElement(r);
            // A 4-byte store spills X into the next pixel, which a later x overwrites; not past the row's end.
            if (3 * x + 4 <= rowBytes) Unsafe.WriteUnaligned(ref dst[o], quad);
            else
            {
                dst[o] = (byte)quad;
                dst[o + 1] = (byte)(quad >> 8);
                dst[o + 2] = (byte)(quad >> 16);
            }
        }
    }

    // ---- vertical pass: output row y = sum over taps of whole intermediate rows x coefficient ----
    // Each vector method handles whole chunks from `from` on and returns where it stopped; a narrower
    // method or the scalar loop finishes the row.

    private static int VerticalScalar(byte[] src, int rowBytes, Axis v, int y, Span<byte> dst, int from)
    {
        int first = v.Start[y] * rowBytes;
        var k = v.Coeffs.AsSpan(y * v.Stride, v.Taps[y]);
        for (int i = from; i < rowBytes; i++)
        {
            int sum = Half;
            for (int j = 0; j < k.Length; j++) sum += src[first + j * rowBytes + i] * k[j];
            dst[i] = Clip8(sum);
        }
        return rowBytes;
    }

    private static int Vertical128(byte[] src, int rowBytes, Axis v, int y, Span<byte> dst, int from)
    {
        ref byte s0 = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(src), v.Start[y] * rowBytes);
        var k = v.Coeffs.AsSpan(y * v.Stride, v.Taps[y]);
        int i = from;
        for (; i + 16 <= rowBytes; i += 16)
        {
            Vector128<int> a0 = Vector128.Create(Half), a1 = a0, a2 = a0, a3 = a0;
            ref byte s = ref Unsafe.Add(ref s0, i);
            for (int j = 0; j < k.Length; j++)
            {
                var (lo, hi) = Vector128.Widen(Vector128.LoadUnsafe(ref s, (nuint)(j * rowBytes)));
                var (w0, w1) = Vector128.Widen(lo);
                var (w2, w3) = Vector128.Widen(hi);
                var kj = Vector128.Create(k[j]);
                a0 += w0.AsInt32() * kj;
                a1 += w1.AsInt32() * kj;
                a2 += w2.AsInt32() * kj;
                a3 += w3.AsInt32() * kj;
            }
            var bytes = Vector128.Narrow(Vector128.Narrow(Clip8(a0), Clip8(a1)), Vector128.Narrow(Clip8(a2), Clip8(a3)));
            bytes.StoreUnsafe(ref MemoryMarshal.GetReference(dst), (nuint)i);
        }
        return i;
    }

    private static int Vertical256(byte[] src, int rowBytes, Axis v, int y, Span<byte> dst, int from)
    {
        ref byte s0 = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(src), v.Start[y] * rowBytes);
        var k = v.Coeffs.AsSpan(y * v.Stride, v.Taps[y]);
        int i = from;
        for (; i + 32 <= rowBytes; i += 32)
        {
            Vector256<int> a0 = Vector256.Create(Half), a1 = a0, a2 = a0, a3 = a0;
            ref byte s = ref Unsafe.Add(ref s0, i);
            for (int j = 0; j < k.Length; j++)
            {
                var (lo, hi) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)(j * rowBytes)));
                var (w0, w1) = Vector256.Widen(lo);
                var (w2, w3) = Vector256.Widen(hi);
                var kj = Vector256.Create(k[j]);
                a0 += w0.AsInt32() * kj;
                a1 += w1.AsInt32() * kj;
                a2 += w2.AsInt32() * kj;
                a3 += w3.AsInt32() * kj;
            }
            var bytes = Vector256.Narrow(Vector256.Narrow(Clip8(a0), Clip8(a1)), Vector256.Narrow(Clip8(a2), Clip8(a3)));
            bytes.StoreUnsafe(ref MemoryMarshal.GetReference(dst), (nuint)i);
        }
        return i;
    }

    private static int Vertical512(byte[] src, int rowBytes, Axis v, int y, Span<byte> dst, int from)
    {
        ref byte s0 = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(src), v.Start[y] * rowBytes);
        var k = v.Coeffs.AsSpan(y * v.Stride, v.Taps[y]);
        int i = from;
        for (; i + 64 <= rowBytes; i += 64)
        {
            Vector512<int> a0 = Vector512.Create(Half), a1 = a0, a2 = a0, a3 = a0;
            ref byte s = ref Unsafe.Add(ref s0, i);
            for (int j = 0; j < k.Length; j++)
            {
                var (lo, hi) = Vector512.Widen(Vector512.LoadUnsafe(ref s, (nuint)(j * rowBytes)));
                var (w0, w1) = Vector512.Widen(lo);
                var (w2, w3) = Vector512.Widen(hi);
                var kj = Vector512.Create(k[j]);
                a0 += w0.AsInt32() * kj;
                a1 += w1.AsInt32() * kj;
                a2 += w2.AsInt32() * kj;
                a3 += w3.AsInt32() * kj;
            }
            var bytes = Vector512.Narrow(Vector512.Narrow(Clip8(a0), Clip8(a1)), Vector512.Narrow(Clip8(a2), Clip8(a3)));
            bytes.StoreUnsafe(ref MemoryMarshal.GetReference(dst), (nuint)i);
        }
        return i;
    }

    // PIL's clip8: drop the fraction (the +Half bias made it round to nearest) and clamp to a byte.
    private static byte Clip8(int sum) => (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);

    private static Vector128<uint> Clip8(Vector128<int> sum) =>
        Vector128.Clamp(Vector128.ShiftRightArithmetic(sum, PrecisionBits), Vector128<int>.Zero, Vector128.Create(255)).AsUInt32();

    private static Vector256<uint> Clip8(Vector256<int> sum) =>
        Vector256.Clamp(Vector256.ShiftRightArithmetic(sum, PrecisionBits), Vector256<int>.Zero, Vector256.Create(255)).AsUInt32();

    private static Vector512<uint> Clip8(Vector512<int> sum) =>
        Vector512.Clamp(Vector512.ShiftRightArithmetic(sum, PrecisionBits), Vector512<int>.Zero, Vector512.Create(255)).AsUInt32();

    private static void Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new T[length];
    }
}
