using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

/// <summary>
/// int8 attention's operands (<see cref="Int8Attention"/>) on every int8 kernel this CPU runs: the packed K^T, V and
/// quantised P and Q rows give the exact int32 sums of the quantised values, and the dequantised products match a
/// double-precision evaluation of the same quantisation.
/// </summary>
public unsafe class Int8AttentionTests
{
    public static TheoryData<Int8Kernel> Kernels() => Int8GemmTests.Kernels();

    // (tokens, head dim): DeiT-Tiny's, pruned counts, head dims off the vector width, one token.
    private static readonly (int Tokens, int HeadDim)[] Shapes = [(197, 64), (61, 64), (7, 24), (50, 12), (1, 64), (33, 20)];

    private static float[] Random(Random rng, int n, float scale) =>
        Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

    /// <summary>The quantisation rule, written out independently: round-half-even(x * level / max|x|), clamped.</summary>
    private static int[] Quantise(float[] x, int level, float amax, float low)
    {
        float inv = amax > 0 ? level / amax : 0;
        return x.Select(v => (int)Math.Clamp(MathF.Round(v * inv, MidpointRounding.ToEven), low, level)).ToArray();
    }

    [Theory, MemberData(nameof(Kernels))]
    public void QueryKeyProductsAreExact(Int8Kernel kernel)
    {
        var rng = new Random(5 + (int)kernel);
        foreach (var (n, hd) in Shapes)
        {
            const int ld = 3 * 64 + 5; // keys sit inside wider qkv rows
            var keys = Random(rng, n * ld, 3f);
            var queries = Random(rng, n * hd, 2f);
            if (n > 2) for (int c = 0; c < hd; c++) keys[ld + c] = 0; // an all-zero key keeps a finite scale
            var packed = new byte[Int8Attention.KeysBytes(kernel, n, hd)];
            int cols = Int8Attention.PaddedColumns(kernel, n), rowBytes = Int8Attention.RowBytes(kernel, hd), groups = Int8Attention.Groups(kernel, hd);
            var scale = new float[cols]; var corr = new int[cols];
            var q8 = new byte[n * rowBytes];
            var sums = new int[n * n];
            fixed (float* k = keys, q = queries, s = scale) fixed (byte* b = packed, qb = q8) fixed (int* cr = corr, c = sums)
            {
                Int8Attention.PackKeys(k, ld, n, hd, kernel, b, s, cr);
                for (int r = 0; r < n; r++)
                {
                    float amax = Int8Gemm.MaxAbs(q + r * hd, hd);
                    Int8Gemm.Quantize(q + r * hd, hd, amax > 0 ? QuantizedLinear.ActivationLevel / amax : 0, qb + r * rowBytes, groups, kernel);
                }
                Int8Gemm.MultiplyQuantizedInt(qb, rowBytes, n, b, groups, n, kernel, cr, c, n);
            }
            for (int t = 0; t < n; t++)
            {
                var key = keys.AsSpan(t * ld, hd).ToArray();
                float amax = key.Max(MathF.Abs);
                Assert.Equal(amax > 0 ? amax / QuantizedLinear.WeightLevel : 1f, scale[t]);
                var qk = Quantise(key, QuantizedLinear.WeightLevel, amax, -QuantizedLinear.WeightLevel);
                for (int r = 0; r < n; r++)
                {
                    var row = queries.AsSpan(r * hd, hd).ToArray();
                    var qq = Quantise(row, QuantizedLinear.ActivationLevel, row.Max(MathF.Abs), -QuantizedLinear.ActivationLevel);
                    long e = 0;
                    for (int i = 0; i < hd; i++) e += qq[i] * qk[i];
                    if (sums[r * n + t] != e) Assert.Fail($"{kernel} n={n} hd={hd}: Q K^T [{r},{t}] = {sums[r * n + t]}, exact {e}");
                }
            }
        }
    }

