using System.Numerics;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// The operands of int8 attention, quantised per image in the layout of an <see cref="Int8Kernel"/>, so
/// S = Q K^T and O = P V run on the same microkernel as the linear layers:
/// <list type="bullet">
/// <item>K^T is the "weight" of Q K^T: one column per token, each token's head-dim keys symmetric on their own scale,
/// in [-64, 64] (<see cref="QuantizedLinear.WeightLevel"/>). Q rows are activations, per token in [-127, 127].</item>
/// <item>V is the "weight" of P V: one column per channel, each channel symmetric over the tokens, in [-64, 64].</item>
/// <item>P (softmax rows, non-negative) is quantised per row to [0, 255] on its own maximum: 8 bits of resolution
/// where a signed rule would keep 7 (on imagenet-sample, KL to fp32 0.0033 against 0.0046 for 7 bits). The u8
/// kernels read those bytes as they are; the signed ones (SDOT, SMULL, scalar) read p - 128 and V's columns carry
/// +128 * column sum; the int16 ones read p. Every kernel therefore computes the same exact int32 sums; with
/// u8 p up to 255 and weights up to 64 a vpmaddubsw pair stays at 32640, inside int16.</item>
/// </list>
/// Packing is the <see cref="Int8Matrix"/> layout: panel p of <see cref="Int8Kernels.PanelWidth"/> columns, then per
/// k group one 4-byte slot per column.
/// </summary>
public static unsafe class Int8Attention
{
    /// <summary>Bytes of a packed K^T for up to <paramref name="tokens"/> keys of <paramref name="headDim"/> channels.</summary>
    public static long KeysBytes(Int8Kernel kernel, int tokens, int headDim) =>
        (long)Panels(kernel, tokens) * Groups(kernel, headDim) * Int8Kernels.PanelWidth(kernel) * 4;

    /// <summary>Bytes of a packed V for up to <paramref name="tokens"/> rows of <paramref name="headDim"/> channels.</summary>
    public static long ValuesBytes(Int8Kernel kernel, int tokens, int headDim) =>
        (long)Panels(kernel, headDim) * Groups(kernel, tokens) * Int8Kernels.PanelWidth(kernel) * 4;

    /// <summary>Columns rounded up to whole panels (the length of a scale or correction vector).</summary>
    public static int PaddedColumns(Int8Kernel kernel, int columns) => Panels(kernel, columns) * Int8Kernels.PanelWidth(kernel);

    public static int Groups(Int8Kernel kernel, int k) => (k + Int8Kernels.KGroup(kernel) - 1) / Int8Kernels.KGroup(kernel);

    /// <summary>Bytes of one quantised activation row of length k (Q: k = head dim; P: k = tokens).</summary>
    public static int RowBytes(Int8Kernel kernel, int k) => Groups(kernel, k) * 4;

    private static int Panels(Int8Kernel kernel, int columns) => (columns + Int8Kernels.PanelWidth(kernel) - 1) / Int8Kernels.PanelWidth(kernel);

    /// <summary>
    /// K^T for one head: token t's keys k[t * ld .. + headDim] become column t, scale[t] = max|k| / 64, and
    /// corr[t] the kernel's start value for a Q row (-128 * column sum for the u8 kernels, else 0).
    /// </summary>
    public static void PackKeys(float* k, long ld, int tokens, int headDim, Int8Kernel kernel, byte* dst, float* scale, int* corr)
    {
        int w = Int8Kernels.PanelWidth(kernel), groups = Groups(kernel, headDim);
        bool madd = Int8Kernels.IsMadd(kernel);
        int offset = Int8Kernels.ActivationOffset(kernel);
        int padded = groups * Int8Kernels.KGroup(kernel);
        int* q = stackalloc int[padded];
        for (int i = headDim; i < padded; i++) q[i] = 0;
        for (int t = 0; t < tokens; t++)
        {
            float* x = k + t * ld;
            float amax = Int8Gemm.MaxAbs(x, headDim);
            scale[t] = amax > 0f ? amax / QuantizedLinear.WeightLevel : 1f;
            int sum = QuantizeInts(x, headDim, amax > 0f ? QuantizedLinear.WeightLevel / amax : 0f, QuantizedLinear.WeightLevel, q);
            corr[t] = -offset * sum;
            int* slot = (int*)(dst + ((long)(t / w) * groups * w + t % w) * 4);
            for (int g = 0; g < groups; g++, slot += w)
                *slot = madd ? (q[2 * g] & 0xFFFF) | (q[2 * g + 1] << 16)
                             : (q[4 * g] & 0xFF) | ((q[4 * g + 1] & 0xFF) << 8) | ((q[4 * g + 2] & 0xFF) << 16) | (q[4 * g + 3] << 24);
        }
    }

