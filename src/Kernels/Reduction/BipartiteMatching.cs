namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// ToMe's bipartite matching, shared by ToMe and LTMP's merge step. Sources are the even rows from row 2 on (row 0 is
/// CLS); destinations are the odd rows after the prefix (row 1, or row 3 when row 1 is a distillation token). The
/// similarity of two tokens is the cosine of their keys averaged over heads.
/// </summary>
internal static unsafe class BipartiteMatching
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
    /// CLS, gets those too). Returns the multiply-adds spent.
    /// </summary>
    public static long BestDestinations(float* metric, int headDim, int n, int prefix, Span<float> bestSimilarity, Span<int> bestDestination)
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
