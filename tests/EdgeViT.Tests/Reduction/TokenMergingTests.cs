using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Reduction;

/// <summary>ToMe (Token Merging) against a straightforward double-precision reference and the dense model.</summary>
public unsafe class TokenMergingTests(ITestOutputHelper output)
{
    private static readonly VitConfig Small = ReducerHookTests.Small;

    /// <summary>
    /// ToMe written out plainly in double precision: which rows survive in which order, with their ids, sizes and
    /// values (size-weighted average of each destination and its sources).
    /// </summary>
    private static (int[] Ids, double[] Sizes, double[][] Rows) Reference(VitConfig c, float[] x, float[] qkv, float[] sizes, int[] ids, int n, int r)
    {
        int d = c.EmbedDim, hd = c.HeadDim, p = c.PrefixTokens;
        r = Math.Min(r, (n - p) / 2);
        var metric = new double[n][];
        for (int t = 0; t < n; t++)
        {
            var m = new double[hd];
            for (int h = 0; h < c.Heads; h++)
                for (int i = 0; i < hd; i++) m[i] += qkv[t * 3 * d + d + h * hd + i] / c.Heads;
            double norm = Math.Sqrt(m.Sum(v => v * v));
            metric[t] = m.Select(v => v / norm).ToArray();
        }
        var aTokens = Enumerable.Range(0, n).Where(t => t % 2 == 0).ToArray();
        var bTokens = Enumerable.Range(0, n).Where(t => t % 2 == 1).ToArray();
        var candidatesB = p == 2 ? bTokens.Skip(1).ToArray() : bTokens;
        var edges = aTokens.Skip(1).Select(a =>
        {
            var best = candidatesB.Select(b => (b, s: metric[a].Zip(metric[b], (u, v) => u * v).Sum())).MaxBy(e => e.s);
            return (a, best.b, best.s);
        }).OrderByDescending(e => e.s).ThenBy(e => e.a).ToArray();
        var merged = edges.Take(r).ToArray();
        var mergedA = merged.Select(e => e.a).ToHashSet();

        var order = new List<int> { 0 };
        if (p == 2) order.Add(1);
        order.AddRange(aTokens.Skip(1).Where(a => !mergedA.Contains(a)));
        order.AddRange(candidatesB);
        var outIds = order.Select(t => ids[t]).ToArray();
        var outSizes = new double[order.Count];
        var outRows = new double[order.Count][];
        for (int o = 0; o < order.Count; o++)
        {
            int t = order[o];
            var sources = merged.Where(e => e.b == t).Select(e => e.a).Prepend(t).ToArray();
            double total = sources.Sum(s => (double)sizes[s]);
            outSizes[o] = total;
            outRows[o] = Enumerable.Range(0, d).Select(i => sources.Sum(s => (double)sizes[s] * x[s * d + i]) / total).ToArray();
        }
        return (outIds, outSizes, outRows);
    }