    [Theory, MemberData(nameof(Kernels))]
    public void ProbabilityValueProductsAreExact(Int8Kernel kernel)
    {
        var rng = new Random(9 + (int)kernel);
        foreach (var (n, hd) in Shapes)
        {
            const int ld = 3 * 64 + 3;
            var values = Random(rng, n * ld, 1.5f);
            var probs = SoftmaxRows(rng, n, n, sharp: n % 2 == 0);
            var packed = new byte[Int8Attention.ValuesBytes(kernel, n, hd)];
            int cols = Int8Attention.PaddedColumns(kernel, hd), rowBytes = Int8Attention.RowBytes(kernel, n), groups = Int8Attention.Groups(kernel, n);
            var scale = new float[cols]; var corr = new int[cols];
            var p8 = new byte[n * rowBytes];
            var pScale = new float[n];
            var sums = new int[n * hd];
            var scratch = new float[2 * hd];
            fixed (float* v = values, p = probs, s = scale, ps = pScale, sc = scratch) fixed (byte* b = packed, pb = p8) fixed (int* cr = corr, c = sums)
            {
                Int8Attention.PackValues(v, ld, n, hd, kernel, b, s, cr, sc);
                for (int r = 0; r < n; r++) ps[r] = Int8Attention.QuantizeProbabilities(p + r * n, n, kernel, pb + r * rowBytes);
                Int8Gemm.MultiplyQuantizedInt(pb, rowBytes, n, b, groups, hd, kernel, cr, c, hd);
            }
            for (int ch = 0; ch < hd; ch++)
            {
                var column = Enumerable.Range(0, n).Select(t => values[t * ld + ch]).ToArray();
                float amax = column.Max(MathF.Abs);
                Assert.Equal(amax > 0 ? amax / QuantizedLinear.WeightLevel : 1f, scale[ch]);
                var qv = Quantise(column, QuantizedLinear.WeightLevel, amax, -QuantizedLinear.WeightLevel);
                for (int r = 0; r < n; r++)
                {
                    var row = probs.AsSpan(r * n, n).ToArray();
                    float pmax = row.Max();
                    Assert.Equal(pmax / Int8Attention.ProbabilityLevel, pScale[r]);
                    var qp = Quantise(row, Int8Attention.ProbabilityLevel, pmax, 0);
                    long e = 0;
                    for (int t = 0; t < n; t++) e += qp[t] * qv[t];
                    if (sums[r * hd + ch] != e) Assert.Fail($"{kernel} n={n} hd={hd}: P V [{r},{ch}] = {sums[r * hd + ch]}, exact {e}");
                }
            }
        }
    }

    /// <summary>u8 probability 255 against weight ±64 in every pair: the vpmaddubsw kernels' worst case stays exact.</summary>
    [Theory, MemberData(nameof(Kernels))]
    public void LargestProbabilitiesAgainstLargestValuesAreExact(Int8Kernel kernel)
    {
        const int n = 40, hd = 16, ld = hd;
        var values = new float[n * ld];
        for (int i = 0; i < values.Length; i++) values[i] = i % 3 == 0 ? -1f : 1f; // every column quantises to ±64
        var probs = Enumerable.Repeat(1f / n, n).ToArray(); // every p is the row maximum: q = 255
        var packed = new byte[Int8Attention.ValuesBytes(kernel, n, hd)];
        int cols = Int8Attention.PaddedColumns(kernel, hd), rowBytes = Int8Attention.RowBytes(kernel, n), groups = Int8Attention.Groups(kernel, n);
        var scale = new float[cols]; var corr = new int[cols];
        var p8 = new byte[rowBytes]; var sums = new int[hd]; var scratch = new float[2 * hd];
        fixed (float* v = values, p = probs, s = scale, sc = scratch) fixed (byte* b = packed, pb = p8) fixed (int* cr = corr, c = sums)
        {
            Int8Attention.PackValues(v, ld, n, hd, kernel, b, s, cr, sc);
            Int8Attention.QuantizeProbabilities(p, n, kernel, pb);
            Int8Gemm.MultiplyQuantizedInt(pb, rowBytes, 1, b, groups, hd, kernel, cr, c, hd);
        }
        for (int ch = 0; ch < hd; ch++)
        {
            long e = 0;
            for (int t = 0; t < n; t++) e += 255L * ((t * ld + ch) % 3 == 0 ? -64 : 64);
            Assert.Equal(e, sums[ch]);
        }
    }

