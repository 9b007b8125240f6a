using System.Diagnostics;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Reduction.Ltmp;
using EdgeViT.Tests.Kernels;
using EdgeViT.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Reduction;

/// <summary>LTMP: inference against a naive reference, the objective's gradients, and training to a FLOPs target.</summary>
public unsafe class LearnedThresholdsTests(ITestOutputHelper output)
{
    private static readonly VitConfig Small = ReducerHookTests.Small;

    // ---- inference ------------------------------------------------------------------------------------------

    /// <summary>Keeps what the reducer saw (rows, sizes, ids, keys, attention) and what it left.</summary>
    private sealed class Snooper(ITokenReducer inner) : ITokenReducer
    {
        public readonly List<(int Block, int N, float[] X, float[] Sizes, int[] Ids, float[] Qkv, float[] P)> Before = [];
        public readonly List<(int N, float[] X, float[] Sizes, int[] Ids)> After = [];
        public string Name => inner.Name;
        public ReductionNeeds Needs => inner.Needs;
        public void BeginImage(TokenReductionContext c) { Before.Clear(); After.Clear(); inner.BeginImage(c); }
        public int Reduce(int block, TokenReductionContext c)
        {
            int n = c.Count, d = c.Dim;
            var p = new float[c.Heads * n * n];
            for (int h = 0; h < c.Heads; h++) for (int q = 0; q < n; q++) for (int k = 0; k < n; k++) p[(h * n + q) * n + k] = c.Probability(h, q, k);
            Before.Add((block, n, new ReadOnlySpan<float>(c.X, n * d).ToArray(), new ReadOnlySpan<float>(c.Sizes, n).ToArray(),
                new ReadOnlySpan<int>(c.TokenIds, n).ToArray(), new ReadOnlySpan<float>(c.Qkv, n * 3 * d).ToArray(), p));
            int m = inner.Reduce(block, c);
            After.Add((m, new ReadOnlySpan<float>(c.X, m * d).ToArray(), new ReadOnlySpan<float>(c.Sizes, m).ToArray(), new ReadOnlySpan<int>(c.TokenIds, m).ToArray()));
            return m;
        }
    }

    /// <summary>LTMP's block step written plainly from the paper's description, in double precision.</summary>
    private static (double[][] X, double[] Sizes, int[] Ids, int Merged, int Pruned) Reference(VitConfig c, int n, float[] x, float[] sizes, int[] ids,
        float[] qkv, float[] p, double merge, double prune)
    {
        int d = c.EmbedDim, heads = c.Heads, hd = c.HeadDim, prefix = c.PrefixTokens;
        var importance = new double[n];
        for (int k = 0; k < n; k++)
        {
            for (int h = 0; h < heads; h++) for (int q = 0; q < n; q++) importance[k] += p[(h * n + q) * n + k];
            importance[k] /= heads * n;
        }
        double[] Key(int t)
        {
            var m = Enumerable.Range(0, hd).Select(j => Enumerable.Range(0, heads).Average(h => (double)qkv[t * 3 * d + d + h * hd + j])).ToArray();
            double norm = Math.Sqrt(m.Sum(v => v * v));
            return m.Select(v => v / norm).ToArray();
        }
        var src = Enumerable.Range(prefix, n - prefix).Where(t => t % 2 == 0).ToList();
        var dst = Enumerable.Range(prefix, n - prefix).Where(t => t % 2 == 1).ToList();
        var into = new Dictionary<int, int>();
        foreach (int s in src)
        {
            if (dst.Count == 0) break;
            var ks = Key(s);
            var sims = dst.Select(t => ks.Zip(Key(t), (a, b) => a * b).Sum()).ToList();
            int best = sims.IndexOf(sims.Max());
            if (sims[best] > merge) into[s] = dst[best];
        }
        var rows = new List<(double[] X, double Size, int Id, double Score)>();
        for (int t = 0; t < prefix; t++) rows.Add((Row(t), sizes[t], ids[t], double.PositiveInfinity));
        foreach (int s in src.Where(s => !into.ContainsKey(s))) rows.Add((Row(s), sizes[s], ids[s], importance[s]));
        foreach (int t in dst)
        {
            var group = into.Where(kv => kv.Value == t).Select(kv => kv.Key).Prepend(t).ToList();
            double size = group.Sum(u => (double)sizes[u]);
            var merged = new double[d];
            foreach (int u in group) for (int j = 0; j < d; j++) merged[j] += sizes[u] * (double)x[u * d + j] / size;
            rows.Add((merged, size, ids[t], group.Max(u => importance[u])));
        }
        var kept = rows.Where((r, i) => i < prefix || r.Score > prune).ToList();
        return (kept.Select(r => r.X).ToArray(), kept.Select(r => r.Size).ToArray(), kept.Select(r => r.Id).ToArray(), into.Count, rows.Count - kept.Count);

        double[] Row(int t) => Enumerable.Range(0, d).Select(j => (double)x[t * d + j]).ToArray();
    }