    /// <summary>
    /// V for one head: channel c of rows v[t * ld + c] (t &lt; tokens) becomes column c, scale[c] = max over tokens
    /// of |v| / 64, corr[c] the start value for a P row (+128 * column sum for the signed kernels, else 0). The k
    /// padding up to a whole group is zero. <paramref name="scratch"/> holds 2 * headDim floats.
    /// </summary>
    public static void PackValues(float* v, long ld, int tokens, int headDim, Int8Kernel kernel, byte* dst, float* scale, int* corr, float* scratch)
    {
        int w = Int8Kernels.PanelWidth(kernel), kg = Int8Kernels.KGroup(kernel), groups = Groups(kernel, tokens);
        bool madd = Int8Kernels.IsMadd(kernel);
        int pOffset = ProbabilityOffset(kernel);
        float* amax = scratch, inv = scratch + headDim;
        for (int c = 0; c < headDim; c++) amax[c] = 0f;
        int vw = Vector<float>.Count, c0;
        for (int t = 0; t < tokens; t++)
        {
            float* row = v + t * ld;
            c0 = 0;
            if (Vector.IsHardwareAccelerated)
                for (; c0 <= headDim - vw; c0 += vw) Vector.Max(Vector.Load(amax + c0), Vector.Abs(Vector.Load(row + c0))).Store(amax + c0);
            for (; c0 < headDim; c0++) amax[c0] = MathF.Max(amax[c0], MathF.Abs(row[c0]));
        }
        for (int c = 0; c < headDim; c++)
        {
            scale[c] = amax[c] > 0f ? amax[c] / QuantizedLinear.WeightLevel : 1f;
            inv[c] = amax[c] > 0f ? QuantizedLinear.WeightLevel / amax[c] : 0f;
            corr[c] = 0;
        }
        // One k group (kg tokens) at a time: each column's slot packs the group's kg quantised values; consecutive
        // columns of a panel have consecutive slots, so a vector of columns is one store.
        bool vectorStores = Vector.IsHardwareAccelerated && w % Vector<int>.Count == 0 && headDim % Vector<int>.Count == 0;
        for (int g = 0; g < groups; g++)
        {
            int t0 = g * kg;
            if (vectorStores)
            {
                var hi = new Vector<float>(QuantizedLinear.WeightLevel);
                for (c0 = 0; c0 < headDim; c0 += vw)
                {
                    var vinv = Vector.Load(inv + c0);
                    var slot = Vector<int>.Zero;
                    var sum = Vector.Load(corr + c0);
                    for (int j = 0; j < kg; j++)
                    {
                        if (t0 + j >= tokens) break;
                        var qj = Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(-hi, Vector.Round(Vector.Load(v + (t0 + j) * ld + c0) * vinv))));
                        sum += qj;
                        slot |= madd ? Vector.ShiftLeft(qj & new Vector<int>(0xFFFF), 16 * j) : Vector.ShiftLeft(qj & new Vector<int>(0xFF), 8 * j);
                    }
                    sum.Store(corr + c0);
                    slot.Store((int*)(dst + ((long)(c0 / w) * groups * w + c0 % w + (long)g * w) * 4));
                }
            }
            else
                for (int c = 0; c < headDim; c++)
                {
                    int slot = 0;
                    for (int j = 0; j < kg && t0 + j < tokens; j++)
                    {
                        int qj = (int)Math.Clamp(MathF.Round(v[(t0 + j) * ld + c] * inv[c], MidpointRounding.ToEven), -QuantizedLinear.WeightLevel, QuantizedLinear.WeightLevel);
                        corr[c] += qj;
                        slot |= madd ? (qj & 0xFFFF) << (16 * j) : (qj & 0xFF) << (8 * j);
                    }
                    *(int*)(dst + ((long)(c / w) * groups * w + c % w + (long)g * w) * 4) = slot;
                }
        }
        for (int c = 0; c < headDim; c++) corr[c] *= -pOffset;
    }

    /// <summary>
    /// One row of P (n values, non-negative) into the kernel's row layout, q = round-half-even(p * 255 / max p),
    /// stored as q (u8 and int16 kernels) or q - 128 (signed kernels), the padding to a whole group as q = 0;
    /// returns the row's scale max p / 255.
    /// </summary>
    public static float QuantizeProbabilities(float* p, int n, Int8Kernel kernel, byte* dst)
    {
        float amax = Int8Gemm.MaxAbs(p, n);
        float inv = amax > 0f ? ProbabilityLevel / amax : 0f;
        bool madd = Int8Kernels.IsMadd(kernel);
        int offset = ProbabilityOffset(kernel);
        int i = 0, w = Vector<int>.Count;
        if (Vector.IsHardwareAccelerated)
        {
            var vinv = new Vector<float>(inv);
            var hi = new Vector<float>(ProbabilityLevel);
            var off = new Vector<int>(offset);
            if (madd)
                for (; i <= n - 2 * w; i += 2 * w)
                    Vector.Narrow(Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i) * vinv))),
                                  Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i + w) * vinv)))).Store((short*)dst + i);
            else
                for (; i <= n - 4 * w; i += 4 * w)
                {
                    // q + offset is in [-128, 255]; the narrowings keep the low byte, which is what both byte readings want.
                    var s0 = Vector.Narrow(Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i) * vinv))) + off,
                                           Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i + w) * vinv))) + off);
                    var s1 = Vector.Narrow(Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i + 2 * w) * vinv))) + off,
                                           Vector.ConvertToInt32(Vector.Min(hi, Vector.Round(Vector.Load(p + i + 3 * w) * vinv))) + off);
                    Vector.Narrow(Vector.AsVectorUInt16(s0), Vector.AsVectorUInt16(s1)).Store(dst + i);
                }
        }
        for (; i < n; i++) Put(dst, i, (int)MathF.Min(ProbabilityLevel, MathF.Round(p[i] * inv, MidpointRounding.ToEven)), madd, offset);
        int kp = Groups(kernel, n) * Int8Kernels.KGroup(kernel);
        for (; i < kp; i++) Put(dst, i, 0, madd, offset);
        return amax / ProbabilityLevel;
    }

    /// <summary>Levels of a quantised probability: [0, 255].</summary>
    public const int ProbabilityLevel = 255;

    /// <summary>What a stored probability byte adds to q: 0 where the kernel reads bytes as u8 (or int16), -128 where it reads them signed.</summary>
    public static int ProbabilityOffset(Int8Kernel kernel) =>
        Int8Kernels.IsMadd(kernel) || Int8Kernels.ActivationOffset(kernel) != 0 ? 0 : -128;

    private static void Put(byte* dst, int i, int q, bool madd, int offset)
    {
        if (madd) ((short*)dst)[i] = (short)q;
        else dst[i] = (byte)(q + offset);
    }

    /// <summary>q[i] = clamp(round-half-even(x[i] * inv), ±level) for i &lt; n; returns their sum.</summary>
    private static int QuantizeInts(float* x, int n, float inv, int level, int* q)
    {
        int i = 0, w = Vector<int>.Count;
        var acc = Vector<int>.Zero;
        if (Vector.IsHardwareAccelerated)
        {
            var vinv = new Vector<float>(inv);
            var hi = new Vector<float>(level);
            for (; i <= n - w; i += w)
            {
                var qi = Vector.ConvertToInt32(Vector.Min(hi, Vector.Max(-hi, Vector.Round(Vector.Load(x + i) * vinv))));
                acc += qi;
                qi.Store(q + i);
            }
        }
        int sum = Vector.Sum(acc);
        for (; i < n; i++) sum += q[i] = (int)Math.Clamp(MathF.Round(x[i] * inv, MidpointRounding.ToEven), -level, level);
        return sum;
    }
}
