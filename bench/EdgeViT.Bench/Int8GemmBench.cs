using System.Diagnostics;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Bench;

/// <summary>
/// The int8 GEMM (activation quantisation included) on DeiT-Tiny's shapes, every int8 kernel this CPU runs,
/// beside the fp32 GEMM at the same vector width: multiply-adds per second and the int8/fp32 time ratio.
/// </summary>
internal static unsafe class Int8GemmBench
{
    public static void Run(int threads, TextWriter o, bool fastest = false)
    {
        (string Name, int M, int K, int N)[] shapes = [("tiny qkv", 197, 192, 576), ("tiny proj", 197, 192, 192), ("tiny fc1", 197, 192, 768), ("tiny fc2", 197, 768, 192)];
        using var pool = new WorkerPool(threads);
        o.WriteLine("| shape | M x K x N | threads | int8 kernel | int8 GMAC/s | fp32 GMAC/s (same width) | int8 / fp32 time |");
        o.WriteLine("|---|---|---|---|---|---|---|");
        var rng = new Random(1);
        foreach (var (name, m, k, n) in shapes)
        {
            var a = new float[m * k]; var w = new float[n * k]; var c = new float[m * n];
            for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
            var q = QuantizedLinear.Quantize(new Linear(k, n, w, new float[n]));
            foreach (var kernel in Int8Kernels.Supported)
            {
                using var packed = new Int8Matrix(q, kernel);
                using var act = new Int8Activations(m, k);
                using var fp = PackedMatrix.FromLinear(w, k, n, [], Int8Kernels.Level(kernel));
                fixed (float* fa = a, fc = c)
                {
                    nint pa0 = (nint)fa, pc0 = (nint)fc;
                    double t8 = Time(fastest, () => Int8Gemm.Multiply((float*)pa0, k, m, packed, (float*)pc0, n, act, pool: pool));
                    double t32 = Time(fastest, () => Gemm.Multiply((float*)pa0, k, m, fp, (float*)pc0, n, pool: pool));
                    double macs = (double)m * k * n;
                    o.WriteLine($"| {name} | {m}x{k}x{n} | {threads} | {kernel} | {macs / t8 / 1e9:F1} | {macs / t32 / 1e9:F1} | {t8 / t32:F2} |");
                }
            }
        }
    }

    /// <summary>Median of 15 means of 10 runs, or (fastest) the fastest of 200 means of 2.</summary>
    private static double Time(bool fastest, Action run)
    {
        for (int i = 0; i < 10; i++) run();
        var times = new double[fastest ? 200 : 15];
        int per = fastest ? 2 : 10;
        for (int r = 0; r < times.Length; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < per; i++) run();
            times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds / per;
        }
        Array.Sort(times);
        return fastest ? times[0] : times[times.Length / 2];
    }
}

/// <summary>
/// Where the int8 forward pass spends its time: the whole DeiT-Tiny pass (fp32 and int8 engines, alternated) beside
/// the time of its 48 block GEMMs alone (fp32 and int8 at the same shapes); the rest is attention, norms, GELU, head.
/// </summary>
internal static unsafe class Int8Profile
{
    public static void Run(int threads, SimdLevel level, TextWriter o)
    {
        var c = new VitConfig(EmbedDim: 192, Depth: 12, Heads: 3, PatchSize: 16, ImageSize: 224, Classes: 1000, MlpDim: 768, HasDistillationToken: false);
        var w = VitWeights.Random(c, 1);
        var img = new float[3 * 224 * 224];
        var rng = new Random(2);
        for (int i = 0; i < img.Length; i++) img[i] = (float)(rng.NextDouble() * 2 - 1);
        var logits = new float[c.Classes];
        using var fp32 = new Kernels.Engine.VitEngine(w, new Kernels.Engine.EngineOptions(threads, level));
        using var int8 = new Kernels.Engine.VitEngine(w, new Kernels.Engine.EngineOptions(threads, level) { Precision = Kernels.Engine.Precision.Int8 });
        var tf = new double[40]; var t8 = new double[40];
        for (int i = 0; i < 5; i++) { fp32.Infer(img, logits); int8.Infer(img, logits); }
        for (int i = 0; i < tf.Length; i++)
        {
            long t0 = Stopwatch.GetTimestamp(); fp32.Infer(img, logits);
            long t1 = Stopwatch.GetTimestamp(); int8.Infer(img, logits);
            long t2 = Stopwatch.GetTimestamp();
            tf[i] = Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds; t8[i] = Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds;
        }
        Array.Sort(tf); Array.Sort(t8);
        double gf = 0, g8 = 0;
        using var pool = new WorkerPool(threads);
        var b = w.Blocks[0];
        using var act = new Int8Activations(c.Tokens, 768);
        var a = new float[c.Tokens * 768]; var outp = new float[c.Tokens * 768];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        foreach (var (lin, gelu) in new[] { (b.Qkv, false), (b.Proj, false), (b.Fc1, true), (b.Fc2, false) })
        {
            using var pf = PackedMatrix.FromLinear(lin.Weight, lin.In, lin.Out, lin.Bias, level);
            using var p8 = new Int8Matrix(QuantizedLinear.Quantize(lin), int8.Int8Kernel!.Value);
            var ep = gelu ? GemmEpilogue.Gelu : GemmEpilogue.None;
            fixed (float* pa = a, pc = outp)
            {
                nint xa = (nint)pa, xc = (nint)pc;
                gf += Median(() => Gemm.Multiply((float*)xa, lin.In, c.Tokens, pf, (float*)xc, lin.Out, epilogue: ep, pool: pool));
                g8 += Median(() => Int8Gemm.Multiply((float*)xa, lin.In, c.Tokens, p8, (float*)xc, lin.Out, act, epilogue: ep, pool: pool));
            }
        }
        gf *= 12; g8 *= 12;
        double mf = tf[tf.Length / 2], m8 = t8[t8.Length / 2];
        o.WriteLine($"| engine | forward ms (median) | 48 block GEMMs ms | rest ms |");
        o.WriteLine($"|---|---|---|---|");
        o.WriteLine($"| fp32 {level} | {mf:F2} | {gf:F2} | {mf - gf:F2} |");
        o.WriteLine($"| int8 {int8.Int8Kernel} | {m8:F2} | {g8:F2} | {m8 - g8:F2} |");
        o.WriteLine($"int8 / fp32 forward {m8 / mf:F3}; GEMMs {g8 / gf:F3}");
    }

    private static double Median(Action run)
    {
        for (int i = 0; i < 5; i++) run();
        var t = new double[21];
        for (int r = 0; r < t.Length; r++) { long t0 = Stopwatch.GetTimestamp(); run(); t[r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds; }
        Array.Sort(t);
        return t[t.Length / 2];
    }
}
