using System.Diagnostics;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Quant;
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
    private readonly Int8Activations? _int8Activations;
    private readonly TokenReductionContext _reduction;
    private NativeBuffer? _probabilities; // every head's attention rows, allocated the first time a reducer asks

    /// <summary>When set, every forward pass adds its time per stage to it (bench --profile); null in production.</summary>
    public StageProfile? Profile { get; set; }

    /// <summary>Sees the residual stream at block boundaries (calibration records it; null in production).</summary>
    internal IForwardObserver? Observer { get; set; }

    internal interface IForwardObserver
    {
        /// <summary>x [n x D] entering block l; block == Depth gives the stream entering the final norm.</summary>
        void BlockInput(int block, float* x, int n);
        /// <summary>x' = x + MSA(LN1(x)) of block l, before pruning; classScore [n] is the head-averaged CLS attention.</summary>
        void AfterAttention(int block, float* x, float* classScore, int n);
    }

    /// <summary>Packed fp32 weights of block l, for the calibration backward pass (same assembly; fp32 engines only).</summary>
    internal (PackedMatrix Qkv, PackedMatrix Proj, PackedMatrix Fc1, PackedMatrix Fc2) PackedBlockWeights(int l)
    {
        var b = _blocks[l];
        if (b.Qkv.Fp32 is null) throw new InvalidOperationException("the calibration backward pass needs an fp32 engine");
        return (b.Qkv.Fp32, b.Proj.Fp32!, b.Fc1.Fp32!, b.Fc2.Fp32!);
    }

    private sealed class PackedBlock : IDisposable
    {
        public readonly LinearLayer Qkv, Proj, Fc1, Fc2;
        public readonly VitBlockWeights Weights;

        public PackedBlock(VitBlockWeights w, SimdLevel level)
        {
            Weights = w;
            Qkv = new LinearLayer(w.Qkv, level); Proj = new LinearLayer(w.Proj, level);
            Fc1 = new LinearLayer(w.Fc1, level); Fc2 = new LinearLayer(w.Fc2, level);
        }

        public PackedBlock(VitBlockWeights w, QuantizedBlock q, Int8Kernel kernel, SimdLevel level, Int8Activations activations)
        {
            Weights = w;
            Qkv = new LinearLayer(q.Qkv, kernel, level, activations); Proj = new LinearLayer(q.Proj, kernel, level, activations);
            Fc1 = new LinearLayer(q.Fc1, kernel, level, activations); Fc2 = new LinearLayer(q.Fc2, kernel, level, activations);
        }

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
        if (Options.Precision == Precision.Int8)
        {
            var q = Options.Quantized ?? QuantizedWeights.Quantize(weights);
            if (q.Blocks.Length != c.Depth || !q.BelongsTo(weights))
                throw new ArgumentException("the quantised weights were made from another model (fingerprint differs)");
            var kernel = Options.Int8Kernel ?? Int8Kernels.For(Simd);
            Int8Kernel = kernel;
            _int8Activations = new Int8Activations(c.Tokens, Math.Max(3 * c.EmbedDim, c.MlpDim));
            _blocks = weights.Blocks.Select((b, i) => new PackedBlock(b, q.Blocks[i], kernel, Simd, _int8Activations)).ToArray();
        }
        else _blocks = weights.Blocks.Select(b => new PackedBlock(b, Simd)).ToArray();
        _pool = new WorkerPool(Options.Threads);
        _ws = new Workspace(c, Simd, Options.Threads);
        _reduction = new TokenReductionContext(c, Simd, _ws.X, _ws.Qkv, _ws.ClassScore, _ws.ClassAttention, _ws.Sizes, _ws.TokenIds, _ws.RunningScore);
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
                AttentionStage(l, n, proportional: rule.FuseDropped && !thresholds.IsEmpty, rule: rule);
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
        var rule = reducer.AttentionRule; // its head pooling and proportional size cap
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
                AttentionStage(l, n, proportional, probabilities, rule);
                _reduction.Block = l;
                _reduction.Count = n;
                long t = Mark();
                int reduced = reducer.Reduce(l, _reduction);
                Lap(ForwardStage.Reduce, ref t);
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
        long t = Mark();
        stats.MultiplyAdds = Embed(img);
        Lap(ForwardStage.Embed, ref t);
        for (int i = 0; i < Config.Tokens; i++) { _ws.TokenIds[i] = i; _ws.Sizes[i] = 1f; }
        stats.ReductionMultiplyAdds = 0;
        return Config.Tokens;
    }

    /// <summary>
    /// x += proj(MSA(LN1(x))) for block l on n tokens; leaves the class scores (pooled over heads as <paramref name="rule"/> says) in <see cref="ClassScores"/>.
    /// In the last block only the prefix rows (class/distillation tokens) get attention output and proj: the head
    /// reads nothing else, so the patch rows' results there are dead work (see <see cref="LiveRows"/>). Every token
    /// still gets keys and values, so the class-attention row, and the thresholds compared with it, are unchanged;
    /// a reducer that asks for every attention row (<paramref name="probabilities"/>) still gets all of them.
    /// </summary>
    internal void AttentionStage(int l, int n, bool proportional = false, float* probabilities = null, ThresholdRule rule = default)
    {
        var blk = _blocks[l];
        int d = Config.EmbedDim;
        int queries = probabilities == null ? LiveRows(l, n) : n;
        long t = Mark();
        fixed (float* g = blk.Weights.Norm1.Gamma, b = blk.Weights.Norm1.Beta)
            blk.Qkv.Apply(_ws.Xn, d, n, _ws.Qkv, 3 * d, pool: _pool, norm: new RowNorm(_ws.X, d, g, b, Config.LayerNormEps));
        Lap(ForwardStage.Qkv, ref t);
        Attention(n, proportional, probabilities, queries, rule, firstBlock: l == 0);
        Lap(ForwardStage.Attention, ref t);
        blk.Proj.Apply(_ws.AttnOut, d, queries, _ws.X, d, accumulate: true, pool: _pool);
        Lap(ForwardStage.Proj, ref t);
        // Nominal multiply-adds (the model's FLOPs, what budgets and the planner count), not the rows skipped.
        LastStats.MultiplyAdds += 4L * n * d * d + 2L * n * n * d;
    }

    /// <summary>
    /// Rows of block l whose output can still reach the head: all n, except in the last block, where the head reads
    /// only the prefix tokens' final state (the patch rows leave that block with their input value, unused). Prefix
    /// tokens always sit first (pruning and every reducer keep them in front). An observer (the calibration probe)
    /// sees complete block states, so with one attached every row is computed.
    /// </summary>
    internal int LiveRows(int l, int n) => l == Config.Depth - 1 && Observer is null ? Math.Min(n, Config.PrefixTokens) : n;

    /// <summary>Prunes on the class scores at threshold tau (-inf or NaN: none), then x += MLP(LN2(x)); returns the new count.</summary>
    internal int MlpStage(int l, int n, float tau, ThresholdRule rule = default)
    {
        n = PruneStage(l, n, tau, rule);
        MlpRows(l, 0, LiveRows(l, n)); // the kept count stays n (stats, FLOPs); the last block computes the prefix only
        LastStats.MultiplyAdds += 2L * n * Config.EmbedDim * Config.MlpDim;
        return n;
    }

    /// <summary>The pruning half of <see cref="MlpStage"/>: compacts the tokens at threshold tau; returns the kept count.</summary>
    internal int PruneStage(int l, int n, float tau, ThresholdRule rule = default)
    {
        var c = Config;
        long t = Mark();
        if (!float.IsNegativeInfinity(tau) && !float.IsNaN(tau)) n = PruneTokens(n, tau, rule);
        LastStats.TokensPerBlock[l] = n;
        new ReadOnlySpan<int>(_ws.TokenIds, n).CopyTo(LastStats.KeptTokenIds.AsSpan(l * c.Tokens, n));
        Lap(ForwardStage.Reduce, ref t);
        return n;
    }

    /// <summary>
    /// x += MLP(LN2(x)) on rows first..first+count-1 of block l. The MLP is per token, so a row's result does not
    /// depend on which other rows run with it (the threshold fitter runs a shared set once, then single rows).
    /// </summary>
    internal void MlpRows(int l, int first, int count)
    {
        if (count <= 0) return;
        var blk = _blocks[l];
        var c = Config;
        int d = c.EmbedDim;
        float* x = _ws.X + (long)first * d;
        long t = Mark();
        fixed (float* g = blk.Weights.Norm2.Gamma, b = blk.Weights.Norm2.Beta)
            blk.Fc1.Apply(_ws.Xn, d, count, _ws.Hidden, c.MlpDim, epilogue: GemmEpilogue.Gelu, pool: _pool,
                norm: new RowNorm(x, d, g, b, c.LayerNormEps));
        Lap(ForwardStage.Fc1Gelu, ref t);
        blk.Fc2.Apply(_ws.Hidden, c.MlpDim, count, x, d, accumulate: true, pool: _pool);
        Lap(ForwardStage.Fc2, ref t);
    }

    internal void FinishImage(Span<float> logits)
    {
        long t = Mark();
        LastStats.MultiplyAdds += Classify(logits);
        Lap(ForwardStage.Head, ref t);
        if (Profile is { } p) p.Passes++;
    }

    private long Mark() => Profile is null ? 0 : Stopwatch.GetTimestamp();

    private void Lap(ForwardStage stage, ref long t)
    {
        if (Profile is not { } p) return;
        long now = Stopwatch.GetTimestamp();
        p.Add(stage, now - t);
        t = now;
    }

    /// <summary>Head-averaged class attention of the last <see cref="AttentionStage"/>, [n].</summary>
    internal float* ClassScores => _ws.ClassScore;

    /// <summary>Saves or restores the residual stream and token ids of the image in flight (n rows).</summary>
    internal void SaveState(int n, Span<float> x, Span<int> ids, Span<float> sizes = default, Span<float> running = default)
    {
        new ReadOnlySpan<float>(_ws.X, n * Config.EmbedDim).CopyTo(x);
        new ReadOnlySpan<int>(_ws.TokenIds, n).CopyTo(ids);
        if (!sizes.IsEmpty) new ReadOnlySpan<float>(_ws.Sizes, n).CopyTo(sizes);
        if (!running.IsEmpty) new ReadOnlySpan<float>(_ws.RunningScore, n).CopyTo(running);
    }

    internal void LoadClassScores(ReadOnlySpan<float> scores) => scores.CopyTo(new Span<float>(_ws.ClassScore, scores.Length));

    /// <summary>Restores a saved state; without sizes every token is one patch; running scores (<see cref="ThresholdRule.ScoreMemory"/>) when given.</summary>
    internal void LoadState(int n, ReadOnlySpan<float> x, ReadOnlySpan<int> ids, ReadOnlySpan<float> sizes = default, ReadOnlySpan<float> running = default)
    {
        if (!running.IsEmpty) running[..n].CopyTo(new Span<float>(_ws.RunningScore, n));
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

    /// <summary>y = LayerNorm(x) for a few rows with no GEMM of its own to fuse into (the final norm's prefix rows).</summary>
    private void LayerNormRows(float* x, float* y, int rows, Norm norm)
    {
        fixed (float* g = norm.Gamma, b = norm.Beta)
            new RowNorm(x, Config.EmbedDim, g, b, Config.LayerNormEps).ApplyAll(Simd, y, Config.EmbedDim, Config.EmbedDim, rows, _pool);
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
        _int8Activations?.Dispose();
        _probabilities?.Dispose();
    }
}
