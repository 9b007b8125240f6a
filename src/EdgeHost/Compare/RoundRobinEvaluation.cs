using System.Diagnostics;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Host.Compare;

/// <summary>Per-image outcomes of one runner (dense or a method at a budget) over the evaluation images.</summary>
public sealed class RunnerOutcomes(string label, ITokenReducer? reducer, int images)
{
    public string Label { get; } = label;
    /// <summary>null: dense (the engine's plain forward, no reducer hook).</summary>
    public ITokenReducer? Reducer { get; } = reducer;
    public bool[] Top1 { get; } = new bool[images];
    public bool[] Top5 { get; } = new bool[images];
    /// <summary>The engine's Infer call, ms.</summary>
    public double[] Ms { get; } = new double[images];
    public long[] MultiplyAdds { get; } = new long[images];
    public long[] ReductionMultiplyAdds { get; } = new long[images];
}

/// <summary>
/// One single-threaded engine pass over the (already decoded) evaluation images in which every runner runs on
/// each image in turn, so accuracy and time come from the same run and the same clock. The order of the runners
/// rotates from image to image, so no runner always goes first (after a cold cache) or last, and slow drift of
/// the machine (other load, clocks, temperature) falls evenly on all of them.
/// </summary>
public static class RoundRobinEvaluation
{
    public static void Run(VitWeights weights, Kernels.Simd.SimdLevel? simd, IReadOnlyList<float[]> images, IReadOnlyList<int> labels,
        IReadOnlyList<RunnerOutcomes> runners, Action<string> log, Precision precision = Precision.Fp32)
    {
        var config = weights.Config;
        using var engine = new VitEngine(weights, new EngineOptions(1, simd) { Precision = precision });
        var logits = new float[config.Classes];
        var best = new int[Math.Min(5, config.Classes)];
        int r = runners.Count, n = images.Count;

        // Warm-up (JIT tiers, caches, the probabilities buffer some reducers ask for): every runner twice, untimed.
        for (int w = 0; w < 2; w++)
            foreach (var runner in runners) Infer(engine, runner.Reducer, images[w % n], logits);

        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < r; j++)
            {
                var runner = runners[(i + j) % r];
                long t0 = Stopwatch.GetTimestamp();
                var stats = Infer(engine, runner.Reducer, images[i], logits);
                long t1 = Stopwatch.GetTimestamp();
                runner.Ms[i] = Inputs.Ms(t0, t1);
                runner.MultiplyAdds[i] = stats.MultiplyAdds;
                runner.ReductionMultiplyAdds[i] = runner.Reducer is null ? 0 : stats.ReductionMultiplyAdds;
                int k = Ranking.TopK(logits, best);
                runner.Top1[i] = k > 0 && best[0] == labels[i];
                runner.Top5[i] = best.AsSpan(0, k).Contains(labels[i]);
            }
            if ((i + 1) % 100 == 0 || i + 1 == n) log($"evaluated {i + 1}/{n} images x {r} runs, {ProgressOutput.ElapsedAndEta(start, i + 1, n)}");
        }
    }

    private static ForwardStats Infer(VitEngine engine, ITokenReducer? reducer, float[] image, float[] logits) =>
        reducer is null ? engine.Infer(image, logits) : engine.Infer(image, logits, reducer);
}
