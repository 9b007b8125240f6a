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
    public static void Run(int threads, TextWriter o)
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
                    double t8 = Time(() => Int8Gemm.Multiply((float*)pa0, k, m, packed, (float*)pc0, n, act, pool: pool));
                    double t32 = Time(() => Gemm.Multiply((float*)pa0, k, m, fp, (float*)pc0, n, pool: pool));
                    double macs = (double)m * k * n;
                    o.WriteLine($"| {name} | {m}x{k}x{n} | {threads} | {kernel} | {macs / t8 / 1e9:F1} | {macs / t32 / 1e9:F1} | {t8 / t32:F2} |");
                }
            }
        }
    }

    private static double Time(Action run)
    {
        for (int i = 0; i < 10; i++) run();
        var times = new double[15];
        for (int r = 0; r < times.Length; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < 10; i++) run();
            times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds / 10;
        }
        Array.Sort(times);
        return times[times.Length / 2];
    }
}
