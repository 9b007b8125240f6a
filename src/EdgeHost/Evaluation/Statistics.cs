namespace EdgeViT.Host.Evaluation;

/// <summary>Order statistics over timing samples.</summary>
public static class Statistics
{
    public static double Median(IEnumerable<double> values) => Percentile(values, 50);

    /// <summary>Percentile p (0..100) with linear interpolation between closest ranks; 0 for no values.</summary>
    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0) return 0;
        Array.Sort(sorted);
        double rank = Math.Clamp(p, 0, 100) / 100.0 * (sorted.Length - 1);
        int lo = (int)Math.Floor(rank), hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public static double Mean(IReadOnlyCollection<double> values) => values.Count == 0 ? 0 : values.Average();
}
