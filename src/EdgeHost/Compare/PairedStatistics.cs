namespace EdgeViT.Host.Compare;

/// <summary>A difference with its confidence interval (same units as the difference).</summary>
public readonly record struct Interval(double Estimate, double Low, double High);

/// <summary>
/// Paired comparisons of two classifiers on the same images: per-image correctness (true = right) of a method
/// and of the reference (dense). Used by <c>edgevit compare</c> for accuracy differences against dense.
/// </summary>
public static class PairedStatistics
{
    /// <summary>
    /// Accuracy difference mean(method) - mean(reference) in percentage points, with a percentile bootstrap
    /// interval: <paramref name="resamples"/> resamples of the images with replacement (the same images for
    /// both, hence paired), seeded so a run is reproducible.
    /// </summary>
    public static Interval BootstrapDifference(IReadOnlyList<bool> method, IReadOnlyList<bool> reference,
        int resamples = 2000, int seed = 20240601, double confidence = 0.95)
    {
        int n = method.Count;
        if (n != reference.Count) throw new ArgumentException($"{n} method outcomes for {reference.Count} reference outcomes");
        if (n == 0) throw new ArgumentException("no paired outcomes");
        if (resamples < 1) throw new ArgumentOutOfRangeException(nameof(resamples));
        // Per image the difference is -1, 0 or +1; the resampled mean is all that matters.
        var d = new int[n];
        long total = 0;
        for (int i = 0; i < n; i++) { d[i] = (method[i] ? 1 : 0) - (reference[i] ? 1 : 0); total += d[i]; }
        var rng = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            long s = 0;
            for (int i = 0; i < n; i++) s += d[rng.Next(n)];
            means[r] = 100.0 * s / n;
        }
        Array.Sort(means);
        double alpha = (1 - confidence) / 2;
        return new Interval(100.0 * total / n, Quantile(means, alpha), Quantile(means, 1 - alpha));
    }

    /// <summary>
    /// Discordant pairs: <c>b</c> = reference right and method wrong, <c>c</c> = reference wrong and method right.
    /// </summary>
    public static (int B, int C) Discordant(IReadOnlyList<bool> method, IReadOnlyList<bool> reference)
    {
        if (method.Count != reference.Count) throw new ArgumentException("outcome lists differ in length");
        int b = 0, c = 0;
        for (int i = 0; i < method.Count; i++)
        {
            if (reference[i] && !method[i]) b++;
            else if (!reference[i] && method[i]) c++;
        }
        return (b, c);
    }

    /// <summary>
    /// McNemar's exact test, two-sided: under H0 the b + c discordant pairs split Binomial(b + c, 1/2);
    /// p = min(1, 2 P(X &lt;= min(b, c))). No discordant pairs: p = 1.
    /// </summary>
    public static double McNemarExact(int b, int c)
    {
        if (b < 0 || c < 0) throw new ArgumentOutOfRangeException(b < 0 ? nameof(b) : nameof(c), "counts must be non-negative");
        int n = b + c, k = Math.Min(b, c);
        if (n == 0) return 1.0;
        // Sum of C(n, i) / 2^n for i <= k in log space (n can be in the thousands).
        double logHalfN = n * Math.Log(0.5);
        double sum = 0, logC = 0; // log C(n, 0)
        for (int i = 0; i <= k; i++)
        {
            if (i > 0) logC += Math.Log(n - i + 1) - Math.Log(i);
            sum += Math.Exp(logC + logHalfN);
        }
        return Math.Min(1.0, 2 * sum);
    }

    /// <summary>Linear-interpolated quantile q (0..1) of sorted values.</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) return double.NaN;
        double rank = Math.Clamp(q, 0, 1) * (sorted.Count - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}
