using EdgeViT.Kernels.Model;

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
        for (int t = 1; t < n; t++)
        {
            float* row = x + (long)t * d;
            double sq = 0;
            for (int i = 0; i < d; i++) sq += (double)row[i] * row[i];
            _invNorm[t] = (float)(1 / (Math.Sqrt(sq) + 1e-6));
            _denominator[t] = 0;
        }

        // Match every pruned token to its most similar kept token (first maximum on ties).
        for (int i = 1; i < n; i++)
        {
            if (_keep[i]) continue;
            float* xi = x + (long)i * d;
            float best = float.NegativeInfinity;
            int host = -1;
            for (int j = 1; j < n; j++)
            {
                if (!_keep[j]) continue;
                float* xj = x + (long)j * d;
                float dot = 0;
                for (int c = 0; c < d; c++) dot += xi[c] * xj[c];
                float s = dot * _invNorm[i] * _invNorm[j];
                if (s > best) { best = s; host = j; }
            }
            _host[i] = host;
            _weight[i] = MathF.Exp(best);
        }

        // Accumulate every host's weighted sum from the unchanged rows, then overwrite the hosts.
        int hosts = 0;
        fixed (float* acc = _acc)
        {
            for (int i = 1; i < n; i++)
            {
                if (_keep[i]) continue;
                int j = _host[i];
                float* aj = acc + (long)j * d;
                if (_denominator[j] == 0)
                {
                    float* xj = x + (long)j * d;
                    for (int c = 0; c < d; c++) aj[c] = MathF.E * xj[c];
                    _denominator[j] = MathF.E;
                    hosts++;
                }
                float w = _weight[i];
                float* xi = x + (long)i * d;
                for (int c = 0; c < d; c++) aj[c] += w * xi[c];
                _denominator[j] += w;
                context.Sizes[j] += context.Sizes[i];
            }
            for (int j = 1; j < n; j++)
            {
                if (_denominator[j] == 0) continue;
                float inv = 1f / _denominator[j];
                float* aj = acc + (long)j * d;
                float* xj = x + (long)j * d;
                for (int c = 0; c < d; c++) xj[c] = aj[c] * inv;
            }
        }

        int pruned = n - 1 - k;
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