    /// <summary>The fp32 outputs: acc * column scale * row scale equals the double-precision product of the dequantised operands.</summary>
    [Theory, MemberData(nameof(Kernels))]
    public void DequantisedProductMatchesDoubleReference(Int8Kernel kernel)
    {
        var rng = new Random(13 + (int)kernel);
        const int n = 61, hd = 64, ld = hd;
        var values = Random(rng, n * ld, 2f);
        var probs = SoftmaxRows(rng, n, n, sharp: true);
        int cols = Int8Attention.PaddedColumns(kernel, hd), rowBytes = Int8Attention.RowBytes(kernel, n), groups = Int8Attention.Groups(kernel, n);
        var packed = new byte[Int8Attention.ValuesBytes(kernel, n, hd)];
        var scale = new float[cols]; var corr = new int[cols]; var zero = new float[cols];
        var p8 = new byte[n * rowBytes]; var pScale = new float[n]; var outp = new float[n * hd]; var scratch = new float[2 * hd];
        fixed (float* v = values, p = probs, s = scale, ps = pScale, z = zero, o = outp, sc = scratch) fixed (byte* b = packed, pb = p8) fixed (int* cr = corr)
        {
            Int8Attention.PackValues(v, ld, n, hd, kernel, b, s, cr, sc);
            for (int r = 0; r < n; r++) ps[r] = Int8Attention.QuantizeProbabilities(p + r * n, n, kernel, pb + r * rowBytes);
            Int8Gemm.MultiplyQuantized(pb, rowBytes, n, b, groups, hd, kernel, s, ps, z, cr, o, hd);
        }
        double worst = 0, worstFp = 0;
        for (int ch = 0; ch < hd; ch++)
        {
            var column = Enumerable.Range(0, n).Select(t => values[t * ld + ch]).ToArray();
            float amax = column.Max(MathF.Abs);
            var qv = Quantise(column, QuantizedLinear.WeightLevel, amax, -QuantizedLinear.WeightLevel);
            for (int r = 0; r < n; r++)
            {
                var row = probs.AsSpan(r * n, n).ToArray();
                var qp = Quantise(row, Int8Attention.ProbabilityLevel, row.Max(), 0);
                double dq = 0, fp = 0;
                for (int t = 0; t < n; t++) { dq += (double)qp[t] * (row.Max() / 255.0) * qv[t] * (amax / 64.0); fp += (double)row[t] * column[t]; }
                worst = Math.Max(worst, Math.Abs(outp[r * hd + ch] - dq));
                worstFp = Math.Max(worstFp, Math.Abs(outp[r * hd + ch] - fp));
            }
        }
        Assert.True(worst < 1e-5, $"{kernel}: |int8 P V - double reference of the quantised operands| up to {worst}");
        Assert.True(worstFp < 0.05, $"{kernel}: |int8 P V - fp32 P V| up to {worstFp} (values up to 2)");
        Assert.True(worstFp > 0, $"{kernel}: int8 P V equals fp32 exactly: nothing was quantised");
    }

    /// <summary>The int8 engine with int8 attention against int8 linear layers only, on a small random ViT: close, not equal, every kernel.</summary>
    [Fact]
    public void Int8AttentionStaysCloseToFp32Attention()
    {
        var config = VitEngineTests.Small;
        var w = VitWeights.Random(config, seed: 31);
        var img = VitEngineTests.RandomImage(config, 4);
        foreach (var kernel in Int8Kernels.Supported)
        {
            var level = Int8Kernels.Level(kernel);
            var on = new float[config.Classes]; var off = new float[config.Classes];
            using (var e = new VitEngine(w, new EngineOptions(2, level) { Precision = Precision.Int8, Int8Kernel = kernel })) e.Infer(img, on);
            using (var e = new VitEngine(w, new EngineOptions(2, level) { Precision = Precision.Int8, Int8Kernel = kernel, Int8Attention = false })) e.Infer(img, off);
            double range = off.Max() - off.Min();
            for (int i = 0; i < on.Length; i++)
                Assert.True(Math.Abs(on[i] - off[i]) < 0.05 * range, $"{kernel}: logit {i} = {on[i]} with int8 attention, {off[i]} without (range {range})");
            Assert.True(on.Zip(off).Any(p => p.First != p.Second), $"{kernel}: int8 attention changed nothing");
        }
    }

    /// <summary>Rows of softmax(random logits); sharp rows put most mass on a few keys (the hard case for 8 bits).</summary>
    private static float[] SoftmaxRows(Random rng, int rows, int n, bool sharp)
    {
        var p = new float[rows * n];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            var z = new double[n];
            for (int t = 0; t < n; t++) { z[t] = (rng.NextDouble() * 2 - 1) * (sharp ? 8 : 1); max = Math.Max(max, z[t]); }
            double sum = z.Sum(v => Math.Exp(v - max));
            for (int t = 0; t < n; t++) p[r * n + t] = (float)(Math.Exp(z[t] - max) / sum);
        }
        return p;
    }
}
