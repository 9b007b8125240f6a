using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// ToMe's bipartite matching, shared by ToMe and LTMP's merge step. Sources are the even rows from row 2 on (row 0 is
/// CLS); destinations are the odd rows after the prefix (row 1, or row 3 when row 1 is a distillation token). The
/// similarity of two tokens is the cosine of their keys averaged over heads.
/// </summary>
public static unsafe class BipartiteMatching
{
    /// <summary>metric[t * HeadDim ..] = the unit-norm mean over heads of token t's key, for t in [from, n).</summary>
    public static void HeadMeanUnitKeys(TokenReductionContext context, int from, int n, float* metric)
    {
        int d = context.Dim, hd = context.HeadDim, heads = context.Heads;
        float invHeads = 1f / heads;
        for (int t = from; t < n; t++)
        {
            float* dst = metric + (long)t * hd;
            float* k = context.Qkv + (long)t * 3 * d + d;
            for (int i = 0; i < hd; i++) dst[i] = k[i];
            for (int h = 1; h < heads; h++)
            {
                float* kh = k + h * hd;
                for (int i = 0; i < hd; i++) dst[i] += kh[i];
            }
            double norm = 0;
            for (int i = 0; i < hd; i++) { dst[i] *= invHeads; norm += (double)dst[i] * dst[i]; }
            // A zero key has no direction: similarity 0 with everything (the official code would give NaN).
            float inv = norm > 0 ? (float)(1 / Math.Sqrt(norm)) : 0f;
            for (int i = 0; i < hd; i++) dst[i] *= inv;
        }
    }

    /// <summary>First destination row: 1, or 3 with a distillation token at row 1.</summary>
    public static int FirstDestination(int prefix) => prefix == 2 ? 3 : 1;

    /// <summary>
    /// For every source row s = 2a (a &gt;= 1): its most similar destination row (the first maximum on ties) and that
    /// similarity, in bestDestination[a] and bestSimilarity[a] (-1 and -inf when there is no destination; index 0,
    /// CLS, gets those too). The sources x destinations similarities go through <see cref="RowBestMatch"/>
    /// (one GEMM, then a row-wise argmax). Returns the multiply-adds spent.
    /// </summary>
    public static long BestDestinations(SimdLevel level, MatchingScratch scratch, float* metric, int headDim, int n, int prefix,
        Span<float> bestSimilarity, Span<int> bestDestination)
    {
        int firstDst = FirstDestination(prefix), sources = (n + 1) / 2;
        int dests = n > firstDst ? (n - firstDst + 1) / 2 : 0;
        bestSimilarity[0] = float.NegativeInfinity;
        bestDestination[0] = -1;
        if (sources <= 1) return 0;
        if (dests == 0)
        {
            for (int a = 1; a < sources; a++) { bestSimilarity[a] = float.NegativeInfinity; bestDestination[a] = -1; }
            return 0;
        }
        long work = RowBestMatch.Find(level, scratch, metric + 2L * headDim, 2 * headDim, sources - 1,
            metric + (long)firstDst * headDim, 2 * headDim, dests, headDim, bestSimilarity[1..], bestDestination[1..]);
        for (int a = 1; a < sources; a++) bestDestination[a] = firstDst + 2 * bestDestination[a];
        return work;
    }

    /// <summary>The scalar reference of <see cref="BestDestinations(SimdLevel, MatchingScratch, float*, int, int, int, Span{float}, Span{int})"/>, dot product by dot product.</summary>
    public static long BestDestinationsScalar(float* metric, int headDim, int n, int prefix, Span<float> bestSimilarity, Span<int> bestDestination)
    {
        int firstDst = FirstDestination(prefix), sources = (n + 1) / 2;
        bestSimilarity[0] = float.NegativeInfinity;
        bestDestination[0] = -1;
        long work = 0;
        for (int a = 1; a < sources; a++)
        {
            float* ms = metric + (long)(2 * a) * headDim;
            float best = float.NegativeInfinity;
            int bestRow = -1;
            for (int t = firstDst; t < n; t += 2)
            {
                float* mt = metric + (long)t * headDim;
                float s = 0;
                for (int i = 0; i < headDim; i++) s += ms[i] * mt[i];
                if (s > best) { best = s; bestRow = t; }
                work += headDim;
            }
            bestSimilarity[a] = best;
            bestDestination[a] = bestRow;
        }
        return work;
    }
}

/// <summary>
/// The packed right operand and the similarity matrix of <see cref="RowBestMatch.Find"/>: owned by one reducer,
/// sized on first use for its largest query and candidate counts and reused for every block and image.
/// </summary>
public sealed unsafe class MatchingScratch : IDisposable
{
    private readonly int _maxRows, _maxCols;
    private NativeBuffer? _packed, _sim;
    private SimdLevel _level;
    private int _ld, _k;

    /// <summary>For ToMe's bipartite matching of up to maxTokens tokens: half of them against the other half.</summary>
    public MatchingScratch(int maxTokens) : this((maxTokens + 1) / 2, (maxTokens + 1) / 2) { }

    /// <summary>Up to maxRows query rows against up to maxCols candidate rows.</summary>
    public MatchingScratch(int maxRows, int maxCols) { _maxRows = maxRows; _maxCols = maxCols; }

    /// <summary>Buffers for one matching of rows of length k; returns the similarity matrix's row stride.</summary>
    public int Get(SimdLevel level, int k, int rows, int cols, out float* packed, out float* similarity)
    {
        if (rows > _maxRows || cols > _maxCols) throw new ArgumentOutOfRangeException(nameof(rows), "more rows than the scratch was sized for");
        if (_packed is null || level != _level || k > _k)
        {
            _packed?.Dispose(); _sim?.Dispose();
            int w = Gemm.PanelWidth(level);
            _ld = (_maxCols + w - 1) / w * w;
            _packed = new NativeBuffer(Gemm.PackedLength(level, k, _maxCols));
            _sim = new NativeBuffer((long)_maxRows * _ld);
            _level = level;
            _k = k;
        }
        packed = _packed.Pointer;
        similarity = _sim!.Pointer;
        return _ld;
    }

    public void Dispose() { _packed?.Dispose(); _sim?.Dispose(); }
}
