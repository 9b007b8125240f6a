using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

/// <summary>
/// Every int8 inner loop this CPU runs (all x86 levels in-process; tests/run.sh adds forced lower levels and
/// arm64 under qemu with and without the dot-product feature) against an exact integer reference.
/// </summary>
public unsafe class Int8GemmTests
{
    public static TheoryData<Int8Kernel> Kernels() { var d = new TheoryData<Int8Kernel>(); foreach (var k in Int8Kernels.Supported) d.Add(k); return d; }

    private static readonly int[][] Shapes = [[1, 1, 1], [197, 192, 576], [13, 7, 33], [25, 300, 50], [5, 513, 17], [40, 64, 100], [3, 768, 192], [12, 4, 32]];

    /// <summary>Values in [-level, level]; extreme: only ±level (activations ±127 are u8 1 and 255 in the u8 x s8 kernels).</summary>
    private static sbyte[] RandomInt8(Random rng, int n, bool extreme, int level)
    {
        var a = new sbyte[n];
        for (int i = 0; i < n; i++) a[i] = extreme ? (sbyte)(rng.Next(2) == 0 ? -level : level) : (sbyte)rng.Next(-level, level + 1);
        return a;
    }

    private static void AssertExact(Int8Kernel kernel, sbyte[] a, sbyte[] w, int m, int k, int n, int threads, string what)
    {
        var layer = new QuantizedLinear(k, n, w, Enumerable.Repeat(1f, n).ToArray(), new float[n]);
        using var packed = new Int8Matrix(layer, kernel);
        int ldc = n + 5;
        var c = new int[m * ldc];
        Array.Fill(c, int.MinValue);
        using var pool = new WorkerPool(threads);
        fixed (sbyte* pa = a) fixed (int* pc = c) Int8Gemm.MultiplyInt(pa, m, packed, pc, ldc, pool);
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                long e = 0;
                for (int kk = 0; kk < k; kk++) e += a[i * k + kk] * w[j * k + kk];
                if (c[i * ldc + j] != e) Assert.Fail($"{kernel} m={m} k={k} n={n} {what}: C[{i},{j}] = {c[i * ldc + j]}, exact {e}");
            }
            for (int j = n; j < ldc; j++) Assert.Equal(int.MinValue, c[i * ldc + j]); // padding untouched
        }
    }

    [Theory, MemberData(nameof(Kernels))]
    public void RawSumsAreExactInt32(Int8Kernel kernel)
    {
        var rng = new Random(77 + (int)kernel);
        for (int trial = 0; trial < Shapes.Length + 6; trial++)
        {
            int m, k, n;
            if (trial < Shapes.Length) (m, k, n) = (Shapes[trial][0], Shapes[trial][1], Shapes[trial][2]);
            else (m, k, n) = (rng.Next(1, 40), rng.Next(1, 800), rng.Next(1, 70));
            bool extreme = trial % 3 == 1;
            var a = RandomInt8(rng, m * k, extreme, QuantizedLinear.ActivationLevel);
            var w = RandomInt8(rng, n * k, extreme, QuantizedLinear.WeightLevel);
            AssertExact(kernel, a, w, m, k, n, 1 + trial % 3, $"extreme={extreme}");
        }
    }

    /// <summary>
    /// The vpmaddubsw saturation boundary: activations all +127 (u8 255) against weights all +64, all -64 and
    /// alternating ±64, so every adjacent pair of products is ±2 * 255 * 64 = ±32640, the int16 limit the rule keeps.
    /// </summary>
    [Theory, MemberData(nameof(Kernels))]
    public void SaturationBoundaryIsExact(Int8Kernel kernel)
    {
        int m = 7, k = 771, n = 37;
        const int wl = QuantizedLinear.WeightLevel;
        var a = Enumerable.Repeat((sbyte)QuantizedLinear.ActivationLevel, m * k).ToArray();
        foreach (var (name, weight) in new (string, Func<int, int, int>)[] { ("+64", (_, _) => wl), ("-64", (_, _) => -wl), ("±64", (j, kk) => (j + kk) % 2 == 0 ? wl : -wl) })
        {
            var w = new sbyte[n * k];
            for (int j = 0; j < n; j++)
                for (int kk = 0; kk < k; kk++) w[j * k + kk] = (sbyte)weight(j, kk);
            AssertExact(kernel, a, w, m, k, n, 1, $"all-127 activations x {name} weights");
            var neg = a.Select(x => (sbyte)-x).ToArray(); // u8 1: the low end
            AssertExact(kernel, neg, w, m, k, n, 1, $"all--127 activations x {name} weights");
        }
    }

    /// <summary>A weight outside the rule is refused on every kernel (vpmaddubsw would saturate it silently).</summary>
    [Theory, MemberData(nameof(Kernels))]
    public void WeightOutsideTheRuleIsRefused(Int8Kernel kernel)
    {
        var layer = new QuantizedLinear(2, 1, [1, QuantizedLinear.WeightLevel + 1], [1f], [0f]);
        var ex = Assert.Throws<ArgumentException>(() => new Int8Matrix(layer, kernel));
        Assert.Contains("outside [-64, 64]", ex.Message);
    }

    /// <summary>The fp32 path: per-row quantisation, exact sums, requantisation, bias, accumulate, GELU.</summary>
    [Theory, MemberData(nameof(Kernels))]
    public void RequantisedOutputMatchesReference(Int8Kernel kernel)
    {
        var rng = new Random(5 + (int)kernel);
        for (int trial = 0; trial < Shapes.Length; trial++)
        {
            int m = Shapes[trial][0], k = Shapes[trial][1], n = Shapes[trial][2];
            bool accumulate = trial % 2 == 1, gelu = trial % 3 == 2;
            var a = Reference.RandomArray(rng, m * k, 3.0);
            if (m > 1) for (int kk = 0; kk < k; kk++) a[kk] = 0f; // an all-zero row: scale 0, output = bias
            var weights = new Linear(k, n, Reference.RandomArray(rng, n * k, 0.1), Reference.RandomArray(rng, n));
            var layer = QuantizedLinear.Quantize(weights);
            using var packed = new Int8Matrix(layer, kernel);
            using var act = new Int8Activations(m, k);
            int ldc = n + 3;
            var c = Reference.RandomArray(rng, m * ldc);
            var before = (float[])c.Clone();
            using var pool = new WorkerPool(1 + trial % 2);
            fixed (float* pa = a, pc = c)
                Int8Gemm.Multiply(pa, k, m, packed, pc, ldc, act, accumulate, gelu ? GemmEpilogue.Gelu : GemmEpilogue.None, pool);

            for (int i = 0; i < m; i++)
            {
                var row = a.AsSpan(i * k, k);
                float amax = 0f;
                foreach (var x in row) amax = MathF.Max(amax, MathF.Abs(x));
                float inv = amax > 0 ? 127f / amax : 0f;
                var q = new int[k];
                for (int kk = 0; kk < k; kk++) q[kk] = (int)Math.Clamp(MathF.Round(row[kk] * inv, MidpointRounding.ToEven), -127, 127);
                for (int j = 0; j < n; j++)
                {
                    long acc = 0;
                    for (int kk = 0; kk < k; kk++) acc += q[kk] * layer.Weight[j * k + kk];
                    double e = acc * (double)layer.Scale[j] * (amax / 127.0) + layer.Bias[j] + (accumulate ? before[i * ldc + j] : 0);
                    if (gelu) e = Reference.Gelu(e);
                    double got = c[i * ldc + j];
                    Assert.True(Math.Abs(got - e) <= 2e-5 * (1 + Math.Abs(e)), $"{kernel} m={m} k={k} n={n} acc={accumulate} gelu={gelu}: C[{i},{j}]={got}, expected {e}");
                }
                for (int j = n; j < ldc; j++) Assert.Equal(before[i * ldc + j], c[i * ldc + j]);
            }
        }
    }

    /// <summary>Per-token int8 is a real approximation of the fp32 layer: relative error of a DeiT-shaped layer under 2 %.</summary>
    [Fact]
    public void QuantisedLayerIsCloseToFp32()
    {
        var rng = new Random(3);
        int m = 50, k = 192, n = 96;
        var a = Reference.RandomArray(rng, m * k, 2.0);
        var weights = new Linear(k, n, Reference.RandomArray(rng, n * k, 0.05), Reference.RandomArray(rng, n, 0.1));
        var expect = Reference.Linear(a, m, k, weights.Weight, n, weights.Bias);
        using var packed = new Int8Matrix(QuantizedLinear.Quantize(weights), Int8Kernels.For(SimdLevels.Best));
        using var act = new Int8Activations(m, k);
        var c = new float[m * n];
        fixed (float* pa = a, pc = c) Int8Gemm.Multiply(pa, k, m, packed, pc, n, act);
        double err = 0, norm = 0;
        for (int i = 0; i < c.Length; i++) { err += (c[i] - expect[i]) * (c[i] - expect[i]); norm += expect[i] * expect[i]; }
        Assert.True(Math.Sqrt(err / norm) < 0.02, $"relative RMS error {Math.Sqrt(err / norm):P2}");
        Assert.True(Math.Sqrt(err / norm) > 1e-5, "int8 output equals fp32: the layer was not quantised");
    }

    [Fact]
    public void WeightQuantisationIsSymmetricPerChannelWithin64()
    {
        var w = new Linear(3, 2, [0.5f, -1f, 0.25f, 0f, 0f, 0f], [1f, 2f]);
        var q = QuantizedLinear.Quantize(w);
        Assert.Equal([32, -64, 16, 0, 0, 0], q.Weight.Select(x => (int)x));
        Assert.Equal(1f / 64, q.Scale[0], 6);
        Assert.Equal(1f, q.Scale[1]); // an all-zero channel keeps a finite scale
        Assert.Equal(w.Bias, q.Bias);
    }

    /// <summary>The int8 engine on a small random ViT: every kernel gives the same logits, close to the fp32 engine's.</summary>
    [Fact]
    public void Int8EngineAgreesAcrossKernelsAndWithFp32()
    {
        var config = VitEngineTests.Small;
        var w = VitWeights.Random(config, seed: 21);
        var img = VitEngineTests.RandomImage(config, 2);
        var fp32 = new float[config.Classes];
        using (var e = new VitEngine(w)) e.Infer(img, fp32);
        float[]? first = null;
        foreach (var kernel in Int8Kernels.Supported)
        {
            var level = Int8Kernels.Level(kernel);
            using var engine = new VitEngine(w, new EngineOptions(2, level) { Precision = Precision.Int8, Int8Kernel = kernel });
            var logits = new float[config.Classes];
            engine.Infer(img, logits);
            double range = fp32.Max() - fp32.Min();
            for (int i = 0; i < logits.Length; i++)
                Assert.True(Math.Abs(logits[i] - fp32[i]) < 0.05 * range, $"{kernel}: logit {i} = {logits[i]}, fp32 {fp32[i]} (range {range})");
            Assert.True(logits.Zip(fp32).Any(p => p.First != p.Second), $"{kernel}: logits identical to fp32");
            first ??= logits;
            for (int i = 0; i < logits.Length; i++)
                Assert.True(Math.Abs(logits[i] - first[i]) < 2e-3 * (1 + Math.Abs(first[i])), $"{kernel}: logit {i} = {logits[i]}, {Int8Kernels.Supported[0]} gave {first[i]}");
        }
    }

    /// <summary>The int8 forward pass allocates nothing per image once warm (1 and 2 threads).</summary>
    [Fact]
    public void Int8ForwardAllocatesNothing()
    {
        var config = VitEngineTests.Small;
        var w = VitWeights.Random(config, seed: 5);
        var img = VitEngineTests.RandomImage(config, 6);
        var logits = new float[config.Classes];
        foreach (int threads in new[] { 1, 2 })
        {
            using var engine = new VitEngine(w, new EngineOptions(threads) { Precision = Precision.Int8 });
            long bytes = EdgeViT.Tests.Support.SteadyAllocation.Bytes(() => engine.Infer(img, logits));
            Assert.True(bytes == 0, $"T={threads}: {bytes} bytes allocated per int8 forward pass");
        }
    }
}
