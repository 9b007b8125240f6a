using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// ATS (Fayyaz et al., "Adaptive Token Sampling for Efficient Vision Transformers", ECCV 2022), training-free.
/// Significance of patch token j: S_j = sum over heads h of A_h[CLS, j] x ||v_j of head h||, normalised to sum 1.
/// Tokens sorted by S form a cumulative distribution; at inference ATS replaces random draws by K - 1 evenly
/// spaced points on the (min-max normalised) CDF, each picking the token whose CDF value is nearest. Repeated
/// picks collapse, so the count adapts per image and never exceeds the cap K (CLS included).
/// K = max(8, round(capFraction x n)) of the n incoming tokens, as the official code treats a fractional K;
/// ATS sits in DeiT blocks 3..11 (0-based), the official DeiT configuration.
/// </summary>
public sealed unsafe class AdaptiveTokenSampling : ITokenReducer
{
    public static readonly int[] DeitBlocks = [3, 4, 5, 6, 7, 8, 9, 10, 11];
    /// <summary>The official code never samples fewer than 8 tokens.</summary>
    public const int MinimumCap = 8;

    private readonly double _capFraction;
    private readonly bool[] _atBlock;
    private readonly bool[] _keep;
    private readonly float[] _significance, _sortedScores;
    private readonly int[] _sortedTokens;
    private readonly double[] _cdf;

    public AdaptiveTokenSampling(VitConfig config, double capFraction, IReadOnlyList<int>? blocks = null)
    {
        if (!(capFraction > 0 && capFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(capFraction), capFraction, "cap fraction must be in (0, 1]");
        if (config.PrefixTokens != 1) throw new NotSupportedException("ATS scores tokens by the attention of a single CLS token");
        _capFraction = capFraction;
        _atBlock = new bool[config.Depth];
        foreach (int b in blocks ?? DeitBlocks)
        {
            if (b < 0 || b >= config.Depth) throw new ArgumentOutOfRangeException(nameof(blocks), b, $"block must be in 0..{config.Depth - 1}");
            _atBlock[b] = true;
        }
        int t = config.Tokens;
        _keep = new bool[t];
        _significance = new float[t];
        _sortedScores = new float[t];
        _sortedTokens = new int[t];
        _cdf = new double[t];
        Name = $"ats(cap={capFraction:0.###})";
    }

    public string Name { get; }
    public ReductionNeeds Needs => ReductionNeeds.None;

    /// <summary>Significance of the last reduced block, [token] (CLS entry 0); for tests.</summary>
    public ReadOnlySpan<float> LastSignificance => _significance.AsSpan(0, LastCount);
    public int LastCount { get; private set; }

    /// <summary>The cap K (tokens, CLS included) for n incoming tokens.</summary>
    public int CapFor(int n) => Math.Min(n, Math.Max(MinimumCap, (int)Math.Round(_capFraction * n, MidpointRounding.ToEven)));

    public int Reduce(int block, TokenReductionContext context)
    {
        int n = context.Count;
        if (!_atBlock[block]) return n;
        int others = n - 1, samples = CapFor(n) - 1;
        if (others < 2 || samples < 2) return n;

        ComputeSignificance(context, n);
        LastCount = n;

        // Ascending by significance, the order the CDF is accumulated in.
        for (int j = 0; j < others; j++) { _sortedScores[j] = _significance[j + 1]; _sortedTokens[j] = j + 1; }
        Array.Sort(_sortedScores, _sortedTokens, 0, others);
        double sum = 0;
        for (int j = 0; j < others; j++) { sum += _sortedScores[j]; _cdf[j] = sum; }
        double lo = _cdf[0], range = _cdf[others - 1] - lo;
        if (!(range > 0)) return n; // no signal to sample from (all equal): keep everything
        double y0 = double.PositiveInfinity;
        for (int j = 0; j < others; j++)
        {
            _cdf[j] = (_cdf[j] - lo) / range;
            if (_cdf[j] > 0 && _cdf[j] < y0) y0 = _cdf[j];
        }

        // Evenly spaced points from the smallest non-zero CDF value to 1 (the official create_ys), each matched to
        // the nearest CDF entry of any patch token, as the paper describes (the official code, when K - 1 < n - 1,
        // matches only against the K - 1 most significant). Both sequences ascend: one merge pass does it.
        Array.Clear(_keep, 0, n);
        _keep[0] = true;
        int cursor = 0;
        for (int i = 0; i < samples; i++)
        {
            double y = i == samples - 1 ? 1.0 : y0 + i * (1.0 - y0) / (samples - 1);
            while (cursor + 1 < others && Math.Abs(_cdf[cursor + 1] - y) < Math.Abs(_cdf[cursor] - y)) cursor++;
            _keep[_sortedTokens[cursor]] = true;
        }
        return context.Compact(_keep);
    }

    private void ComputeSignificance(TokenReductionContext c, int n)
    {
        int heads = c.Heads, hd = c.HeadDim, ld = 3 * c.Dim;
        _significance[0] = 0;
        double total = 0;
        for (int t = 1; t < n; t++)
        {
            float* v = c.Qkv + (long)t * ld + 2 * c.Dim;
            double s = 0;
            for (int h = 0; h < heads; h++)
            {
                float* vh = v + h * hd;
                float sq = 0;
                for (int i = 0; i < hd; i++) sq += vh[i] * vh[i];
                s += c.ClassAttentionPerHead[h * c.MaxTokens + t] * Math.Sqrt(sq);
            }
            _significance[t] = (float)s;
            total += s;
        }
        float inv = total > 0 ? (float)(1.0 / total) : 0f;
        for (int t = 1; t < n; t++) _significance[t] *= inv;
        c.OverheadMultiplyAdds += (long)(n - 1) * (c.Dim + heads + 1);
    }
}

/// <summary>ATS at its DeiT blocks; the knob is the cap as a fraction of each block's incoming tokens.</summary>
public sealed class AtsMethod(VitConfig config, IReadOnlyList<int>? blocks = null) : IReductionMethod
{
    public string Name => "ats";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        var at = blocks ?? AdaptiveTokenSampling.DeitBlocks;
        // Even uncapped, ATS in all of blocks 4-12 drops the duplicate samples and costs ~0.54 of dense on DeiT-Tiny.
        // For richer budgets start ATS later (the paper also inserts it in a subset of blocks): the first block whose
        // uncapped run still costs at least the budget, then the cap is bisected as usual.
        if (blocks is null)
        {
            var all = at;
            for (int first = 0; first < all.Count; first++)
            {
                at = all.Skip(first).ToArray();
                if (first == all.Count - 1 || measure(new AdaptiveTokenSampling(config, 1.0, at)) >= budget) break;
            }
        }
        var chosen = at;
        // ATS is adaptive: the FLOPs of a cap are only known by running it, so bisect on measurements.
        return KnobSearch.Bisect(budget, 0.02, 1.0, cap => new AdaptiveTokenSampling(config, cap, chosen),
            cap => $"cap={cap:0.###} at blocks {string.Join(",", chosen.Select(b => b + 1))}", measure, flopsRise: true);
    }
}
