using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

public sealed unsafe partial class VitEngine
{
    private readonly WorkerPool _pool;
    private readonly PackedMatrix _patch, _head;
    private readonly PackedMatrix? _headDist;
    private readonly PackedBlock[] _blocks;
    private readonly Workspace _ws;
    private readonly TokenReductionContext _reduction;
    private NativeBuffer? _probabilities; // every head's attention rows, allocated the first time a reducer asks

    /// <summary>Sees the residual stream at block boundaries (calibration records it; null in production).</summary>
    internal IForwardObserver? Observer { get; set; }

    internal interface IForwardObserver
    {
        /// <summary>x [n x D] entering block l; block == Depth gives the stream entering the final norm.</summary>
        void BlockInput(int block, float* x, int n);
        /// <summary>x' = x + MSA(LN1(x)) of block l, before pruning; classScore [n] is the head-averaged CLS attention.</summary>
        void AfterAttention(int block, float* x, float* classScore, int n);
    }

    /// <summary>Packed weights of block l, for the calibration backward pass (same assembly).</summary>
    internal (PackedMatrix Qkv, PackedMatrix Proj, PackedMatrix Fc1, PackedMatrix Fc2) PackedBlockWeights(int l) =>
        (_blocks[l].Qkv, _blocks[l].Proj, _blocks[l].Fc1, _blocks[l].Fc2);

    private sealed class PackedBlock(VitBlockWeights w, SimdLevel level) : IDisposable
    {
        public readonly PackedMatrix Qkv = PackedMatrix.FromLinear(w.Qkv.Weight, w.Qkv.In, w.Qkv.Out, w.Qkv.Bias, level);
        public readonly PackedMatrix Proj = PackedMatrix.FromLinear(w.Proj.Weight, w.Proj.In, w.Proj.Out, w.Proj.Bias, level);
        public readonly PackedMatrix Fc1 = PackedMatrix.FromLinear(w.Fc1.Weight, w.Fc1.In, w.Fc1.Out, w.Fc1.Bias, level);
        public readonly PackedMatrix Fc2 = PackedMatrix.FromLinear(w.Fc2.Weight, w.Fc2.In, w.Fc2.Out, w.Fc2.Bias, level);
        public readonly VitBlockWeights Weights = w;
        public void Dispose() { Qkv.Dispose(); Proj.Dispose(); Fc1.Dispose(); Fc2.Dispose(); }
    }

    public VitEngine(VitWeights weights, EngineOptions? options = null)
    {
        Weights = weights;
        Config = weights.Config;
        Options = options ?? new EngineOptions();
        if (Options.Threads < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.Threads, "thread count must be at least 1");
        Simd = Options.Simd ?? SimdLevels.Best;
        SimdLevels.EnsureSupported(Simd);
        LastStats = new ForwardStats(Config.Depth, Config.Tokens);

        var c = Config;
        _patch = PackedMatrix.FromLinear(weights.PatchEmbed.Weight, c.PatchVectorLength, c.EmbedDim, weights.PatchEmbed.Bias, Simd);
        _head = PackedMatrix.FromLinear(weights.Head.Weight, c.EmbedDim, c.Classes, weights.Head.Bias, Simd);
        if (weights.HeadDistillation is { } hd) _headDist = PackedMatrix.FromLinear(hd.Weight, c.EmbedDim, c.Classes, hd.Bias, Simd);
        _blocks = weights.Blocks.Select(b => new PackedBlock(b, Simd)).ToArray();
        _pool = new WorkerPool(Options.Threads);
        _ws = new Workspace(c, Simd, Options.Threads);
        _reduction = new TokenReductionContext(c, Simd, _ws.X, _ws.Qkv, _ws.ClassScore, _ws.ClassAttention, _ws.Sizes, _ws.TokenIds);
    }

    /// <summary>Dense forward pass. <paramref name="imageChw"/>: normalised [3, H, W]; writes Classes logits.</summary>
    public ForwardStats Infer(ReadOnlySpan<float> imageChw, Span<float> logits) => Infer(imageChw, logits, ReadOnlySpan<float>.Empty);

