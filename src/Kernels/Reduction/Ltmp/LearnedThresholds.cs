using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Reduction.Ltmp;

/// <summary>
/// LTMP at inference (Bonnaerens and Dambre, "Learned Thresholds Token Merging and Pruning for Vision
/// Transformers", TMLR 2023): after every block's attention, first merge, then prune, each by one learned
/// threshold per block (2L numbers in all), as the official merge-then-prune model does.
/// <list type="bullet">
/// <item>Merging (ToMe's bipartite matching): the non-prefix tokens at even rows are sources, those at odd rows
/// destinations; the similarity is the cosine of the head-averaged keys; every source whose best destination's
/// similarity exceeds the merge threshold is merged into it (no top-r cap), a size-weighted average with sizes
/// summed. A destination's importance becomes the max of its own and its merged sources' importance.</item>
/// <item>Pruning: a token's importance is the mean attention it receives, over heads and all query rows
/// (including CLS); a non-prefix token survives iff its importance exceeds the prune threshold.</item>
/// <item>Proportional attention (log size on the key logits) in every block, as the paper keeps ToMe's.</item>
/// </list>
/// Order afterwards: prefix tokens, the unmerged sources, then the destinations (the official layout, which
/// fixes the even/odd split of the next block). Allocation-free per image: scratch is sized in the constructor.
/// </summary>
public sealed unsafe class LearnedThresholds : ITokenReducer
{
    private readonly VitConfig _c;
    private readonly float[] _merge, _prune;
    private readonly float[] _importance, _bestSim, _sizes, _scores;
    private readonly float[] _metric, _rows; // pinned (never moved by the GC): used through raw pointers
    private readonly float* _metricPtr, _rowsPtr;
    private readonly MatchingScratch _matching;
    private readonly int[] _bestDst, _ids, _slot, _mergedInto;

