using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// TPS, joint Token Pruning and Squeezing (Wei et al., CVPR 2023), the eTPS variant used without fine-tuning:
/// pruning as in EViT (intra-block, after attention: keep ceil(keepRate x (n - 1)) non-CLS tokens by head-averaged
/// class attention at 0-based blocks 3, 6, 9, the EViT schedule eTPS follows), then squeezing instead of dropping:
/// <list type="bullet">
/// <item>candidate hosts are the reserved (kept) patch tokens of this block; CLS is neither pruned nor a host;</item>
/// <item>each pruned token goes to its most cosine-similar host (token features, x / (|x| + 1e-6) as the official
/// code normalises; first maximum on ties);</item>
/// <item>host j becomes (e x_j + sum_i exp(s_ij) x_i) / (e + sum_i exp(s_ij)) over the pruned tokens i it hosts:
/// the host takes part with its self-similarity 1, i.e. weight exp(1), and the weights are normalised. Token
/// sizes play no part in the weights (the official update ignores them) and attention is not made proportional.</item>
/// </list>
/// Kept tokens stay in their previous order; a host keeps its id and its size becomes the sum of what it absorbed
/// (bookkeeping only). With keep rate 1 nothing changes.
/// </summary>
public sealed unsafe class TokenSqueezing : ITokenReducer
{
    private readonly VitConfig _c;
    private readonly double _keepRate;
    private readonly bool[] _pruneAt;
    private readonly bool[] _keep;
    private readonly float[] _scores, _selectScratch;
    private readonly float[] _invNorm;   // per row: 1 / (|x| + eps)
    private readonly int[] _host;        // per pruned row: its host row
    private readonly float[] _weight;    // per pruned row: exp(similarity to its host)
    private readonly float[] _acc;       // per host row: e x_j + sum exp(s) x_i, [Tokens x Dim]
    private readonly float[] _denominator; // per host row: e + sum exp(s); 0 = hosts nothing
    private readonly int[] _rows;        // pruned rows, then kept patch rows
    private readonly int[] _bestKept;    // per pruned row (in _rows order): index of its host among the kept rows
    private readonly float[] _bestSimilarity;
    private readonly NativeBuffer _unitRows; // x / (|x| + eps) of _rows, in that order, [Tokens x Dim]
    private readonly MatchingScratch _matching;

    public TokenSqueezing(VitConfig config, double keepRate, IReadOnlyList<int>? blocks = null)
    {
        if (!(keepRate > 0 && keepRate <= 1)) throw new ArgumentOutOfRangeException(nameof(keepRate), keepRate, "keep rate must be in (0, 1]");
        if (config.PrefixTokens != 1) throw new NotSupportedException("TPS as published assumes one CLS token (no distillation token)");
        _c = config;
        _keepRate = keepRate;
        _pruneAt = new bool[config.Depth];
        foreach (int b in blocks ?? TopKPruning.EvitBlocks)
        {
            if (b < 0 || b >= config.Depth) throw new ArgumentOutOfRangeException(nameof(blocks), b, $"block must be in 0..{config.Depth - 1}");
            _pruneAt[b] = true;
        }
        int n = config.Tokens;
        _keep = new bool[n];
        _scores = new float[n];
        _selectScratch = new float[n];
        _invNorm = new float[n];
        _host = new int[n];
        _weight = new float[n];
        _acc = new float[n * config.EmbedDim];
        _denominator = new float[n];
        _rows = new int[n];
        _bestKept = new int[n];
        _bestSimilarity = new float[n];
        _unitRows = new NativeBuffer((long)n * config.EmbedDim);
        _matching = new MatchingScratch(n, n);
        Name = $"tps(keep={keepRate:0.###})";
    }

    public string Name { get; }
    public ReductionNeeds Needs => ReductionNeeds.None;

    public int Reduce(int block, TokenReductionContext context)
    {
        int n = context.Count, d = context.Dim;
        if (!_pruneAt[block]) return n;
        int k = TopKPruning.KeptOthers(_keepRate, n);
        if (k >= n - 1) return n;
        new ReadOnlySpan<float>(context.ClassScore, n).CopyTo(_scores);
        Selection.MarkTopK(_scores, 1, n, k, _keep, _selectScratch);
        _keep[0] = true;

        float* x = context.X;
        SimdLevel level = context.Simd;
        for (int t = 1; t < n; t++)
        {
            float* row = x + (long)t * d;
            _invNorm[t] = 1f / (MathF.Sqrt(Elementwise.Dot(level, row, row, d)) + 1e-6f);
            _denominator[t] = 0;
        }

        // Match every pruned token to its most similar kept token (first maximum on ties): the unit rows of the
        // pruned tokens, then of the kept patch tokens, gathered so the pruned x kept cosines are one GEMM.
        int pruned = 0, kept = 0;
        for (int t = 1; t < n; t++) if (!_keep[t]) _rows[pruned++] = t;
        for (int t = 1; t < n; t++) if (_keep[t]) _rows[pruned + kept++] = t;
        float* unit = _unitRows.Pointer;
        for (int r = 0; r < pruned + kept; r++)
        {
            int t = _rows[r];
            Elementwise.Scale(level, x + (long)t * d, _invNorm[t], unit + (long)r * d, d);
        }
        RowBestMatch.Find(level, _matching, unit, d, pruned, unit + (long)pruned * d, d, kept, d,
            _bestSimilarity.AsSpan(0, pruned), _bestKept.AsSpan(0, pruned));
        for (int r = 0; r < pruned; r++)
        {
            int i = _rows[r];
            _host[i] = _rows[pruned + _bestKept[r]];
            _weight[i] = MathF.Exp(_bestSimilarity[r]);
        }

        // Accumulate every host's weighted sum from the unchanged rows, then overwrite the hosts.
        int hosts = 0;
        fixed (float* acc = _acc)
        {
            for (int r = 0; r < pruned; r++)
            {
                int i = _rows[r], j = _host[i];
                float* aj = acc + (long)j * d;
                if (_denominator[j] == 0)
                {
                    Elementwise.Scale(level, x + (long)j * d, MathF.E, aj, d);
                    _denominator[j] = MathF.E;
                    hosts++;
                }
                float w = _weight[i];
                Elementwise.AddScaled(level, x + (long)i * d, w, aj, d);
                _denominator[j] += w;
                context.Sizes[j] += context.Sizes[i];
            }
            for (int j = 1; j < n; j++)
            {
                if (_denominator[j] == 0) continue;
                Elementwise.Scale(level, acc + (long)j * d, 1f / _denominator[j], x + (long)j * d, d);
            }
        }

        // Norms, the pruned x kept similarities, and the weighted sums (hosts once, each pruned token once).
        context.OverheadMultiplyAdds += (long)(n - 1) * d + (long)pruned * k * d + (long)(pruned + hosts) * d;
        return context.Compact(_keep);
    }
}

/// <summary>TPS (eTPS, no fine-tuning) at EViT's blocks; the knob is the keep rate.</summary>
public sealed class TpsMethod(VitConfig config, IReadOnlyList<int>? blocks = null) : IReductionMethod
{
    public string Name => "tps";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        var at = blocks ?? TopKPruning.EvitBlocks;
        return KnobSearch.Bisect(budget, 0.02, 1.0, keep => new TokenSqueezing(config, keep, at),
            keep => $"keep={keep:0.###} at blocks {string.Join(",", at.Select(b => b + 1))}", measure, flopsRise: true);
    }
}
