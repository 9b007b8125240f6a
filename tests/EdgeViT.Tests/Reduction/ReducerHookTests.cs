using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;
using Xunit;

namespace EdgeViT.Tests.Reduction;

/// <summary>The engine's reduction hook and the two simplest policies on it (RCTP thresholds, top-k/EViT).</summary>
public unsafe class ReducerHookTests
{
    // A small model with real structure: 8x8 patches of a 64x64 image, 3 heads, depth 6.
    internal static readonly VitConfig Small = new(48, 6, 3, 8, 64, 10, 192, false);

    internal static float[] RandomImage(VitConfig c, int seed)
    {
        var rng = new Random(seed);
        var img = new float[c.InChannels * c.ImageSize * c.ImageSize];
        for (int i = 0; i < img.Length; i++) img[i] = (float)(rng.NextDouble() * 4 - 2);
        return img;
    }

    private sealed class NoReduction(ReductionNeeds needs) : ITokenReducer
    {
        public string Name => "none";
        public ReductionNeeds Needs => needs;
        public int Reduce(int block, TokenReductionContext context) => context.Count;
    }

    [Theory]
    [InlineData(ReductionNeeds.None)]
    [InlineData(ReductionNeeds.AttentionProbabilities | ReductionNeeds.ProportionalAttention)]
    public void AReducerThatKeepsEverythingIsTheDenseModelBitForBit(ReductionNeeds needs)
    {
        // Proportional attention with every size 1 adds log(1) = 0 to the logits: no change at all.
        var w = VitWeights.Random(Small, 1);
        using var engine = new VitEngine(w);
        var img = RandomImage(Small, 2);
        var dense = new float[Small.Classes];
        var reduced = new float[Small.Classes];
        long denseMacs = engine.Infer(img, dense).MultiplyAdds;
        var stats = engine.Infer(img, reduced, new NoReduction(needs));
        Assert.Equal(dense, reduced);
        Assert.Equal(denseMacs, stats.MultiplyAdds);
        Assert.All(stats.TokensPerBlock, n => Assert.Equal(Small.Tokens, n));
    }

    [Fact]
    public void AttentionProbabilitiesAreSoftmaxRowsWhoseClassRowAveragesToTheClassScore()
    {
        var w = VitWeights.Random(Small, 3);
        using var engine = new VitEngine(w);
        var checker = new ProbabilityChecker();
        engine.Infer(RandomImage(Small, 4), new float[Small.Classes], checker);
        Assert.Equal(Small.Depth, checker.Blocks);
    }

    private sealed class ProbabilityChecker : ITokenReducer
    {
        public int Blocks;
        public string Name => "check";
        public ReductionNeeds Needs => ReductionNeeds.AttentionProbabilities;
        public int Reduce(int block, TokenReductionContext c)
        {
            int n = c.Count;
            for (int h = 0; h < c.Heads; h++)
                for (int q = 0; q < n; q++)
                {
                    double sum = 0;
                    for (int k = 0; k < n; k++) { float p = c.Probability(h, q, k); Assert.InRange(p, 0f, 1f); sum += p; }
                    Assert.Equal(1.0, sum, 4);
                }
            for (int t = 0; t < n; t++)
            {
                double mean = 0;
                for (int h = 0; h < c.Heads; h++) mean += c.Probability(h, 0, t);
                Assert.Equal(c.ClassScore[t], mean / c.Heads, 5);
            }
            // Prune the odd tokens so later blocks check the matrices at a smaller n.
            Span<bool> keep = stackalloc bool[n];
            for (int t = 0; t < n; t++) keep[t] = t % 2 == 0 || block > 2;
            Blocks++;
            return c.Compact(keep);
        }
    }

    [Fact]
    public void ThresholdPruningThroughTheHookEqualsTheProductionPath()
    {
        var w = VitWeights.Random(Small, 5);
        using var engine = new VitEngine(w);
        var img = RandomImage(Small, 6);
        // Thresholds near the class-attention scale (1/n) so every block prunes something.
        float[] thresholds = [0.01f, 0.012f, float.NaN, 0.015f, 0.02f, 0.018f];
        var direct = new float[Small.Classes];
        var hooked = new float[Small.Classes];
        var a = engine.Infer(img, direct, thresholds);
        long macs = a.MultiplyAdds;
        int[] tokens = a.TokensPerBlock.ToArray();
        var b = engine.Infer(img, hooked, new ThresholdPruning(Small, thresholds));
        Assert.Equal(direct, hooked);
        Assert.Equal(macs, b.MultiplyAdds);
        Assert.Equal(tokens, b.TokensPerBlock);
        Assert.True(tokens[^1] < Small.Tokens, "the thresholds pruned nothing: the test would not see a difference");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TopKKeepsTheHighestClassAttentionAtEvitBlocksAndEvitFusesTheRest(bool fuse)
    {
        var w = VitWeights.Random(Small, 7);
        using var engine = new VitEngine(w);
        var rec = new ReductionRecorder(new TopKPruning(Small, 0.7, fuse, blocks: [1, 3, 4]));
        var stats = engine.Infer(RandomImage(Small, 8), new float[Small.Classes], rec);
        int d = Small.EmbedDim;
        for (int i = 0; i < rec.Before.Count; i++)
        {
            var (block, n, x, _, scores, _, ids) = rec.Before[i];
            var after = rec.After[i];
            if (block is not (1 or 3 or 4)) { Assert.Equal(n, after.N); continue; }
            int k = (int)Math.Ceiling(0.7 * (n - 1));
            Assert.Equal(1 + k + (fuse ? 1 : 0), after.N);
            // The kept ones are the k best by class attention, in their original order.
            var best = Enumerable.Range(1, n - 1).OrderByDescending(t => scores[t]).ThenBy(t => t).Take(k).Order().ToArray();
            Assert.Equal(best.Select(t => ids[t]).Prepend(ids[0]), after.Ids.Take(1 + k));
            for (int j = 0; j < k; j++) Assert.Equal(x.AsSpan(best[j] * d, d).ToArray(), after.X.AsSpan((1 + j) * d, d).ToArray());
            if (fuse)
            {
                var dropped = Enumerable.Range(1, n - 1).Except(best).ToArray();
                for (int ch = 0; ch < d; ch++)
                {
                    double expected = dropped.Sum(t => (double)scores[t] * x[t * d + ch]);
                    Assert.Equal(expected, after.X[(1 + k) * d + ch], 4);
                }
                Assert.Equal(-1, after.Ids[1 + k]);
            }
        }
        Assert.True(stats.TokensPerBlock[^1] < Small.Tokens);
    }

    [Fact]
    public void MarkTopKMatchesASortOnRandomScoresWithTies()
    {
        var rng = new Random(9);
        for (int trial = 0; trial < 500; trial++)
        {
            int n = rng.Next(1, 80), from = rng.Next(0, 3), k = rng.Next(0, n + 1);
            var scores = new float[from + n];
            for (int i = 0; i < scores.Length; i++) scores[i] = rng.Next(0, 6) == 0 ? 0.5f : (float)rng.NextDouble();
            var keep = new bool[scores.Length];
            Selection.MarkTopK(scores, from, from + n, k, keep, new float[n]);
            var expected = Enumerable.Range(from, n).OrderByDescending(i => scores[i]).ThenBy(i => i).Take(k).ToHashSet();
            for (int i = from; i < from + n; i++) Assert.Equal(expected.Contains(i), keep[i]);
        }
    }
}
