using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// ToMe, Token Merging (Bolya et al., ICLR 2023), off the shelf (no training), as in the official timm patch:
/// after each block's attention, r tokens are merged away by bipartite soft matching.
/// <list type="bullet">
/// <item>Metric: the block's keys averaged over heads (HeadDim values per token), compared by cosine similarity.</item>
/// <item>Split: set A = even positions, set B = odd positions (alternating, by current row). CLS (A's first) is
/// never a source; a distillation token (B's first) is never a destination.</item>
/// <item>Each A token picks its most similar B token; the r A tokens whose best similarity is highest are merged
/// into their B match by size-weighted average (merge_wavg), sizes summed. r is capped at half the non-prefix
/// tokens, as the official code caps it.</item>
/// <item>Proportional attention (log size on every key's logit) is on by default, as for off-the-shelf models.</item>
/// </list>
/// Result order, as the official merge returns it: prefix tokens, then the unmerged A tokens in their previous
/// order, then every B token (merged into or not) in its previous order. A merged token keeps its destination's
/// (the B token's) id. The order changes nothing past the embedding (the blocks are permutation-equivariant).
/// </summary>
public sealed unsafe class TokenMerging : ITokenReducer
{
    private readonly VitConfig _c;
    private readonly int[] _r;
    private readonly float[] _metric;      // [Tokens x HeadDim] unit-norm head-averaged keys
    private readonly MatchingScratch _matching;
    private readonly float[] _bestSim;     // per A index: similarity of its best B (-inf: may not merge)
    private readonly int[] _bestDst;       // per A index: the row of its best B
    private readonly bool[] _merged;       // per A index: merged away this block
    private readonly float[] _selectScratch;
    private readonly float[] _bRows;       // B rows while A is compacted, [ceil(Tokens / 2) x Dim]
    private readonly float[] _bSizes;
    private readonly int[] _bIds;
    private readonly bool[] _bTouched;

    /// <summary>Constant r per block (the paper's main setting).</summary>
    public TokenMerging(VitConfig config, int r, bool proportionalAttention = true)
        : this(config, Enumerable.Repeat(r, config.Depth).ToArray(), proportionalAttention,
            $"tome(r={r}{(proportionalAttention ? "" : ", no prop-attn")})") { }

    /// <summary>An explicit r per block (the official parse_r's list form); missing blocks merge nothing.</summary>
    public TokenMerging(VitConfig config, IReadOnlyList<int> rPerBlock, bool proportionalAttention = true, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(rPerBlock);
        if (rPerBlock.Count > config.Depth) throw new ArgumentException($"{rPerBlock.Count} r values for {config.Depth} blocks", nameof(rPerBlock));
        if (rPerBlock.Any(r => r < 0)) throw new ArgumentOutOfRangeException(nameof(rPerBlock), "r must be non-negative");
        if (config.PrefixTokens > 2) throw new NotSupportedException("ToMe protects at most a class and a distillation token");
        _c = config;
        _r = new int[config.Depth];
        for (int i = 0; i < rPerBlock.Count; i++) _r[i] = rPerBlock[i];
        ProportionalAttention = proportionalAttention;
        int n = config.Tokens, half = (n + 1) / 2;
        _metric = new float[n * config.HeadDim];
        _bestSim = new float[half];
        _matching = new MatchingScratch(config.Tokens);
        _bestDst = new int[half];
        _merged = new bool[half];
        _selectScratch = new float[half];
        _bRows = new float[half * config.EmbedDim];
        _bSizes = new float[half];
        _bIds = new int[half];
        _bTouched = new bool[half];
        Name = name ?? $"tome(r=[{string.Join(",", _r)}]{(proportionalAttention ? "" : ", no prop-attn")})";
    }

    public string Name { get; }
    public bool ProportionalAttention { get; }
    public ReductionNeeds Needs => ProportionalAttention ? ReductionNeeds.ProportionalAttention : ReductionNeeds.None;

    /// <summary>Tokens merged away at a block that receives n tokens (r after the official cap).</summary>
    public int MergesAt(int block, int n) => Math.Max(0, Math.Min(_r[block], (n - _c.PrefixTokens) / 2));

