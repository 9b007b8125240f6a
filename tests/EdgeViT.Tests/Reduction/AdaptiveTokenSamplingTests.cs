using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;
using Xunit;
using Xunit.Abstractions;

namespace EdgeViT.Tests.Reduction;

/// <summary>Records, per reduction, what attention left for ATS (class attention per head, v rows) and what ATS kept.</summary>
internal sealed unsafe class AttentionCapture(ITokenReducer inner, Action<TokenReductionContext>? tamper = null) : ITokenReducer
{
    public readonly List<Step> Steps = [];
    public sealed record Step(int Block, int N, int[] IdsBefore, float[][] ClassAttention, float[] Qkv, float[][]? Probabilities, int[] IdsAfter, float[] Extra);

    /// <summary>What the inner reducer exposes after a step (significance, importance), copied by the test.</summary>
    public Func<float[]>? ReadExtra { get; init; }
    public string Name => inner.Name;
    public ReductionNeeds Needs => inner.Needs;
    public void BeginImage(TokenReductionContext context) { Steps.Clear(); inner.BeginImage(context); }

    public int Reduce(int block, TokenReductionContext c)
    {
        tamper?.Invoke(c);
        int n = c.Count;
        var ids = new ReadOnlySpan<int>(c.TokenIds, n).ToArray();
        var ca = Enumerable.Range(0, c.Heads).Select(h => new ReadOnlySpan<float>(c.ClassAttentionPerHead + h * c.MaxTokens, n).ToArray()).ToArray();
        var qkv = new ReadOnlySpan<float>(c.Qkv, n * 3 * c.Dim).ToArray();
        float[][]? p = null;
        if ((inner.Needs & ReductionNeeds.AttentionProbabilities) != 0)
        {
            p = new float[c.Heads][];
            for (int h = 0; h < c.Heads; h++)
            {
                p[h] = new float[n * n];
                for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) p[h][i * n + j] = c.Probability(h, i, j);
            }
        }
        int m = inner.Reduce(block, c);
        Steps.Add(new Step(block, n, ids, ca, qkv, p, new ReadOnlySpan<int>(c.TokenIds, m).ToArray(), ReadExtra?.Invoke() ?? []));
        return m;
    }
}

public unsafe class AdaptiveTokenSamplingTests(ITestOutputHelper output)
{
    private static readonly VitConfig Small = ReducerHookTests.Small;

