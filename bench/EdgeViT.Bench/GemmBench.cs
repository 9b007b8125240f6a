using System.Diagnostics;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Bench;

/// <summary>GFLOP/s of the packed GEMM on the shapes a DeiT forward pass issues (M = 197 tokens).</summary>
internal static unsafe class GemmBench
{
    public static void Run(int threads, SimdLevel level, TextWriter o, double peakPerCore)
    {
        (string Name, int M, int K, int N)[] shapes =
        [
            ("tiny qkv", 197, 192, 576), ("tiny fc1", 197, 192, 768), ("tiny fc2", 197, 768, 192),
            ("small qkv", 197, 384, 1152), ("small fc2", 197, 1536, 384),
            ("base qkv", 197, 768, 2304), ("base fc2", 197, 3072, 768),
        ];
        using var pool = new WorkerPool(threads);
        o.WriteLine($"| shape | M x K x N | threads | SIMD | GFLOP/s | of peak |");
        o.WriteLine($"|---|---|---|---|---|---|");
        var rng = new Random(1);
        foreach (var (name, m, k, n) in shapes)
        {
            var a = new float[m * k]; var w = new float[n * k]; var c = new float[m * n];
            for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble();
            for (int i = 0; i < w.Length; i++) w[i] = (float)rng.NextDouble();
            using var packed = PackedMatrix.FromLinear(w, k, n, [], level);
            fixed (float* pa = a, pc = c)
            {
                for (int i = 0; i < 20; i++) Gemm.Multiply(pa, k, m, packed, pc, n, pool: pool);
                var times = new double[30];
                for (int r = 0; r < times.Length; r++)
                {
                    int reps = 20;
                    long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < reps; i++) Gemm.Multiply(pa, k, m, packed, pc, n, pool: pool);
                    times[r] = Stopwatch.GetElapsedTime(t0).TotalSeconds / reps;
                }
                Array.Sort(times);
                double gflops = 2.0 * m * k * n / times[times.Length / 2] / 1e9;
                o.WriteLine($"| {name} | {m}x{k}x{n} | {threads} | {level} | {gflops:F1} | {gflops / (peakPerCore * threads):P0} |");
            }
        }
    }
}
