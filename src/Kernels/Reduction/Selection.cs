namespace EdgeViT.Kernels.Reduction;

/// <summary>Allocation-free selection helpers shared by the policies.</summary>
public static class Selection
{
    /// <summary>
    /// Marks in <paramref name="keep"/> the <paramref name="k"/> largest of scores[from..to) (ties: the earlier
    /// index wins, so results are deterministic), leaving flags outside the range untouched. Uses
    /// <paramref name="scratch"/> (length at least to - from) for a quickselect of the k-th largest value:
    /// O(n) and no sort, as the edge path wants.
    /// </summary>
    public static void MarkTopK(ReadOnlySpan<float> scores, int from, int to, int k, Span<bool> keep, Span<float> scratch)
    {
        int n = to - from;
        if (k < 0 || k > n) throw new ArgumentOutOfRangeException(nameof(k), k, $"must be in 0..{n}");
        for (int i = from; i < to; i++) keep[i] = false;
        if (k == 0) return;
        var s = scratch[..n];
        scores[from..to].CopyTo(s);
        float kth = KthLargest(s, k);
        int above = 0;
        for (int i = from; i < to; i++) if (scores[i] > kth) { keep[i] = true; above++; }
        for (int i = from; i < to && above < k; i++) if (scores[i] == kth) { keep[i] = true; above++; }
    }

    /// <summary>The k-th largest value (1-based) of <paramref name="values"/>, which it reorders. NaN ranks lowest.</summary>
    public static float KthLargest(Span<float> values, int k)
    {
        if (k < 1 || k > values.Length) throw new ArgumentOutOfRangeException(nameof(k));
        for (int i = 0; i < values.Length; i++) if (float.IsNaN(values[i])) values[i] = float.NegativeInfinity;
        int target = k - 1, lo = 0, hi = values.Length - 1;
        while (lo < hi)
        {
            // Hoare-style partition around the median of three, descending order.
            int mid = lo + (hi - lo) / 2;
            float pivot = Median(values[lo], values[mid], values[hi]);
            int i = lo, j = hi;
            while (i <= j)
            {
                while (values[i] > pivot) i++;
                while (values[j] < pivot) j--;
                if (i <= j) { (values[i], values[j]) = (values[j], values[i]); i++; j--; }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else return values[target];
        }
        return values[target];
    }

    private static float Median(float a, float b, float c) => MathF.Max(MathF.Min(a, b), MathF.Min(MathF.Max(a, b), c));
}