    [Fact]
    public void InferenceMergesAndPrunesExactlyTheTokensBeyondTheThresholds()
    {
        var w = VitWeights.Random(Small, 31);
        using var engine = new VitEngine(w);
        // Thresholds near the random model's similarity and importance scales (importance ~ 1/n) so both act.
        float[] merge = [0.5f, 0.45f, 0.6f, 0.4f, 0.5f, 2f];
        float[] prune = [0.016f, 0.02f, 0.0f, 0.03f, 0.04f, 0.05f];
        var ltmp = new LearnedThresholds(Small, merge, prune) { Trace = new LtmpTrace(Small.Depth, Small.Tokens) };
        var snoop = new Snooper(ltmp);
        int totalMerged = 0, totalPruned = 0;
        for (int image = 0; image < 3; image++)
        {
            var stats = engine.Infer(ReducerHookTests.RandomImage(Small, 40 + image), new float[Small.Classes], snoop);
            Assert.Equal(Small.Depth, snoop.Before.Count);
            for (int i = 0; i < snoop.Before.Count; i++)
            {
                var (block, n, x, sizes, ids, qkv, p) = snoop.Before[i];
                var after = snoop.After[i];
                var expected = Reference(Small, n, x, sizes, ids, qkv, p, merge[block], prune[block]);
                totalMerged += expected.Merged; totalPruned += expected.Pruned;
                Assert.Equal(expected.Ids, after.Ids);
                for (int t = 0; t < after.N; t++)
                {
                    Assert.Equal(expected.Sizes[t], after.Sizes[t], 5);
                    for (int j = 0; j < Small.EmbedDim; j++) Assert.Equal(expected.X[t][j], after.X[t * Small.EmbedDim + j], 4);
                }
                // The trace (what training sees) says the same: merged sources, then prune decisions.
                var tr = ltmp.Trace!;
                Assert.Equal(n, tr.TokensIn[block]);
                Assert.Equal(expected.Merged, Enumerable.Range(0, tr.Count[block]).Count(e => tr.IsMerge[block][e]));
                Assert.Equal(after.N, tr.TokensOut(block, Small.PrefixTokens));
                if (i + 1 < snoop.Before.Count) Assert.Equal(after.N, snoop.Before[i + 1].N);
            }
            // Every block paid attention on what the previous one left; the objective's hard FLOPs agree with the engine.
            var fm = new FlopsModel(Small);
            var (_, f) = LtmpObjective.FlopsTerm(fm, [ltmp.Trace!], new double[Small.Depth], new double[Small.Depth], 0.5, 0.5, 1, hardValues: true,
                new double[Small.Depth], new double[Small.Depth]);
            Assert.Equal(stats.MultiplyAdds, f * fm.Dense, 6);
        }
        output.WriteLine($"merged {totalMerged}, pruned {totalPruned}");
        Assert.True(totalMerged > 10 && totalPruned > 10, $"merged {totalMerged}, pruned {totalPruned}: thresholds too far from the scores to test anything");
    }

    [Fact]
    public void InferenceAllocatesNothingPerImage()
    {
        var w = VitWeights.Random(Small, 32);
        using var engine = new VitEngine(w);
        var ltmp = new LearnedThresholds(Small, Enumerable.Repeat(0.3f, Small.Depth).ToArray(), Enumerable.Repeat(0.012f, Small.Depth).ToArray());
        var img = ReducerHookTests.RandomImage(Small, 5);
        var logits = new float[Small.Classes];
        // The first call of each (in SteadyAllocation) warms up: the engine allocates the probability buffer once.
        long reducerBytes = SteadyAllocation.Bytes(() => engine.Infer(img, logits, ltmp));
        var none = new KeepAll(ltmp.Needs); // the engine's own allocations with the same needs, for comparison
        long baseline = SteadyAllocation.Bytes(() => engine.Infer(img, logits, none));
        Assert.True(reducerBytes <= baseline, $"LTMP allocated {reducerBytes} bytes per image (engine alone: {baseline})");
    }

