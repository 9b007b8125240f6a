using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// Turns a plan (how many patch tokens each block should keep on D) into thresholds on the real pruned
/// model. Every calibration image is advanced through block l's attention; block l's threshold is then the
/// class-attention value that keeps exactly the planned number of tokens over D; the images are pruned
/// with it and advanced through the MLP, and so on. So the thresholds see what pruning really does to
/// later blocks (fewer tokens, renormalised attention), and the FLOPs of the pass are the measured FLOPs.
/// </summary>
public sealed unsafe class ThresholdFitter : IDisposable
{
    private readonly VitEngine[] _engines;
    private readonly VitConfig _c;
    private readonly float[][] _embedded; // per image: residual stream after patch embedding [Tokens x D]

    /// <summary>One single-threaded engine per worker (fp32, or int8: the thresholds see that engine's attention); images are split between them.</summary>
    public ThresholdFitter(VitWeights weights, int workers, int images, Simd.SimdLevel? level = null, Precision precision = Precision.Fp32)
    {
        _c = weights.Config;
        var quantized = precision == Precision.Int8 ? Quant.QuantizedWeights.Quantize(weights) : null;
        _engines = Enumerable.Range(0, Math.Max(1, workers))
            .Select(_ => new VitEngine(weights, new EngineOptions(1, level) { Precision = precision, Quantized = quantized })).ToArray();
        _embedded = new float[images][];
    }

    public int Images => _embedded.Length;

    /// <summary>Embeds image i (thread-safe for distinct workers).</summary>
    public void AddImage(int worker, int index, ReadOnlySpan<float> imageChw)
    {
        var engine = _engines[worker];
        var x = new float[_c.Tokens * _c.EmbedDim];
        fixed (float* img = imageChw) engine.BeginImage(img);
        engine.SaveState(_c.Tokens, x, new int[_c.Tokens]);
        _embedded[index] = x;
    }

    public sealed record Fit(float[] Thresholds, double MeasuredFlops, double[] MeanTokensPerBlock);

    /// <summary>Fits thresholds so that after block l the mean patch tokens alive are keepFraction[l] of all.</summary>
    public Fit Realize(IReadOnlyList<double> keepFraction)
    {
        int n0 = _c.Tokens, d = _c.EmbedDim, images = Images, prefix = _c.PrefixTokens;
        if (_embedded.Any(e => e is null)) throw new InvalidOperationException("not every calibration image was added");
        var x = _embedded.Select(e => (float[])e.Clone()).ToArray();
        var ids = Enumerable.Range(0, images).Select(_ => Enumerable.Range(0, n0).ToArray()).ToArray();
        var scores = new float[images][];
        var n = Enumerable.Repeat(n0, images).ToArray();
        var flops = new FlopsModel(_c);
        var perImageFlops = Enumerable.Repeat(flops.Fixed, images).ToArray();
        var thresholds = new float[_c.Depth];
        var meanTokens = new double[_c.Depth];

        for (int l = 0; l < _c.Depth; l++)
        {
            int block = l;
            ForEachImage((engine, i) =>
            {
                engine.LoadState(n[i], x[i], ids[i]);
                engine.AttentionStage(block, n[i]);
                engine.SaveState(n[i], x[i], ids[i]);
                scores[i] = new ReadOnlySpan<float>(engine.ClassScores, n[i]).ToArray();
                perImageFlops[i] += flops.Attention(n[i]);
            });

            long alive = n.Sum(v => (long)(v - prefix));
            long target = (long)Math.Round(Math.Clamp(keepFraction[l], 0, 1) * _c.Patches * images);
            thresholds[l] = target >= alive ? float.NegativeInfinity : KeepTopThreshold(scores, n, prefix, target);

            float tau = thresholds[l];
            ForEachImage((engine, i) =>
            {
                engine.LoadState(n[i], x[i], ids[i]);
                engine.LoadClassScores(scores[i]);
                int kept = engine.MlpStage(block, n[i], tau);
                engine.SaveState(kept, x[i], ids[i]);
                perImageFlops[i] += flops.Mlp(kept);
                n[i] = kept;
            });
            meanTokens[l] = n.Average();
        }
        return new Fit(thresholds, perImageFlops.Average(), meanTokens);
    }

    /// <summary>The value strictly below which all but the top <paramref name="keep"/> patch scores fall.</summary>
    private static float KeepTopThreshold(float[][] scores, int[] n, int prefix, long keep)
    {
        var all = new List<float>();
        for (int i = 0; i < scores.Length; i++)
            for (int t = prefix; t < n[i]; t++) all.Add(scores[i][t]);
        all.Sort();
        long drop = all.Count - keep; // drop the lowest 'drop' scores: keep iff score > tau
        if (drop <= 0) return float.NegativeInfinity;
        if (keep <= 0) return all[^1];
        float lo = all[(int)drop - 1], hi = all[(int)drop];
        return lo == hi ? lo : lo + (hi - lo) * 0.5f;
    }

    private void ForEachImage(Action<VitEngine, int> work)
    {
        int workers = _engines.Length, images = Images;
        System.Threading.Tasks.Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            for (int i = w; i < images; i += workers) work(_engines[w], i);
        });
    }

    public void Dispose() { foreach (var e in _engines) e.Dispose(); }
}
