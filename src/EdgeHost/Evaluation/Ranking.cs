namespace EdgeViT.Host.Evaluation;

/// <summary>Top-k selection and softmax over class scores.</summary>
public static class Ranking
{
    /// <summary>
    /// Writes the indices of the <c>indices.Length</c> largest scores, best first; ties go to the lower index and
    /// NaN ranks below every number. Returns how many were written (fewer when there are fewer scores).
    /// O(n*k), no allocation: k is small (1..10) here.
    /// </summary>
    public static int TopK(ReadOnlySpan<float> scores, Span<int> indices)
    {
        int k = Math.Min(indices.Length, scores.Length);
        int count = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            float s = scores[i];
            // Position among the current best: after every kept entry that ranks at least as high.
            int pos = count;
            while (pos > 0 && Better(s, scores[indices[pos - 1]])) pos--;
            if (pos >= k) continue;
            int last = Math.Min(count, k - 1);
            for (int j = last; j > pos; j--) indices[j] = indices[j - 1];
            indices[pos] = i;
            if (count < k) count++;
        }
        return count;
    }

    /// <summary>Allocating convenience form of <see cref="TopK(ReadOnlySpan{float}, Span{int})"/>.</summary>
    public static int[] TopK(ReadOnlySpan<float> scores, int k)
    {
        if (k < 0) throw new ArgumentOutOfRangeException(nameof(k));
        var result = new int[Math.Min(k, scores.Length)];
        TopK(scores, result);
        return result;
    }

    // Strictly better: a higher number (the earlier index wins ties, since it was inserted first); NaN never is.
    private static bool Better(float candidate, float kept) =>
        candidate > kept || (float.IsNaN(kept) && !float.IsNaN(candidate));

    /// <summary>Numerically stable softmax (max subtracted, sums in double).</summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        if (probabilities.Length < logits.Length) throw new ArgumentException("output shorter than input", nameof(probabilities));
        if (logits.IsEmpty) return;
        float max = float.NegativeInfinity;
        foreach (float x in logits) if (x > max) max = x;
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double e = Math.Exp(logits[i] - (double)max);
            probabilities[i] = (float)e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < logits.Length; i++) probabilities[i] *= inv;
    }

    /// <summary>Index of the largest score (first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> scores)
    {
        Span<int> one = stackalloc int[1];
        return TopK(scores, one) == 1 ? one[0] : -1;
    }
}