    [Theory]
    [InlineData(5, false)]
    [InlineData(40, false)] // above the cap: half the patches at block 0
    [InlineData(6, true)]   // a distillation token is protected too
    public void MergesRTokensPerBlockConservesSizeAndEachRowIsTheSizeWeightedAverageOfItsSources(int r, bool distilled)
    {
        var c = Small with { HasDistillationToken = distilled };
        var w = VitWeights.Random(c, 11);
        using var engine = new VitEngine(w);
        var rec = new ReductionRecorder(new TokenMerging(c, r));
        var stats = engine.Infer(ReducerHookTests.RandomImage(c, 12), new float[c.Classes], rec);

        Assert.Equal(c.Depth, rec.Before.Count);
        int expectedN = c.Tokens;
        bool sawMergedSizes = false;
        for (int i = 0; i < rec.Before.Count; i++)
        {
            var (block, n, x, qkv, _, sizes, ids) = rec.Before[i];
            var after = rec.After[i];
            Assert.Equal(expectedN, n);
            int merges = Math.Min(r, (n - c.PrefixTokens) / 2);
            Assert.True(merges > 0);
            Assert.Equal(n - merges, after.N);
            expectedN = after.N;
            Assert.Equal(c.Tokens, after.Sizes.Sum(s => (double)s)); // every patch is still counted exactly once
            sawMergedSizes |= sizes.Any(s => s > 1);

            // Prefix tokens first and untouched.
            for (int t = 0; t < c.PrefixTokens; t++)
            {
                Assert.Equal(t, after.Ids[t]);
                Assert.Equal(x.AsSpan(t * c.EmbedDim, c.EmbedDim).ToArray(), after.X.AsSpan(t * c.EmbedDim, c.EmbedDim).ToArray());
            }
            var (refIds, refSizes, refRows) = Reference(c, x, qkv, sizes, ids, n, r);
            Assert.Equal(refIds, after.Ids);
            for (int o = 0; o < after.N; o++)
            {
                Assert.Equal(refSizes[o], after.Sizes[o]);
                for (int ch = 0; ch < c.EmbedDim; ch++)
                {
                    double expected = refRows[o][ch], actual = after.X[o * c.EmbedDim + ch];
                    Assert.True(Math.Abs(expected - actual) <= 1e-5 * Math.Max(1, Math.Abs(expected)),
                        $"block {block}, row {o} (id {refIds[o]}), channel {ch}: {actual} vs reference {expected}");
                }
            }
        }
        Assert.True(sawMergedSizes, "no block saw a merged token: the weighted average was never exercised");
        Assert.Equal(expectedN, stats.TokensPerBlock[^1]);
        Assert.True(stats.ReductionMultiplyAdds > 0);
    }

    [Fact]
    public void ProportionalAttentionMakesMergingTwoIdenticalTokensExact()
    {
        // With no position embedding, two identical patches give two identical tokens at every layer, and a
        // token of size 2 with proportional attention is attended to exactly as the two were: the same logits.
        var w = VitWeights.Random(Small, 21);
        Array.Clear(w.PositionEmbedding);
        var img = ReducerHookTests.RandomImage(Small, 22);
        // Patches 2 and 7 (tokens 3 and 8: one in B, one in A) get the same pixels.
        int g = Small.GridSize, ps = Small.PatchSize, size = Small.ImageSize;
        (int y, int x) from = (2 / g * ps, 2 % g * ps), to = (7 / g * ps, 7 % g * ps);
        for (int ch = 0; ch < Small.InChannels; ch++)
            for (int dy = 0; dy < ps; dy++)
                for (int dx = 0; dx < ps; dx++)
                    img[(ch * size + to.y + dy) * size + to.x + dx] = img[(ch * size + from.y + dy) * size + from.x + dx];

        using var engine = new VitEngine(w);
        var dense = new float[Small.Classes];
        engine.Infer(img, dense);

        float[] Run(bool proportional)
        {
            var rec = new ReductionRecorder(new TokenMerging(Small, [1], proportional));
            var logits = new float[Small.Classes];
            engine.Infer(img, logits, rec);
            // Exactly the identical pair merged, into token 3 (the B one), at block 0 only.
            var after = rec.After[0];
            Assert.Equal(Small.Tokens - 1, after.N);
            Assert.DoesNotContain(8, after.Ids);
            Assert.Equal(2f, after.Sizes[Array.IndexOf(after.Ids, 3)]);
            Assert.All(rec.After.Skip(1), a => Assert.Equal(Small.Tokens - 1, a.N));
            return logits;
        }

        double MaxDiff(float[] a) => a.Zip(dense, (u, v) => Math.Abs((double)u - v)).Max();
        double scale = dense.Max(v => Math.Abs((double)v));
        double withProp = MaxDiff(Run(true)), without = MaxDiff(Run(false));
        output.WriteLine($"max |logit diff| vs dense: {withProp:G3} with proportional attention, {without:G3} without (logit scale {scale:G3})");
        Assert.True(withProp <= 1e-4 * Math.Max(1, scale), $"proportional attention: max |logit diff| {withProp:G3} (logit scale {scale:G3})");
        Assert.True(without > 100 * Math.Max(withProp, 1e-6), $"without proportional attention the logits barely moved ({without:G3}): the test could not fail");
    }

