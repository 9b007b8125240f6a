using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;
using Xunit;

namespace EdgeViT.Tests.Kernels;

public class VitEngineTests
{
    public static TheoryData<SimdLevel, int> LevelsAndThreads()
    {
        var d = new TheoryData<SimdLevel, int>();
        foreach (var l in SimdLevels.Supported) { d.Add(l, 1); d.Add(l, 3); }
        return d;
    }

    // A small ViT whose shapes exercise every remainder: 2 heads of 24, 50 tokens, MLP 72, 10 classes.
    internal static readonly VitConfig Small = new(EmbedDim: 48, Depth: 3, Heads: 2, PatchSize: 4, ImageSize: 28, Classes: 10, MlpDim: 72, HasDistillationToken: false);

    internal static float[] RandomImage(VitConfig c, int seed) => Reference.RandomArray(new Random(seed), c.InChannels * c.ImageSize * c.ImageSize, 2.0);

    [Theory, MemberData(nameof(LevelsAndThreads))]
    public void DenseForwardMatchesDoubleReference(SimdLevel level, int threads)
    {
        foreach (var config in new[] { Small, Small with { HasDistillationToken = true, Heads = 3, EmbedDim = 36 } })
        {
            var w = VitWeights.Random(config, seed: 7);
            var img = RandomImage(config, 3);
            var expect = ReferenceVit.Forward(w, img);
            using var engine = new VitEngine(w, new EngineOptions(threads, level));
            var logits = new float[config.Classes];
            var stats = engine.Infer(img, logits);
            for (int i = 0; i < logits.Length; i++)
                Assert.True(Math.Abs(logits[i] - expect.Logits[i]) < 2e-4 * (1 + Math.Abs(expect.Logits[i])),
                    $"{level} T={threads} dist={config.HasDistillationToken}: logit {i} = {logits[i]}, reference {expect.Logits[i]}");
            Assert.Equal(expect.MultiplyAdds, stats.MultiplyAdds);
            Assert.All(stats.TokensPerBlock, n => Assert.Equal(config.Tokens, n));
        }
    }

    [Theory, MemberData(nameof(LevelsAndThreads))]
    public void PrunedForwardMatchesDoubleReference(SimdLevel level, int threads)
    {
        var w = VitWeights.Random(Small, seed: 11);
        var img = RandomImage(Small, 5);
        // Uniform attention is 1/50; thresholds around it drop a real share of tokens per block.
        float[] thresholds = [0.019f, float.NegativeInfinity, 0.021f];
        var expect = ReferenceVit.Forward(w, img, thresholds);
        using var engine = new VitEngine(w, new EngineOptions(threads, level));
        var logits = new float[Small.Classes];
        var stats = engine.Infer(img, logits, thresholds);
        Assert.Equal(expect.TokensPerBlock, stats.TokensPerBlock);
        Assert.True(stats.TokensPerBlock[^1] < Small.Tokens, "the thresholds should prune something");
        Assert.Equal(expect.MultiplyAdds, stats.MultiplyAdds);
        for (int i = 0; i < logits.Length; i++)
            Assert.True(Math.Abs(logits[i] - expect.Logits[i]) < 2e-4 * (1 + Math.Abs(expect.Logits[i])),
                $"{level} T={threads}: logit {i} = {logits[i]}, reference {expect.Logits[i]}");
    }

    [Theory, MemberData(nameof(GemmTests.Levels), MemberType = typeof(GemmTests))]
    public void AnyThreadCountGivesBitIdenticalLogits(SimdLevel level)
    {
        // DeiT-Tiny's widths (the GEMM, attention and LayerNorm splits of the real model), two blocks. Every
        // parallel split computes whole tiles and rows, so the threads change who computes, never the sums.
        var config = new VitConfig(EmbedDim: 192, Depth: 2, Heads: 3, PatchSize: 16, ImageSize: 224, Classes: 1000, MlpDim: 768, HasDistillationToken: false);
        var w = VitWeights.Random(config, seed: 21);
        var img = RandomImage(config, 4);
        float[]? first = null;
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            using var engine = new VitEngine(w, new EngineOptions(threads, level));
            var logits = new float[config.Classes];
            for (int rep = 0; rep < 3; rep++)
            {
                engine.Infer(img, logits);
                if (first is null) { first = (float[])logits.Clone(); continue; }
                for (int i = 0; i < logits.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(first[i]) == BitConverter.SingleToInt32Bits(logits[i]),
                        $"{level} T={threads}: logit {i} = {logits[i]:R}, 1 thread gave {first[i]:R}");
            }
        }
    }

    /// <summary>Attaching any observer makes the engine compute every row of the last block (the reference here).</summary>
    private sealed unsafe class FullLastBlock : VitEngine.IForwardObserver
    {
        public void BlockInput(int block, float* x, int n) { }
        public void AfterAttention(int block, float* x, float* classScore, int n) { }
    }

    [Theory, MemberData(nameof(GemmTests.Levels), MemberType = typeof(GemmTests))]
    public void SkippingTheLastBlocksPatchRowsLeavesLogitsBitIdentical(SimdLevel level)
    {
        // The head reads only the prefix tokens, so the last block computes attention output, proj and MLP for them
        // alone. Every row of a GEMM, softmax and LayerNorm is computed the same way whoever its neighbours are, so
        // the logits must not move by one bit: dense, pruned, int8, a distillation token, and a reducer (ToMe).
        foreach (var config in new[] { Small, Small with { HasDistillationToken = true, Heads = 3, EmbedDim = 36 } })
        {
            var w = VitWeights.Random(config, seed: 9);
            var img = RandomImage(config, 8);
            float[] thresholds = [0.019f, float.NegativeInfinity, 0.021f];
            foreach (var precision in new[] { Precision.Fp32, Precision.Int8 })
            {
                using var fast = new VitEngine(w, new EngineOptions(2, level) { Precision = precision });
                using var full = new VitEngine(w, new EngineOptions(2, level) { Precision = precision }) { Observer = new FullLastBlock() };
                var a = new float[config.Classes];
                var b = new float[config.Classes];
                foreach (var run in new Func<VitEngine, float[], EdgeViT.Kernels.Engine.ForwardStats>[]
                {
                    (e, o) => e.Infer(img, o),
                    (e, o) => e.Infer(img, o, thresholds),
                    (e, o) => e.Infer(img, o, new EdgeViT.Kernels.Reduction.TokenMerging(config, 6)),
                })
                {
                    var sa = run(fast, a);
                    long fastMacs = sa.MultiplyAdds;
                    var sb = run(full, b);
                    Assert.Equal(sb.MultiplyAdds, fastMacs); // nominal FLOPs: what budgets count, not what was skipped
                    for (int i = 0; i < a.Length; i++)
                        Assert.True(BitConverter.SingleToInt32Bits(a[i]) == BitConverter.SingleToInt32Bits(b[i]),
                            $"{level} {precision} dist={config.HasDistillationToken}: logit {i} = {a[i]:R}, every row computed gave {b[i]:R}");
                }
            }
        }
    }

    [Fact]
    public void InferAllocatesNothingAfterWarmUp()
    {
        var w = VitWeights.Random(Small, seed: 1);
        var img = RandomImage(Small, 1);
        using var engine = new VitEngine(w, new EngineOptions(2));
        var logits = new float[Small.Classes];
        engine.Infer(img, logits);
        float[] thresholds = [0.01f, 0.02f, 0.02f];
        Assert.Equal(0, EdgeViT.Tests.Support.SteadyAllocation.Bytes(() => engine.Infer(img, logits, thresholds)));
    }
}