    /// <summary>Double-precision significance: sum over heads of CLS attention x per-head ||v||, normalised over patch tokens.</summary>
    private static double[] ReferenceSignificance(AttentionCapture.Step s, VitConfig c)
    {
        int n = s.N, d = c.EmbedDim, hd = c.HeadDim;
        var sig = new double[n];
        for (int t = 1; t < n; t++)
            for (int h = 0; h < c.Heads; h++)
            {
                double sq = 0;
                for (int i = 0; i < hd; i++) { double v = s.Qkv[t * 3 * d + 2 * d + h * hd + i]; sq += v * v; }
                sig[t] += s.ClassAttention[h][t] * Math.Sqrt(sq);
            }
        double total = sig.Sum();
        for (int t = 1; t < n; t++) sig[t] /= total;
        return sig;
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.8)]
    [InlineData(1.0)]
    public void NeverExceedsTheCapKeepsTheMostSignificantTokenAndScoresAsTheReference(double cap)
    {
        var w = VitWeights.Random(Small, 11);
        using var engine = new VitEngine(w);
        var ats = new AdaptiveTokenSampling(Small, cap, blocks: [1, 2, 4]);
        var rec = new AttentionCapture(ats) { ReadExtra = () => ats.LastSignificance.ToArray() };
        for (int image = 0; image < 3; image++)
        {
            engine.Infer(ReducerHookTests.RandomImage(Small, 20 + image), new float[Small.Classes], rec);
            Assert.Equal(6, rec.Steps.Count);
            foreach (var s in rec.Steps)
            {
                if (s.Block is not (1 or 2 or 4)) { Assert.Equal(s.IdsBefore, s.IdsAfter); continue; }
                Assert.True(s.IdsAfter.Length <= ats.CapFor(s.N), $"block {s.Block}: kept {s.IdsAfter.Length} > cap {ats.CapFor(s.N)}");
                Assert.Equal(0, s.IdsAfter[0]);
                var reference = ReferenceSignificance(s, Small);
                // A tolerance, not Assert.Equal(.., 5): rounding both to 5 places fails when they straddle a boundary.
                for (int t = 1; t < s.N; t++)
                    Assert.True(Math.Abs(reference[t] - s.Extra[t]) <= 1e-5 * Math.Max(1, Math.Abs(reference[t])),
                        $"block {s.Block} token {t}: significance {s.Extra[t]} vs reference {reference[t]}");
                int top = Enumerable.Range(1, s.N - 1).MaxBy(t => reference[t]);
                Assert.Contains(s.IdsBefore[top], s.IdsAfter);
                // Kept tokens stay in their order, and are a subset of what came in.
                Assert.Equal(s.IdsAfter.OrderBy(id => Array.IndexOf(s.IdsBefore, id)), s.IdsAfter);
                Assert.All(s.IdsAfter, id => Assert.Contains(id, s.IdsBefore));
            }
        }
    }

    [Fact]
    public void KeepsFewerThanTheCapWhenSignificanceIsConcentrated()
    {
        var w = VitWeights.Random(Small, 12);
        using var engine = new VitEngine(w);
        var ats = new AdaptiveTokenSampling(Small, 1.0, blocks: [2]);
        // Every head's CLS row puts 90% on token 5 and spreads the rest: the CDF jumps to ~1 at its last step,
        // so most evenly spaced points land on token 5 and repeat.
        var rec = new AttentionCapture(ats, tamper: c =>
        {
            if (c.Block != 2) return;
            for (int h = 0; h < c.Heads; h++)
                for (int t = 0; t < c.Count; t++)
                    c.ClassAttentionPerHead[h * c.MaxTokens + t] = t == 5 ? 0.9f : 0.1f / (c.Count - 1);
        });
        engine.Infer(ReducerHookTests.RandomImage(Small, 30), new float[Small.Classes], rec);
        var step = rec.Steps.Single(s => s.Block == 2);
        int cap = ats.CapFor(step.N);
        Assert.Equal(step.N, cap); // cap 1.0: only the sampling itself can drop tokens
        Assert.Contains(step.IdsBefore[5], step.IdsAfter);
        Assert.True(step.IdsAfter.Length < cap / 2, $"kept {step.IdsAfter.Length} of cap {cap}");

        // Without the tamper the same block keeps more: the concentration is what shrank the count.
        var plain = new AttentionCapture(new AdaptiveTokenSampling(Small, 1.0, blocks: [2]));
        engine.Infer(ReducerHookTests.RandomImage(Small, 30), new float[Small.Classes], plain);
        Assert.True(plain.Steps.Single(s => s.Block == 2).IdsAfter.Length > step.IdsAfter.Length);
    }

    [Fact]
    public void OnSharedDeitTinyAtsKeepsTheDensePredictionWithFewerFlops()
    {
        using var engine = new VitEngine(SharedDeit.Weights);
        var ats = new AdaptiveTokenSampling(SharedDeit.Weights.Config, 1.0);
        var result = SharedDeit.Compare(engine, ats);
        var (agree, flops) = (result.Agree, result.FlopsFraction);
        output.WriteLine($"{ats.Name}: top-1 agreement {agree}/20, FLOPs {flops:P1} of dense");
        // Cap 1.0 is the official plug-in setting (K = every incoming token at blocks 4..12): only repeated samples
        // drop tokens, which on DeiT-Tiny already halves the FLOPs. Agreement with dense is stricter than accuracy
        // (boundary images flip either way), so the bar is 15/20: a broken significance or sampling at this rate
        // scrambles far more predictions, while a faithful one stays well above it (measured 17/20).
        Assert.True(agree >= 15, $"top-1 agreement {agree}/20");
        Assert.True(flops < 0.9, $"FLOPs fraction {flops:F3}");
    }
}
