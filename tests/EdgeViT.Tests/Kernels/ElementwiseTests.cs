using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

/// <summary>The row kernels (exp, softmax, GELU, LayerNorm) against double precision on every SIMD level.</summary>
public unsafe class ElementwiseTests
{
    public static TheoryData<SimdLevel> Levels() => GemmTests.Levels();

    [Theory, MemberData(nameof(Levels))]
    public void ExpIsWithinFewUlpOverTheRangeKernelsUse(SimdLevel level)
    {
        // Softmax and GELU pass exp arguments in [-88, 0]; cover beyond both ends and the underflow edge.
        var x = new float[4099];
        for (int i = 0; i < x.Length; i++) x[i] = -100f + 110f * i / (x.Length - 1);
        x[0] = float.NegativeInfinity; x[1] = -87.33654f; x[2] = 0f; x[3] = -1e-8f;
        var y = new float[x.Length];
        fixed (float* px = x, py = y) Exp(level, px, py, x.Length);
        for (int i = 0; i < x.Length; i++)
        {
            double e = Math.Exp(x[i]);
            if (x[i] < -87.33654f) { Assert.True(y[i] <= 1.2e-38f && y[i] >= 0, $"{level}: exp({x[i]}) = {y[i]}"); continue; }
            Assert.True(Math.Abs(y[i] - e) <= 3e-7 * e, $"{level}: exp({x[i]}) = {y[i]}, expected {e}");
        }
    }

    // The reducers' similarity and PageRank kernels: every remainder of every vector width.
    [Theory, MemberData(nameof(Levels))]
    public void DotAddScaledAndScaleMatchDoubleReference(SimdLevel level)
    {
        var rng = new Random(91 + (int)level);
        foreach (int n in new[] { 0, 1, 3, 7, 15, 17, 33, 64, 192, 197 })
        {
            var x = Reference.RandomArray(rng, n, 2.0);
            var y = Reference.RandomArray(rng, n, 2.0);
            const float alpha = -0.37f;
            double dot = 0, absDot = 0;
            for (int i = 0; i < n; i++) { dot += (double)x[i] * y[i]; absDot += Math.Abs((double)x[i] * y[i]); }
            var axpy = (float[])y.Clone();
            var scaled = new float[n];
            float got;
            fixed (float* px = x, py = y, pa = axpy, ps = scaled)
            {
                got = Elementwise.Dot(level, px, py, n);
                Elementwise.AddScaled(level, px, alpha, pa, n);
                Elementwise.Scale(level, px, alpha, ps, n);
            }
            Assert.True(Math.Abs(got - dot) <= 1e-6 * absDot + 1e-7, $"{level} n={n}: dot {got}, expected {dot}");
            for (int i = 0; i < n; i++)
            {
                double e = y[i] + (double)alpha * x[i];
                Assert.True(Math.Abs(axpy[i] - e) <= 2e-7 * (Math.Abs(y[i]) + Math.Abs(alpha * x[i])) + 1e-9, $"{level} n={n}: axpy[{i}] = {axpy[i]}, expected {e}");
                Assert.True(Math.Abs(scaled[i] - (double)alpha * x[i]) <= 1e-7 * Math.Abs(alpha * x[i]), $"{level} n={n}: scaled[{i}] = {scaled[i]}");
            }
        }
    }

    [Theory, MemberData(nameof(Levels))]
    public void SoftmaxGeluAndLayerNormMatchDoubleReference(SimdLevel level)
    {
        var rng = new Random(77 + (int)level);
        foreach (int n in new[] { 1, 5, 17, 64, 197, 200, 769 })
        {
            var x = Reference.RandomArray(rng, n, 8.0);
            var s = (float[])x.Clone();
            fixed (float* p = s) Elementwise.Softmax(level, p, n, 0.125f);
            var es = Reference.Softmax(x, n, 0.125);
            for (int i = 0; i < n; i++) Assert.True(Math.Abs(s[i] - es[i]) <= 1e-6 * es[i] + 1e-9, $"{level} n={n}: softmax[{i}] = {s[i]}, expected {es[i]}");

            var g = (float[])x.Clone();
            fixed (float* p = g) Elementwise.Gelu(level, p, n);
            for (int i = 0; i < n; i++)
            {
                double e = Reference.Gelu(x[i]);
                Assert.True(Math.Abs(g[i] - e) <= 1e-6 * (1 + Math.Abs(e)), $"{level} n={n}: gelu({x[i]}) = {g[i]}, expected {e}");
            }

            var gamma = Reference.RandomArray(rng, n);
            var beta = Reference.RandomArray(rng, n);
            var shifted = x.Select(v => v + 50f).ToArray(); // a large mean, as late blocks have
            var y = new float[n];
            fixed (float* px = shifted, py = y, pg = gamma, pb = beta) Elementwise.LayerNorm(level, px, py, n, pg, pb, 1e-6f);
            var el = Reference.LayerNorm(shifted, n, gamma, beta, 1e-6);
            for (int i = 0; i < n; i++) Assert.True(Math.Abs(y[i] - el[i]) <= 2e-5 * (1 + Math.Abs(el[i])), $"{level} n={n}: layernorm[{i}] = {y[i]}, expected {el[i]}");
        }
    }

    private static void Exp(SimdLevel level, float* x, float* y, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: Exp<V512Ops, System.Runtime.Intrinsics.Vector512<float>>(x, y, n); break;
            case SimdLevel.Vector256: Exp<V256Ops, System.Runtime.Intrinsics.Vector256<float>>(x, y, n); break;
            case SimdLevel.Vector128: Exp<V128Ops, System.Runtime.Intrinsics.Vector128<float>>(x, y, n); break;
            default: Exp<ScalarOps, float>(x, y, n); break;
        }
    }

    private static void Exp<TOps, TV>(float* x, float* y, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        // Whole vectors only, so every element goes through the vector path; the last partial vector is
        // computed in a padded copy.
        int w = TOps.Count, i = 0;
        for (; i <= n - w; i += w) TOps.Store(y + i, TOps.Exp(TOps.Load(x + i)));
        if (i < n)
        {
            float* pad = stackalloc float[64];
            for (int j = 0; j < w; j++) pad[j] = i + j < n ? x[i + j] : 0f;
            TOps.Store(pad, TOps.Exp(TOps.Load(pad)));
            for (int j = 0; i + j < n; j++) y[i + j] = pad[j];
        }
    }
}
