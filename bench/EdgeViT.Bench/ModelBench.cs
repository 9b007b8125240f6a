using System.Diagnostics;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Bench;

/// <summary>Dense forward-pass time of DeiT-Tiny/Small/Base shapes with random weights.</summary>
internal static class ModelBench
{
    public static void Run(int[] threadCounts, SimdLevel level, string[] sizes, TextWriter o)
    {
        o.WriteLine("| model | GMACs | threads | SIMD | median ms | p90 ms | GFLOP/s (2 x MACs) |");
        o.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var size in sizes)
        {
            var config = VitConfig.DeiT(size);
            var w = VitWeights.Random(config, 1);
            var img = new float[3 * 224 * 224];
            new Random(2).NextBytes(new byte[1]);
            for (int i = 0; i < img.Length; i++) img[i] = (float)(i % 97) / 50f - 1f;
            var logits = new float[config.Classes];
            foreach (int threads in threadCounts)
            {
                using var engine = new VitEngine(w, new EngineOptions(threads, level));
                int iters = size == "base" ? 20 : size == "small" ? 40 : 100;
                for (int i = 0; i < Math.Max(5, iters / 5); i++) engine.Infer(img, logits);
                var ms = new double[iters];
                long macs = 0;
                for (int i = 0; i < iters; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    macs = engine.Infer(img, logits).MultiplyAdds;
                    ms[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                }
                Array.Sort(ms);
                double med = ms[iters / 2];
                o.WriteLine($"| DeiT-{size} | {macs / 1e9:F3} | {threads} | {level} | {med:F2} | {ms[iters * 9 / 10]:F2} | {2 * macs / med / 1e6:F0} |");
            }
        }
    }
}