    private sealed class KeepAll(ReductionNeeds needs) : ITokenReducer
    {
        public string Name => "none";
        public ReductionNeeds Needs => needs;
        public int Reduce(int block, TokenReductionContext context) => context.Count;
    }

    // ---- objective ------------------------------------------------------------------------------------------

    private static LtmpTrace RandomTrace(VitConfig c, Random rng)
    {
        var t = new LtmpTrace(c.Depth, c.Tokens);
        int n = c.Tokens;
        for (int l = 0; l < c.Depth; l++)
        {
            t.TokensIn[l] = n;
            if (l == 2) continue; // a block with nothing to decide (as when only prefix tokens are left)
            int alive = c.PrefixTokens;
            for (int i = c.PrefixTokens; i < n; i++)
            {
                bool isMerge = rng.NextDouble() < 0.3;
                bool kept = !isMerge && rng.NextDouble() < 0.7;
                t.Add(l, isMerge, i, (float)rng.NextDouble(), kept);
                if (kept) alive++;
            }
            n = alive;
        }
        return t;
    }

    [Fact]
    public void FlopsTermGradientMatchesCentralFiniteDifferencesForEveryThreshold()
    {
        var c = Small;
        var fm = new FlopsModel(c);
        var rng = new Random(7);
        var batch = Enumerable.Range(0, 3).Select(_ => RandomTrace(c, rng)).ToArray();
        var merge = Enumerable.Range(0, c.Depth).Select(_ => 0.2 + 0.6 * rng.NextDouble()).ToArray();
        var prune = Enumerable.Range(0, c.Depth).Select(_ => 0.2 + 0.6 * rng.NextDouble()).ToArray();
        const double tau = 0.3, target = 0.45, lambda = 10;
        var gm = new double[c.Depth];
        var gp = new double[c.Depth];
        var (loss, f) = LtmpObjective.FlopsTerm(fm, batch, merge, prune, tau, target, lambda, hardValues: false, gm, gp);
        Assert.True(Math.Abs(f - target) > 0.02, $"F = {f}: too close to the target for a meaningful gradient");
        double Loss(double[] m, double[] p) => LtmpObjective.FlopsTerm(fm, batch, m, p, tau, target, lambda, false, new double[c.Depth], new double[c.Depth]).Loss;
        const double h = 1e-5;
        for (int l = 0; l < c.Depth; l++)
            foreach (bool isMerge in new[] { true, false })
            {
                var v = isMerge ? merge : prune;
                double keep = v[l];
                v[l] = keep + h; double up = Loss(merge, prune);
                v[l] = keep - h; double down = Loss(merge, prune);
                v[l] = keep;
                double fd = (up - down) / (2 * h), got = isMerge ? gm[l] : gp[l];
                if (l == 2) { Assert.Equal(0, got); continue; }
                Assert.True(Math.Abs(fd) > 1e-4, $"block {l} {(isMerge ? "merge" : "prune")}: finite difference {fd} too small to test");
                Assert.True(Math.Abs(got - fd) <= 1e-5 * Math.Abs(fd) + 1e-9, $"block {l} {(isMerge ? "merge" : "prune")}: analytic {got}, finite differences {fd}");
            }
        // The straight-through (hard-valued) gradient is the same formula scaled by its own (F - target).
        var hm = new double[c.Depth]; var hp = new double[c.Depth];
        var (_, fh) = LtmpObjective.FlopsTerm(fm, batch, merge, prune, tau, target, lambda, hardValues: true, hm, hp);
        Assert.NotEqual(f, fh);
        Assert.True(loss > 0);
    }