    public LearnedThresholds(VitConfig config, IReadOnlyList<float> mergeThresholds, IReadOnlyList<float> pruneThresholds)
    {
        if (mergeThresholds.Count != config.Depth || pruneThresholds.Count != config.Depth)
            throw new ArgumentException($"LTMP needs {config.Depth} merge and {config.Depth} prune thresholds, got {mergeThresholds.Count} and {pruneThresholds.Count}");
        _c = config;
        _merge = mergeThresholds.ToArray();
        _prune = pruneThresholds.ToArray();
        int t = config.Tokens;
        _importance = new float[t];
        _metric = GC.AllocateArray<float>(t * config.HeadDim, pinned: true);
        _metricPtr = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_metric));
        _bestSim = new float[t];
        _matching = new MatchingScratch(config.Tokens);
        _bestDst = new int[t];
        _rows = GC.AllocateArray<float>(t * config.EmbedDim, pinned: true);
        _rowsPtr = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_rows));
        _sizes = new float[t];
        _scores = new float[t];
        _ids = new int[t];
        _slot = new int[t];
        _mergedInto = new int[t];
        Name = "ltmp";
    }

    public string Name { get; }
    public ReductionNeeds Needs => ReductionNeeds.AttentionProbabilities | ReductionNeeds.ProportionalAttention;
    public IReadOnlyList<float> MergeThresholds => _merge;
    public IReadOnlyList<float> PruneThresholds => _prune;

    /// <summary>Training only: where to record what each block decided (null at inference).</summary>
    public LtmpTrace? Trace { get; set; }

    public void BeginImage(TokenReductionContext context) => Trace?.Begin();

    public int Reduce(int block, TokenReductionContext ctx)
    {
        int n = ctx.Count, prefix = ctx.PrefixTokens, d = ctx.Dim, heads = ctx.Heads, hd = ctx.HeadDim;
        Trace?.BlockInput(block, n);
        if (n <= prefix) return n;
        long overhead = 0;

        // Importance: mean attention received, over heads and every query row.
        Array.Clear(_importance, 0, n);
        for (int h = 0; h < heads; h++)
            for (int q = 0; q < n; q++)
            {
                float* row = ctx.AttentionProbabilities + ((long)h * ctx.MaxTokens + q) * ctx.ProbabilityStride;
                for (int k = 0; k < n; k++) _importance[k] += row[k];
            }
        float inv = 1f / (heads * n);
        for (int k = 0; k < n; k++) _importance[k] *= inv;
        for (int k = 0; k < prefix; k++) _importance[k] = float.PositiveInfinity;
        overhead += (long)heads * n * n;

        // Similarity and matching as ToMe's: head-averaged unit keys; sources at even rows, destinations at odd rows
        // (prefix rows take no part); each source merges into its best destination if above the merge threshold.
        BipartiteMatching.HeadMeanUnitKeys(ctx, prefix, n, _metricPtr);
        overhead += (long)(n - prefix) * d;
        overhead += BipartiteMatching.BestDestinations(ctx.Simd, _matching, _metricPtr, hd, n, prefix, _bestSim, _bestDst);
        int firstSrc = 2, firstDst = BipartiteMatching.FirstDestination(prefix);
        float tauMerge = _merge[block];
        for (int s = firstSrc; s < n; s += 2)
        {
            int best = _bestDst[s / 2];
            _mergedInto[s] = best >= 0 && _bestSim[s / 2] > tauMerge ? best : -1;
        }

        // Lay out [prefix | unmerged sources | destinations] in the staging rows.
        int slot = 0;
        for (int t = 0; t < prefix; t++) Stage(ctx, t, slot++, scaleBySize: false);
        for (int s = firstSrc; s < n; s += 2)
            if (_mergedInto[s] < 0) Stage(ctx, s, slot++, scaleBySize: false);
        for (int t = firstDst; t < n; t += 2) { _slot[t] = slot; _mergedInto[t] = 0; Stage(ctx, t, slot++, scaleBySize: true); }
        for (int s = firstSrc; s < n; s += 2)
        {
            int dst = _mergedInto[s];
            if (dst < 0) continue;
            int o = _slot[dst];
            _mergedInto[dst]++;
            float size = ctx.Sizes[s];
            float* src = ctx.X + (long)s * d;
            float* acc = _rowsPtr + (long)o * d;
            for (int j = 0; j < d; j++) acc[j] += size * src[j];
            _sizes[o] += size;
            if (_importance[s] > _scores[o]) _scores[o] = _importance[s];
            overhead += d;
            Trace?.Merged(ctx.TokenIds[s], _bestSim[s / 2]);
        }
        for (int t = firstDst; t < n; t += 2)
        {
            int o = _slot[t];
            float* acc = _rowsPtr + (long)o * d;
            if (_mergedInto[t] == 0) { new ReadOnlySpan<float>(ctx.X + (long)t * d, d).CopyTo(new Span<float>(acc, d)); continue; }
            float r = 1f / _sizes[o];
            for (int j = 0; j < d; j++) acc[j] *= r;
        }

        // Prune on importance, compacting the staged rows into X (prefix always kept).
        float tauPrune = _prune[block];
        int kept = 0;
        for (int o = 0; o < slot; o++)
        {
            bool keep = o < prefix || _scores[o] > tauPrune;
            if (o >= prefix) Trace?.PruneDecision(_ids[o], _scores[o], keep);
            if (!keep) continue;
            _rows.AsSpan(o * d, d).CopyTo(ctx.Row(kept));
            ctx.Sizes[kept] = _sizes[o];
            ctx.TokenIds[kept] = _ids[o];
            kept++;
        }
        ctx.OverheadMultiplyAdds += overhead;
        return kept;
    }

    /// <summary>Training: the thresholds change after every step (same arrays, no allocation).</summary>
    internal void SetThresholds(ReadOnlySpan<double> merge, ReadOnlySpan<double> prune)
    {
        for (int l = 0; l < _c.Depth; l++) { _merge[l] = (float)merge[l]; _prune[l] = (float)prune[l]; }
    }

    private void Stage(TokenReductionContext ctx, int t, int o, bool scaleBySize)
    {
        int d = ctx.Dim;
        var src = new ReadOnlySpan<float>(ctx.X + (long)t * d, d);
        var dst = _rows.AsSpan(o * d, d);
        if (scaleBySize) { float s = ctx.Sizes[t]; for (int j = 0; j < d; j++) dst[j] = s * src[j]; }
        else src.CopyTo(dst);
        _sizes[o] = ctx.Sizes[t];
        _scores[o] = _importance[t];
        _ids[o] = ctx.TokenIds[t];
    }
}