    /// <summary>
    /// Forward pass with threshold pruning: after block l's attention, a non-prefix token survives iff its
    /// class-attention score (CLS row of the attention, averaged over heads) is above thresholds[l]
    /// (in the units of <paramref name="rule"/>). Survivors are compacted in order; dropped tokens stay dropped,
    /// or with <see cref="ThresholdRule.FuseDropped"/> live on as one fused token under proportional attention.
    /// Empty thresholds = dense.
    /// </summary>
    public ForwardStats Infer(ReadOnlySpan<float> imageChw, Span<float> logits, ReadOnlySpan<float> thresholds, ThresholdRule rule = default)
    {
        var c = Config;
        CheckShapes(imageChw, logits);
        if (!thresholds.IsEmpty && thresholds.Length != c.Depth) throw new ArgumentException($"{thresholds.Length} thresholds for {c.Depth} blocks");

        var stats = LastStats;
        fixed (float* img = imageChw)
        {
            int n = BeginImage(img);
            for (int l = 0; l < c.Depth; l++)
            {
                Observer?.BlockInput(l, _ws.X, n);
                AttentionStage(l, n, proportional: rule.FuseDropped && !thresholds.IsEmpty);
                Observer?.AfterAttention(l, _ws.X, _ws.ClassScore, n);
                float tau = thresholds.IsEmpty ? float.NegativeInfinity : thresholds[l];
                n = MlpStage(l, n, tau, rule);
            }
            Observer?.BlockInput(c.Depth, _ws.X, n); // the final residual stream, as a virtual block L
            FinishImage(logits);
        }
        return stats;
    }

    /// <summary>
    /// Forward pass with a token-reduction policy (see <see cref="ITokenReducer"/>): after block l's attention the
    /// reducer rewrites the token rows in place, and the MLP and later blocks run on what it leaves.
    /// </summary>
    public ForwardStats Infer(ReadOnlySpan<float> imageChw, Span<float> logits, ITokenReducer reducer)
    {
        ArgumentNullException.ThrowIfNull(reducer);
        var c = Config;
        CheckShapes(imageChw, logits);

        var needs = reducer.Needs;
        bool proportional = (needs & ReductionNeeds.ProportionalAttention) != 0;
        float* probabilities = null;
        if ((needs & ReductionNeeds.AttentionProbabilities) != 0)
        {
            _probabilities ??= new NativeBuffer((long)c.Heads * c.Tokens * _ws.ScoreStride);
            probabilities = _probabilities.Pointer;
        }
        _reduction.AttentionProbabilities = probabilities;
        _reduction.ProbabilityStride = _ws.ScoreStride;
        _reduction.OverheadMultiplyAdds = 0;

        var stats = LastStats;
        fixed (float* img = imageChw)
        {
            int n = BeginImage(img);
            _reduction.Count = n;
            reducer.BeginImage(_reduction);
            for (int l = 0; l < c.Depth; l++)
            {
                AttentionStage(l, n, proportional, probabilities);
                _reduction.Block = l;
                _reduction.Count = n;
                int reduced = reducer.Reduce(l, _reduction);
                if (reduced < c.PrefixTokens || reduced > n)
                    throw new InvalidOperationException($"{reducer.Name} returned {reduced} tokens at block {l} (had {n}; prefix {c.PrefixTokens})");
                n = MlpStage(l, reduced, float.NaN);
            }
            FinishImage(logits);
        }
        stats.ReductionMultiplyAdds = _reduction.OverheadMultiplyAdds;
        return stats;
    }

    private void CheckShapes(ReadOnlySpan<float> imageChw, Span<float> logits)
    {
        var c = Config;
        int expected = c.InChannels * c.ImageSize * c.ImageSize;
        if (imageChw.Length != expected) throw new ArgumentException($"input has {imageChw.Length} values, expected {c.InChannels}x{c.ImageSize}x{c.ImageSize}");
        if (logits.Length < c.Classes) throw new ArgumentException($"logits span holds {logits.Length}, expected {c.Classes}");
    }