    /// <summary>
    /// What is exact about the task gradient and checked here: for masks m_e(theta) on tokens' states after block l
    /// (scaled as 1 + m_e(theta) - m_e(theta0) so the model is the dense one at theta0), LtmpObjective.TaskGradient
    /// with FisherProbe's signed dL/dm is d CE/d theta of the double-precision reference, by central differences,
    /// for every prune and merge threshold. The approximation (that the dense point stands in for the reduced
    /// model) is what is not checked: it is a modelling choice, documented on LtmpMethod.
    /// </summary>
    [Fact]
    public void TaskGradientIsTheFiniteDifferenceOfTheMaskedReferenceAtTheDensePoint()
    {
        var c = VitEngineTests.Small;
        var w = VitWeights.Random(c, seed: 12);
        var img = VitEngineTests.RandomImage(c, 13);
        const int label = 4;
        using var probe = new FisherProbe(w);
        var stats = new TokenStatistics(c.Depth, c.Patches);
        probe.Measure(img, label, stats);

        // Importance of every token in the dense model (LTMP at thresholds that do nothing), then a trace that
        // treats a random third of each block's tokens as merged sources with made-up similarities.
        using var engine = new VitEngine(w);
        var dense = new LearnedThresholds(c, Enumerable.Repeat(2f, c.Depth).ToArray(), Enumerable.Repeat(-1f, c.Depth).ToArray())
            { Trace = new LtmpTrace(c.Depth, c.Tokens) };
        engine.Infer(img, new float[c.Classes], dense);
        var rng = new Random(3);
        var trace = new LtmpTrace(c.Depth, c.Tokens);
        for (int l = 0; l < c.Depth; l++)
        {
            trace.TokensIn[l] = c.Tokens;
            for (int i = 0; i < dense.Trace.Count[l]; i++)
            {
                bool isMerge = rng.NextDouble() < 0.33;
                trace.Add(l, isMerge, dense.Trace.Id[l][i], isMerge ? (float)(0.5 + 0.05 * (rng.NextDouble() - 0.5)) : dense.Trace.Value[l][i], !isMerge);
            }
        }
        double tau = 0.02;
        var merge = Enumerable.Repeat(0.5, c.Depth).ToArray();
        var prune = Enumerable.Range(0, c.Depth).Select(l => Median(trace, l)).ToArray();
        var gm = new double[c.Depth];
        var gp = new double[c.Depth];
        LtmpObjective.TaskGradient(c, [trace], [stats.MaskGradient], merge, prune, tau, gm, gp);

        double Loss(double[] m, double[] p)
        {
            var mask = new double[c.Depth, c.Tokens];
            for (int l = 0; l < c.Depth; l++) for (int t = 0; t < c.Tokens; t++) mask[l, t] = 1;
            for (int l = 0; l < c.Depth; l++)
                for (int i = 0; i < trace.Count[l]; i++)
                    mask[l, trace.Id[l][i]] = 1 + LtmpObjective.Mask(trace, l, i, m[l], p[l], tau).Soft - LtmpObjective.Mask(trace, l, i, merge[l], prune[l], tau).Soft;
            return ReferenceVit.CrossEntropy(ReferenceVit.Forward(w, img, msaMask: mask, maskWholeToken: true).Logits, label);
        }
        const double h = 1e-5;
        double largest = 0;
        var pairs = new List<(double Got, double Fd, string Where)>();
        for (int l = 0; l < c.Depth; l++)
            foreach (bool isMerge in new[] { true, false })
            {
                var m = (double[])merge.Clone(); var p = (double[])prune.Clone();
                var v = isMerge ? m : p;
                v[l] += h; double up = Loss(m, p);
                v[l] -= 2 * h; double down = Loss(m, p);
                double fd = (up - down) / (2 * h);
                largest = Math.Max(largest, Math.Abs(fd));
                pairs.Add((isMerge ? gm[l] : gp[l], fd, $"block {l} {(isMerge ? "merge" : "prune")}"));
            }
        foreach (var (got, fd, where) in pairs) output.WriteLine($"{where}: analytic {got:E4}, finite differences {fd:E4}");
        foreach (var (got, fd, where) in pairs)
            Assert.True(Math.Abs(got - fd) <= 5e-3 * Math.Abs(fd) + 1e-4 * largest, $"{where}: analytic {got}, finite differences {fd}");
        Assert.True(pairs.Count(q => Math.Abs(q.Fd) > 1e-2 * largest) >= pairs.Count / 2, "too few thresholds with a real gradient");
    }

