using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// Zero-TPrune (Wang, Dedhia, Jha, CVPR 2024), zero-shot. At a pruning block that keeps ceil(keep x (n - 1)) of
/// its n - 1 patch tokens:
/// I-stage: each head's attention matrix is a graph (query i votes for key j with weight A[i, j]); Weighted
/// PageRank iterates s = A^T s from the uniform vector, and the heads are combined with the emphasizing
/// aggregation sqrt(sum_h s_h^2), which lets peaked (informative) heads dominate the flat ones.
/// S-stage: patch tokens sorted by importance are split into the more important half (targets) and the less
/// important half (candidates); each candidate's score is its highest cosine similarity (on the keys) to a
/// target, and the candidates most similar to a target are pruned: they add the least new information.
/// When more than half must go, the I-stage first drops the least important tokens so the S-stage can do the rest.
/// Pruning blocks default to 3, 6, 9 (0-based), the schedule EViT/DynamicViT use on DeiT.
/// </summary>
public sealed unsafe class ZeroTPrune : ITokenReducer
{
    public static readonly int[] DeitBlocks = [3, 6, 9];
    public const int DefaultIterations = 30;
    public const float DefaultTolerance = 1e-5f;

    private readonly VitConfig _c;
    private readonly double _keepRate;
    private readonly int _maxIterations;
    private readonly float _tolerance;
    private readonly bool[] _pruneAt, _keep, _candidateKeep;
    private readonly float[] _importance, _head, _pageRankScratch, _order, _candidateScore, _selectScratch, _unitKeys;
    private readonly int[] _byImportance;
    private readonly MatchingScratch _matching;

    public ZeroTPrune(VitConfig config, double keepRate, IReadOnlyList<int>? blocks = null,
        int maxIterations = DefaultIterations, float tolerance = DefaultTolerance)
    {
        if (!(keepRate > 0 && keepRate <= 1)) throw new ArgumentOutOfRangeException(nameof(keepRate), keepRate, "keep rate must be in (0, 1]");
        if (config.PrefixTokens != 1) throw new NotSupportedException("Zero-TPrune as published assumes one CLS token");
        if (maxIterations < 1) throw new ArgumentOutOfRangeException(nameof(maxIterations));
        _c = config;
        _keepRate = keepRate;
        _maxIterations = maxIterations;
        _tolerance = tolerance;
        _pruneAt = new bool[config.Depth];
        foreach (int b in blocks ?? DeitBlocks)
        {
            if (b < 0 || b >= config.Depth) throw new ArgumentOutOfRangeException(nameof(blocks), b, $"block must be in 0..{config.Depth - 1}");
            _pruneAt[b] = true;
        }
        int t = config.Tokens;
        _keep = new bool[t];
        _candidateKeep = new bool[t];
        _importance = new float[t];
        _head = new float[t];
        _pageRankScratch = new float[t];
        _order = new float[t];
        _candidateScore = new float[t];
        _selectScratch = new float[t];
        _byImportance = new int[t];
        _unitKeys = new float[t * config.EmbedDim];
        _matching = new MatchingScratch(t, t);
        Name = $"zero-tprune(keep={keepRate:0.###})";
    }

    public string Name { get; }
    public ReductionNeeds Needs => ReductionNeeds.AttentionProbabilities;

    /// <summary>I-stage importance of the last pruning block, [token] (CLS at 0); for tests.</summary>
    public ReadOnlySpan<float> LastImportance => _importance.AsSpan(0, LastCount);
    public int LastCount { get; private set; }
    /// <summary>Tokens the I-stage dropped outright at the last pruning block (only when more than half go).</summary>
    public int LastImportanceDropped { get; private set; }

    public int Reduce(int block, TokenReductionContext context)
    {
        int n = context.Count;
        if (!_pruneAt[block]) return n;
        int others = n - 1, prune = others - TopKPruning.KeptOthers(_keepRate, n);
        if (prune <= 0) return n;
        ComputeImportance(context, n);

        // Patch tokens by descending importance (ties: lower index first, so runs are deterministic).
        for (int j = 0; j < others; j++) { _order[j] = -_importance[j + 1]; _byImportance[j] = j + 1; }
        SortStable(others);

        // Dropping e by importance leaves m - e tokens whose lower half must hold the remaining prune - e.
        int dropByImportance = Math.Max(0, 2 * prune - others);
        LastImportanceDropped = dropByImportance;
        int remaining = others - dropByImportance, similar = prune - dropByImportance;
        int targets = remaining - remaining / 2, candidates = remaining / 2;

        Array.Clear(_keep, 0, n);
        _keep[0] = true;
        for (int i = 0; i < targets; i++) _keep[_byImportance[i]] = true;
        if (similar > 0) ScoreCandidates(context, targets, candidates);
        // Keep the candidates-minus-similar least similar; MarkTopK on negated scores picks them.
        for (int i = 0; i < candidates; i++) _selectScratch[i] = -_candidateScore[i];
        Selection.MarkTopK(_selectScratch.AsSpan(0, candidates), 0, candidates, candidates - similar, _candidateKeep, _order);
        for (int i = 0; i < candidates; i++) if (_candidateKeep[i]) _keep[_byImportance[targets + i]] = true;
        return context.Compact(_keep);
    }