    // ---- stages: Infer is BeginImage, (AttentionStage, MlpStage) per block, FinishImage. The RCTP threshold
    // fitter drives the same stages across many images, one block at a time (see ThresholdFitter).

    /// <summary>Embeds an image into the residual stream; returns the token count.</summary>
    internal int BeginImage(float* img)
    {
        var stats = LastStats;
        stats.MultiplyAdds = Embed(img);
        for (int t = 0; t < Config.Tokens; t++) { _ws.TokenIds[t] = t; _ws.Sizes[t] = 1f; }
        stats.ReductionMultiplyAdds = 0;
        return Config.Tokens;
    }

    /// <summary>x += proj(MSA(LN1(x))) for block l on n tokens; leaves the class scores in <see cref="ClassScores"/>.</summary>
    internal void AttentionStage(int l, int n, bool proportional = false, float* probabilities = null)
    {
        var blk = _blocks[l];
        int d = Config.EmbedDim;
        LayerNormRows(_ws.X, _ws.Xn, n, blk.Weights.Norm1);
        Gemm.Multiply(_ws.Xn, d, n, blk.Qkv, _ws.Qkv, 3 * d, pool: _pool);
        Attention(n, proportional, probabilities);
        Gemm.Multiply(_ws.AttnOut, d, n, blk.Proj, _ws.X, d, accumulate: true, pool: _pool);
        LastStats.MultiplyAdds += 4L * n * d * d + 2L * n * n * d;
    }

    /// <summary>Prunes on the class scores at threshold tau (-inf or NaN: none), then x += MLP(LN2(x)); returns the new count.</summary>
    internal int MlpStage(int l, int n, float tau, ThresholdRule rule = default)
    {
        var blk = _blocks[l];
        var c = Config;
        int d = c.EmbedDim;
        if (!float.IsNegativeInfinity(tau) && !float.IsNaN(tau)) n = PruneTokens(n, tau, rule);
        LastStats.TokensPerBlock[l] = n;
        new ReadOnlySpan<int>(_ws.TokenIds, n).CopyTo(LastStats.KeptTokenIds.AsSpan(l * c.Tokens, n));
        LayerNormRows(_ws.X, _ws.Xn, n, blk.Weights.Norm2);
        Gemm.Multiply(_ws.Xn, d, n, blk.Fc1, _ws.Hidden, c.MlpDim, epilogue: GemmEpilogue.Gelu, pool: _pool);
        Gemm.Multiply(_ws.Hidden, c.MlpDim, n, blk.Fc2, _ws.X, d, accumulate: true, pool: _pool);
        LastStats.MultiplyAdds += 2L * n * d * c.MlpDim;
        return n;
    }

    internal void FinishImage(Span<float> logits) => LastStats.MultiplyAdds += Classify(logits);

    /// <summary>Head-averaged class attention of the last <see cref="AttentionStage"/>, [n].</summary>
    internal float* ClassScores => _ws.ClassScore;

    /// <summary>Saves or restores the residual stream and token ids of the image in flight (n rows).</summary>
    internal void SaveState(int n, Span<float> x, Span<int> ids, Span<float> sizes = default)
    {
        new ReadOnlySpan<float>(_ws.X, n * Config.EmbedDim).CopyTo(x);
        new ReadOnlySpan<int>(_ws.TokenIds, n).CopyTo(ids);
        if (!sizes.IsEmpty) new ReadOnlySpan<float>(_ws.Sizes, n).CopyTo(sizes);
    }

    internal void LoadClassScores(ReadOnlySpan<float> scores) => scores.CopyTo(new Span<float>(_ws.ClassScore, scores.Length));

