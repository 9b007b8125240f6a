using System.Diagnostics;
using System.Runtime.InteropServices;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Bench;

/// <summary>
/// Does EdgeViT get faster with more threads? One engine per thread count on the real model, run in turn on every
/// iteration (rotating which goes first), so drift and other load hit all alike; reports each engine's median ms
/// and the median of its paired ratio against the first thread count. No other engine runs in the process.
/// With a pace (ms of sleep before every inference, as a slow camera paces the service) it also reports the process
/// CPU time per inference: what idle workers' spinning and waking cost when passes do not come back to back.
/// </summary>
internal static partial class ThreadsBench
{
    public static void Run(string model, int[] threadCounts, SimdLevel level, int iterations, TextWriter o, int paceMs = 0)
    {
        var w = ModelLoader.Load(model);
        var engines = threadCounts.Select(t => new VitEngine(w, new EngineOptions(t, level))).ToArray();
        try
        {
            var img = new float[w.Config.InChannels * w.Config.ImageSize * w.Config.ImageSize];
            var rng = new Random(20240601);
            for (int i = 0; i < img.Length; i++) img[i] = (float)(rng.NextDouble() * 4 - 2);
            var logits = new float[w.Config.Classes];
            foreach (var e in engines) for (int i = 0; i < 10; i++) e.Infer(img, logits);
            var ms = threadCounts.Select(_ => new double[iterations]).ToArray();
            var cpu = new double[engines.Length];
            for (int i = 0; i < iterations; i++)
                for (int j = 0; j < engines.Length; j++)
                {
                    int e = (i + j) % engines.Length;
                    if (paceMs > 0) Thread.Sleep(paceMs);
                    double c0 = ProcessCpuMs();
                    long t0 = Stopwatch.GetTimestamp();
                    engines[e].Infer(img, logits);
                    ms[e][i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    // The workers may still spin after the pass: their CPU is charged when the next sample is taken,
                    // so with a pace it lands in the sleep; sample after a spin's worth of time.
                    if (paceMs > 0) Thread.Sleep(1);
                    cpu[e] += ProcessCpuMs() - c0;
                }
            o.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd}, {Path.GetFileName(model)}, SIMD {engines[0].Simd}, {iterations} iterations, engines alternated" +
                (paceMs > 0 ? $", {paceMs} ms of sleep before every inference" : ""));
            o.WriteLine();
            o.WriteLine($"| threads | median ms | p10 ms | p90 ms | vs {threadCounts[0]} thread(s) (median of paired ratios) | process CPU ms per inference | pool stalls |");
            o.WriteLine("|---|---|---|---|---|---|---|");
            for (int e = 0; e < engines.Length; e++)
            {
                var ratios = ms[e].Zip(ms[0], (a, b) => a / b).Order().ToArray();
                var sorted = ms[e].Order().ToArray();
                o.WriteLine($"| {threadCounts[e]} | {sorted[iterations / 2]:F2} | {sorted[iterations / 10]:F2} | {sorted[iterations * 9 / 10]:F2} | **{ratios[iterations / 2]:F3}** | {cpu[e] / iterations:F2} | {engines[e].ParallelStalls} |");
            }
        }
        finally { foreach (var e in engines) e.Dispose(); }
    }

    /// <summary>CPU time of the whole process (all threads) in ms, at nanosecond resolution (CLOCK_PROCESS_CPUTIME_ID).</summary>
    private static double ProcessCpuMs()
    {
        if (clock_gettime(2, out var ts) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
        return ts.Seconds * 1e3 + ts.Nanoseconds / 1e6;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec { public long Seconds; public long Nanoseconds; }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int clock_gettime(int clock, out Timespec ts);
}
