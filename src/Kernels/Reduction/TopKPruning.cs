using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// Top-k by class attention (the "top-k" baseline) and EViT (Liang et al., ICLR 2022): at each pruning block keep
/// ceil(keepRate x (n - 1)) of the n - 1 non-CLS tokens with the highest head-averaged class attention. With
/// <c>fuse</c>, EViT's inattentive-token fusion: the dropped tokens become one extra token, their sum weighted by
/// their class attention (unnormalised, as in the official code), appended after the kept ones.
/// EViT prunes DeiT at blocks 4, 7 and 10 (0-based 3, 6, 9), the default here.
/// </summary>
public sealed unsafe class TopKPruning : ITokenReducer
{
    public static readonly int[] EvitBlocks = [3, 6, 9];

    private readonly VitConfig _c;
    private readonly double _keepRate;
    private readonly bool[] _pruneAt;
    private readonly bool[] _keep;
    private readonly float[] _scratch, _scores, _fused;

    public TopKPruning(VitConfig config, double keepRate, bool fuse, IReadOnlyList<int>? blocks = null)
    {
        if (!(keepRate > 0 && keepRate <= 1)) throw new ArgumentOutOfRangeException(nameof(keepRate), keepRate, "keep rate must be in (0, 1]");
        if (config.PrefixTokens != 1) throw new NotSupportedException("top-k/EViT as published assume one CLS token (no distillation token)");
        _c = config;
        _keepRate = keepRate;
        Fuse = fuse;
        _pruneAt = new bool[config.Depth];
        foreach (int b in blocks ?? EvitBlocks)
        {
            if (b < 0 || b >= config.Depth) throw new ArgumentOutOfRangeException(nameof(blocks), b, $"block must be in 0..{config.Depth - 1}");
            _pruneAt[b] = true;
        }
        _keep = new bool[config.Tokens];
        _scratch = new float[config.Tokens];
        _scores = new float[config.Tokens];
        _fused = new float[config.EmbedDim];
        Name = $"{(fuse ? "evit" : "topk")}(keep={keepRate:0.###})";
    }

    public string Name { get; }
    public bool Fuse { get; }
    public ReductionNeeds Needs => ReductionNeeds.None;

    /// <summary>
    /// EViT's rounding, shared by every keep-rate method (top-k, EViT, TPS, Zero-TPrune): the non-CLS tokens kept at
    /// a pruning block that receives n tokens (CLS included), ceil(keepRate x (n - 1)).
    /// </summary>
    public static int KeptOthers(double keepRate, int n) => Math.Min(n - 1, (int)Math.Ceiling(keepRate * (n - 1) - 1e-9));

    public int Reduce(int block, TokenReductionContext context)
    {
        int n = context.Count, d = context.Dim;
        if (!_pruneAt[block]) return n;
        int k = KeptOthers(_keepRate, n);
        if (k >= n - 1) return n;
        var scores = new ReadOnlySpan<float>(context.ClassScore, n);
        scores.CopyTo(_scores);
        Selection.MarkTopK(_scores, 1, n, k, _keep, _scratch);
        _keep[0] = true;

        if (Fuse)
        {
            // The fused token: sum over dropped tokens of class attention x token, computed before compaction.
            Array.Clear(_fused);
            float size = 0;
            for (int t = 1; t < n; t++)
            {
                if (_keep[t]) continue;
                float w = _scores[t];
                float* row = context.X + (long)t * d;
                for (int i = 0; i < d; i++) _fused[i] += w * row[i];
                size += context.Sizes[t];
            }
            int kept = context.Compact(_keep);
            _fused.CopyTo(context.Row(kept));
            context.TokenIds[kept] = -1;
            context.Sizes[kept] = size;
            context.OverheadMultiplyAdds += (long)(n - 1 - k) * d;
            return kept + 1;
        }
        return context.Compact(_keep);
    }
}

/// <summary>Top-k (fuse = false) or EViT (fuse = true) at EViT's blocks; the knob is the keep rate.</summary>
public sealed class TopKMethod(VitConfig config, bool fuse, IReadOnlyList<int>? blocks = null) : IReductionMethod
{
    public string Name => fuse ? "evit" : "topk";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        var at = blocks ?? TopKPruning.EvitBlocks;
        // Lowest keep rate: one token survives each of the pruning blocks' halvings, i.e. the cheapest EViT setting.
        return KnobSearch.Bisect(budget, 0.02, 1.0, keep => new TopKPruning(config, keep, fuse, at),
            keep => $"keep={keep:0.###} at blocks {string.Join(",", at.Select(b => b + 1))}", measure, flopsRise: true);
    }
}