    /// <summary>I-stage: Weighted PageRank per head, combined by the emphasizing aggregation.</summary>
    private void ComputeImportance(TokenReductionContext c, int n)
    {
        Array.Clear(_importance, 0, n);
        int stride = c.ProbabilityStride;
        long iterations = 0;
        for (int h = 0; h < c.Heads; h++)
        {
            var a = new ReadOnlySpan<float>(c.AttentionProbabilities + (long)h * c.MaxTokens * stride, (n - 1) * stride + n);
            iterations += PageRank(c.Simd, a, n, stride, _head.AsSpan(0, n), _pageRankScratch, _maxIterations, _tolerance);
            for (int t = 0; t < n; t++) _importance[t] += _head[t] * _head[t];
        }
        for (int t = 0; t < n; t++) _importance[t] = MathF.Sqrt(_importance[t]);
        LastCount = n;
        c.OverheadMultiplyAdds += iterations * n * n + (long)c.Heads * n;
    }

    /// <summary>S-stage scores: each candidate's highest cosine similarity of keys to any target.</summary>
    private void ScoreCandidates(TokenReductionContext c, int targets, int candidates)
    {
        int d = c.Dim, ld = 3 * d, used = targets + candidates;
        // Unit keys in importance order (row i is token _byImportance[i]), so candidates x targets is one GEMM.
        fixed (float* unit = _unitKeys)
        {
            for (int i = 0; i < used; i++)
            {
                float* k = c.Qkv + (long)_byImportance[i] * ld + d;
                float sq = Elementwise.Dot(c.Simd, k, k, d);
                Elementwise.Scale(c.Simd, k, sq > 0 ? 1f / MathF.Sqrt(sq) : 0f, unit + (long)i * d, d);
            }
            RowBestMatch.Find(c.Simd, _matching, unit + (long)targets * d, d, candidates, unit, d, targets, d,
                _candidateScore.AsSpan(0, candidates), default);
        }
        c.OverheadMultiplyAdds += (long)used * d + (long)candidates * targets * d;
    }

    // Array.Sort is not stable: sort by key, then put equal keys back in token order so ties break deterministically.
    private void SortStable(int m)
    {
        Array.Sort(_order, _byImportance, 0, m);
        for (int i = 0; i < m;)
        {
            int j = i + 1;
            while (j < m && _order[j] == _order[i]) j++;
            if (j - i > 1) Array.Sort(_byImportance, i, j - i);
            i = j;
        }
    }

    /// <summary>
    /// Weighted PageRank on an n x n row-stochastic matrix (row i at a[i * stride]): power iteration
    /// s(t+1) = A^T s(t) from the uniform vector until the L1 change falls below <paramref name="tolerance"/> or
    /// <paramref name="maxIterations"/> are done. Row sums of 1 keep sum(s) = 1, so no renormalisation is needed.
    /// Writes the importance to <paramref name="result"/> (length n); <paramref name="scratch"/> needs n floats.
    /// Returns the iterations run. Allocation-free.
    /// </summary>
    public static int PageRank(ReadOnlySpan<float> a, int n, int stride, Span<float> result, Span<float> scratch,
        int maxIterations = DefaultIterations, float tolerance = DefaultTolerance) =>
        PageRank(SimdLevels.Best, a, n, stride, result, scratch, maxIterations, tolerance);

    /// <summary>As above on one SIMD path: A^T s is n row axpys (next += s_i A[i, :]), A read once per iteration.</summary>
    public static int PageRank(SimdLevel level, ReadOnlySpan<float> a, int n, int stride, Span<float> result, Span<float> scratch,
        int maxIterations = DefaultIterations, float tolerance = DefaultTolerance)
    {
        if (n < 1 || stride < n) throw new ArgumentOutOfRangeException(nameof(n));
        if (a.Length < (n - 1) * stride + n) throw new ArgumentException("matrix span is shorter than n rows", nameof(a));
        if (result.Length < n || scratch.Length < n) throw new ArgumentException("result and scratch need n floats");
        var s = result[..n];
        var next = scratch[..n];
        s.Fill(1f / n);
        int it = 0;
        fixed (float* pa = a)
        fixed (float* ps = s)
        fixed (float* pn = next)
        {
            while (it < maxIterations)
            {
                next.Clear();
                for (int i = 0; i < n; i++)
                    Elementwise.AddScaled(level, pa + (long)i * stride, ps[i], pn, n);
                it++;
                float change = 0;
                for (int j = 0; j < n; j++) change += MathF.Abs(pn[j] - ps[j]);
                next.CopyTo(s);
                if (change < tolerance) break;
            }
        }
        return it;
    }
}

/// <summary>Zero-TPrune at its pruning blocks; the knob is the keep rate.</summary>
public sealed class ZeroTPruneMethod(VitConfig config, IReadOnlyList<int>? blocks = null) : IReductionMethod
{
    public string Name => "zero-tprune";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        var at = blocks ?? ZeroTPrune.DeitBlocks;
        return KnobSearch.Bisect(budget, 0.02, 1.0, keep => new ZeroTPrune(config, keep, at),
            keep => $"keep={keep:0.###} at blocks {string.Join(",", at.Select(b => b + 1))}", measure, flopsRise: true);
    }
}