    private static double Median(LtmpTrace t, int l)
    {
        var v = Enumerable.Range(0, t.Count[l]).Where(i => !t.IsMerge[l][i]).Select(i => (double)t.Value[l][i]).Order().ToArray();
        return v[v.Length / 2];
    }

    // ---- training on the real model -------------------------------------------------------------------------

    [Fact]
    public void TrainingOnSharedImagesLandsNearTheFlopsTarget()
    {
        var weights = ModelLoader.Load(SharedAssets.ModelSafetensors);
        var c = weights.Config;
        // 64 images in batches of 4 (16 steps; the default batch of 16 is for a few hundred images).
        var files = SharedAssets.Images().Where((_, i) => i % 2 == 0).Take(64).ToArray();
        var chw = new float[files.Length][];
        var pre = new ImagePreprocessor();
        for (int i = 0; i < files.Length; i++)
        {
            var image = ImageDecoder.Decode(files[i]);
            chw[i] = new float[pre.OutputLength];
            pre.Process(image.Pixels, image.Width, image.Height, image.Stride, chw[i]);
        }
        var clock = Stopwatch.StartNew();
        var method = new LtmpMethod(weights, files.Length, (i, span) => chw[i].CopyTo(span), Enumerable.Repeat(-1, files.Length).ToArray(),
            new LtmpOptions(BatchSize: 4), output.WriteLine);
        output.WriteLine($"probe {method.ProbeTime.TotalSeconds:F1}s");
        const double target = 0.7;
        var fm = new FlopsModel(c);
        using var engine = new VitEngine(weights, new EngineOptions(2));
        var logits = new float[c.Classes];
        double Measure(ITokenReducer r) => chw.Average(x => engine.Infer(x, logits, r).MultiplyAdds) / fm.Dense;
        var setting = method.ForBudget(target, Measure);
        var t = method.LastTraining!;
        output.WriteLine($"train {t.Time.TotalSeconds:F1}s, steps {t.StepFlops.Count}: {string.Join(" ", t.StepFlops.Select(v => v.ToString("0.###")))}");
        output.WriteLine($"{setting.Setting}; measured {setting.CalibrationFlopsFraction:0.####}");
        Assert.InRange(setting.CalibrationFlopsFraction, target - 0.03, target + 0.03);
        Assert.Equal(16, t.StepFlops.Count);
        // Both mechanisms were learned: some block merges (threshold below 1) and some block prunes (above 0).
        Assert.Contains(t.Merge, m => m < 0.95f);
        Assert.Contains(t.Prune, p => p > 0f);
    }

    /// <summary>
    /// Precision = Int8 trains on the int8 engine: from the same probe, images and start, the int8 run's per-step
    /// FLOPs (measured by its real reduced forward) differ from the fp32 run's, and both learn thresholds.
    /// </summary>
    [Fact]
    public void Int8TrainingRunsTheInt8Engine()
    {
        var weights = ModelLoader.Load(SharedAssets.ModelSafetensors);
        var files = SharedAssets.Images().Where((_, i) => i % 2 == 0).Take(16).ToArray();
        var pre = new ImagePreprocessor();
        var chw = files.Select(f =>
        {
            var image = ImageDecoder.Decode(f);
            var x = new float[pre.OutputLength];
            pre.Process(image.Pixels, image.Width, image.Height, image.Stride, x);
            return x;
        }).ToArray();
        var method = new LtmpMethod(weights, files.Length, (i, span) => chw[i].CopyTo(span), Enumerable.Repeat(-1, files.Length).ToArray(),
            new LtmpOptions(BatchSize: 4));
        var fp32 = method.Train(0.7);
        method.Options = method.Options with { Precision = Precision.Int8 };
        var int8 = method.Train(0.7);
        Assert.Equal(fp32.StepFlops.Count, int8.StepFlops.Count);
        Assert.NotEqual(fp32.StepFlops, int8.StepFlops);
        // The first step runs both engines at the same start thresholds, so its FLOPs differ only by what int8 changes
        // in the scores: a little (a broken int8 engine merges and prunes something else entirely). Later steps follow
        // their own gradients and may drift apart.
        Assert.InRange(int8.StepFlops[0] - fp32.StepFlops[0], -0.03, 0.03);
    }
}