    /// <summary>Restores a saved state; without sizes every token is one patch.</summary>
    internal void LoadState(int n, ReadOnlySpan<float> x, ReadOnlySpan<int> ids, ReadOnlySpan<float> sizes = default)
    {
        x[..(n * Config.EmbedDim)].CopyTo(new Span<float>(_ws.X, n * Config.EmbedDim));
        ids[..n].CopyTo(new Span<int>(_ws.TokenIds, n));
        if (sizes.IsEmpty) new Span<float>(_ws.Sizes, n).Fill(1f);
        else sizes[..n].CopyTo(new Span<float>(_ws.Sizes, n));
    }

    /// <summary>Patch embedding (im2col + GEMM onto the position embedding) and the prefix tokens.</summary>
    private long Embed(float* img)
    {
        var c = Config;
        int d = c.EmbedDim, p = c.PatchSize, g = c.GridSize, size = c.ImageSize, pvl = c.PatchVectorLength;
        float* patches = _ws.Patches;
        // im2col in the conv kernel's (channel, ky, kx) order: each patch row is p contiguous floats.
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++)
            {
                float* dst = patches + (long)(gy * g + gx) * pvl;
                for (int ch = 0; ch < c.InChannels; ch++)
                    for (int ky = 0; ky < p; ky++, dst += p)
                        new ReadOnlySpan<float>(img + ((long)ch * size + gy * p + ky) * size + gx * p, p).CopyTo(new Span<float>(dst, p));
            }
        // x = pos_embed, then x[prefix..] += patches * W + b; prefix rows add their learned tokens.
        Weights.PositionEmbedding.AsSpan().CopyTo(new Span<float>(_ws.X, c.Tokens * d));
        Gemm.Multiply(patches, pvl, c.Patches, _patch, _ws.X + (long)c.PrefixTokens * d, d, accumulate: true, pool: _pool);
        AddInto(_ws.X, Weights.ClassToken);
        if (Weights.DistillationToken is { } dist) AddInto(_ws.X + d, dist);
        return (long)c.Patches * pvl * d;
    }

    private static void AddInto(float* dst, float[] src)
    {
        for (int i = 0; i < src.Length; i++) dst[i] += src[i];
    }

    private long Classify(Span<float> logits)
    {
        var c = Config;
        int d = c.EmbedDim;
        LayerNormRows(_ws.X, _ws.Xn, c.PrefixTokens, Weights.FinalNorm);
        Gemm.Multiply(_ws.Xn, d, 1, _head, _ws.Logits, c.Classes);
        if (_headDist is not null)
        {
            // Distilled DeiT at inference: the mean of the class head and the distillation head.
            Gemm.Multiply(_ws.Xn + d, d, 1, _headDist, _ws.Logits2, c.Classes);
            for (int i = 0; i < c.Classes; i++) _ws.Logits[i] = 0.5f * (_ws.Logits[i] + _ws.Logits2[i]);
        }
        new ReadOnlySpan<float>(_ws.Logits, c.Classes).CopyTo(logits);
        return (long)d * c.Classes * (_headDist is null ? 1 : 2);
    }

    private void LayerNormRows(float* x, float* y, int rows, Norm norm)
    {
        int d = Config.EmbedDim;
        fixed (float* g = norm.Gamma, b = norm.Beta)
            for (int r = 0; r < rows; r++)
                Elementwise.LayerNorm(Simd, x + (long)r * d, y + (long)r * d, d, g, b, Config.LayerNormEps);
    }

    /// <summary>RCTP's threshold rule on the n tokens in flight (the same compaction a reducer uses).</summary>
    private int PruneTokens(int n, float threshold, ThresholdRule rule)
    {
        _reduction.Count = n;
        return _reduction.KeepAbove(threshold, rule);
    }

    public void Dispose()
    {
        _pool.Dispose();
        _patch.Dispose(); _head.Dispose(); _headDist?.Dispose();
        foreach (var b in _blocks) b.Dispose();
        _ws.Dispose();
        _probabilities?.Dispose();
    }
}