    public int Reduce(int block, TokenReductionContext context)
    {
        int n = context.Count, d = context.Dim, hd = context.HeadDim, heads = context.Heads, prefix = context.PrefixTokens;
        int r = MergesAt(block, n);
        if (r <= 0) return n;
        int nA = (n + 1) / 2, nB = n / 2;

        // Each A token's best B match (first maximum on ties). CLS (A 0) may not merge; the distillation token
        // (B 0 when present) may not be merged into.
        int firstB = prefix == 2 ? 1 : 0;
        fixed (float* m = _metric)
        {
            BipartiteMatching.HeadMeanUnitKeys(context, 0, n, m);
            BipartiteMatching.BestDestinations(context.Simd, _matching, m, hd, n, prefix, _bestSim, _bestDst);
        }
        // The r most similar edges (ties: the earlier A token), A 0 excluded.
        Selection.MarkTopK(_bestSim, 1, nA, r, _merged, _selectScratch);
        _merged[0] = false;

        // Gather B rows, then fold each merged A token in: B' = (sum of size x row) / (sum of sizes).
        float* x = context.X;
        for (int b = 0; b < nB; b++)
        {
            int t = 2 * b + 1;
            new ReadOnlySpan<float>(x + (long)t * d, d).CopyTo(_bRows.AsSpan(b * d, d));
            _bSizes[b] = context.Sizes[t];
            _bIds[b] = context.TokenIds[t];
            _bTouched[b] = false;
        }
        fixed (float* rows = _bRows)
        {
            for (int a = 1; a < nA; a++)
            {
                if (!_merged[a]) continue;
                int b = (_bestDst[a] - 1) / 2; // destination row 2b + 1
                float* dst = rows + (long)b * d;
                if (!_bTouched[b])
                {
                    float sb = _bSizes[b];
                    for (int i = 0; i < d; i++) dst[i] *= sb;
                    _bTouched[b] = true;
                }
                float sa = context.Sizes[2 * a];
                float* src = x + (long)(2 * a) * d;
                for (int i = 0; i < d; i++) dst[i] += sa * src[i];
                _bSizes[b] += sa;
            }
            int touched = 0;
            for (int b = 0; b < nB; b++)
            {
                if (!_bTouched[b]) continue; // untouched B rows stay bit-exact
                touched++;
                float inv = 1f / _bSizes[b];
                float* dst = rows + (long)b * d;
                for (int i = 0; i < d; i++) dst[i] *= inv;
            }

            // Order: prefix, unmerged A (a >= 1), then B from firstB. A is compacted in place: its k-th survivor
            // moves to row prefix + k - 1 <= 2a, so the write never passes the read.
            int w = prefix;
            for (int a = 1; a < nA; a++)
            {
                if (_merged[a]) continue;
                int t = 2 * a;
                if (w != t)
                {
                    new ReadOnlySpan<float>(x + (long)t * d, d).CopyTo(new Span<float>(x + (long)w * d, d));
                    context.TokenIds[w] = context.TokenIds[t];
                    context.Sizes[w] = context.Sizes[t];
                }
                w++;
            }
            for (int b = firstB; b < nB; b++, w++)
            {
                new ReadOnlySpan<float>(rows + (long)b * d, d).CopyTo(new Span<float>(x + (long)w * d, d));
                context.TokenIds[w] = _bIds[b];
                context.Sizes[w] = _bSizes[b];
            }

            // Key averaging and norms, the A x B similarities, and the weighted sums of the merge.
            context.OverheadMultiplyAdds += (long)n * heads * hd + (long)n * hd + (long)(nA - 1) * (nB - firstB) * hd
                + 2L * r * d + (long)touched * d;
            if (w != n - r) throw new InvalidOperationException($"ToMe bookkeeping: {w} tokens after merging {r} of {n}");
            return w;
        }
    }
}

/// <summary>ToMe with a constant r per block; the knob is r (more r, fewer FLOPs).</summary>
public sealed class ToMeMethod(VitConfig config, bool proportionalAttention = true) : IReductionMethod
{
    public string Name => "tome";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        // Past half the patches the official cap makes every larger r the same as this one.
        int maxR = (config.Tokens - config.PrefixTokens) / 2;
        return KnobSearch.Integer(budget, 0, maxR, r => new TokenMerging(config, r, proportionalAttention), r => $"r={r}", measure);
    }
}
