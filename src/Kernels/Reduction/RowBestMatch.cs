using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// The one similarity-matching kernel of the reducers (ToMe/LTMP's bipartite matching, TPS's host choice,
/// Zero-TPrune's S-stage): the m x nb dot products of query rows A against candidate rows B as one GEMM (B packed
/// as the right operand, as attention packs K^T), then a row-wise max. With unit rows these are cosines.
/// </summary>
public static unsafe class RowBestMatch
{
    /// <summary>
    /// For each row i of A [m x k] (row stride lda): the largest dot product with a row of B [nb x k] (row stride
    /// ldb) and that row's index in 0..nb-1 (the first maximum on ties), in best[i] and bestIndex[i]; -inf and -1
    /// when nb is 0. bestIndex may be empty when only the values are wanted. Returns the multiply-adds (m nb k).
    /// </summary>
    public static long Find(SimdLevel level, MatchingScratch scratch, float* a, int lda, int m, float* b, int ldb, int nb, int k,
        Span<float> best, Span<int> bestIndex)
    {
        bool wantIndex = !bestIndex.IsEmpty;
        if (m <= 0) return 0;
        if (nb <= 0)
        {
            best[..m].Fill(float.NegativeInfinity);
            if (wantIndex) bestIndex[..m].Fill(-1);
            return 0;
        }
        int ld = scratch.Get(level, k, m, nb, out float* packed, out float* sim);
        Gemm.PackTransposed(b, ldb, nb, k, Gemm.PanelWidth(level), packed);
        Gemm.MultiplyPacked(level, a, lda, m, packed, null, k, nb, sim, ld);
        for (int i = 0; i < m; i++)
        {
            float* row = sim + (long)i * ld;
            float max = row[0];
            int arg = 0;
            for (int j = 1; j < nb; j++) if (row[j] > max) { max = row[j]; arg = j; }
            best[i] = max;
            if (wantIndex) bestIndex[i] = arg;
        }
        return (long)m * nb * k;
    }
}