    /// <summary>Counts what the wrapped policy allocates inside BeginImage and Reduce (on this thread).</summary>
    private sealed class AllocationMeter(ITokenReducer inner) : ITokenReducer
    {
        public long Bytes;
        public string Name => inner.Name;
        public ReductionNeeds Needs => inner.Needs;
        public void BeginImage(TokenReductionContext context)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            inner.BeginImage(context);
            Bytes += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        public int Reduce(int block, TokenReductionContext context)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            int m = inner.Reduce(block, context);
            Bytes += GC.GetAllocatedBytesForCurrentThread() - before;
            return m;
        }
    }

    [Fact]
    public void ToMeAndTpsAllocateNothingPerImage()
    {
        var w = VitWeights.Random(Small, 51);
        using var engine = new VitEngine(w);
        var logits = new float[Small.Classes];
        foreach (ITokenReducer reducer in new ITokenReducer[] { new TokenMerging(Small, 5), new TokenSqueezing(Small, 0.5, [1, 3, 4]) })
        {
            var meter = new AllocationMeter(reducer);
            engine.Infer(ReducerHookTests.RandomImage(Small, 52), logits, meter); // first call: JIT and static setup
            meter.Bytes = 0;
            engine.Infer(ReducerHookTests.RandomImage(Small, 53), logits, meter);
            Assert.Equal(0, meter.Bytes);
        }
    }

    [Fact]
    public void RZeroIsTheDenseModelAndTheMethodPicksTheNearestR()
    {
        var w = VitWeights.Random(Small, 31);
        using var engine = new VitEngine(w);
        var img = ReducerHookTests.RandomImage(Small, 32);
        var dense = new float[Small.Classes];
        var merged = new float[Small.Classes];
        long denseMacs = engine.Infer(img, dense).MultiplyAdds;
        engine.Infer(img, merged, new TokenMerging(Small, 0));
        Assert.Equal(dense, merged);

        double Measure(ITokenReducer r) => (double)engine.Infer(img, merged, r).MultiplyAdds / denseMacs;
        var setting = new ToMeMethod(Small).ForBudget(0.7, Measure);
        int chosen = int.Parse(setting.Setting["r=".Length..]);
        // The chosen r is the one of its neighbours nearest the budget, and FLOPs fall as r rises.
        double at = Measure(new TokenMerging(Small, chosen));
        Assert.Equal(setting.CalibrationFlopsFraction, at, 12);
        Assert.True(Measure(new TokenMerging(Small, chosen + 1)) < at);
        Assert.True(Math.Abs(at - 0.7) <= Math.Abs(Measure(new TokenMerging(Small, chosen + 1)) - 0.7));
        if (chosen > 0) Assert.True(Math.Abs(at - 0.7) <= Math.Abs(Measure(new TokenMerging(Small, chosen - 1)) - 0.7));
    }

    [Fact]
    public void OnTheSharedDeitTinyToMeR8AgreesWithDenseOnMostImagesForFewerFlops()
    {
        // Off the shelf, ToMe r=8 costs DeiT-Ti well under a point of top-1 in the paper, so nearly every
        // prediction should survive; a broken merge (wrong rows, sizes or order) agrees on few. The bar is 80 %.
        var (agree, images, denseMacs, reducedMacs, notLower) = SharedDeit.Compare(c => new TokenMerging(c, 8));
        output.WriteLine($"tome(r=8): top-1 agreement {agree}/{images}, GMACs {denseMacs / 1e9:0.000} dense -> {reducedMacs / 1e9:0.000} ({reducedMacs / denseMacs:P1})");
        Assert.Equal(0, notLower);
        // 197 tokens losing 8 per block: about 74 % of dense by the engine's count (attention on the tokens
        // entering a block, the MLP on those left).
        Assert.InRange(reducedMacs / denseMacs, 0.70, 0.78);
        Assert.True(agree >= 0.8 * images, $"top-1 agreement with dense {agree}/{images}");
    }
}
