using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Host.Service;

/// <summary>
/// One threshold set as the pipeline uses it: immutable, swapped as a whole between frames.
/// <see cref="Thresholds"/> empty = dense.
/// </summary>
public sealed record ActiveSet(int Index, double Budget, double GFlops, float[] Thresholds)
{
    /// <summary>The file's threshold rule (what thresholds compare with, fused token or not).</summary>
    public EdgeViT.Kernels.Reduction.ThresholdRule Rule { get; init; }
    public bool IsDense => Thresholds.Length == 0;
    public override string ToString() => IsDense ? $"dense ({GFlops:0.###} GFLOPs)" : $"budget {Budget:0.###} ({GFlops:0.###} GFLOPs)";
}

/// <summary>
/// The threshold sets the controller chooses from, ordered cheapest first by their measured GFLOPs, with the
/// dense model as the richest choice. Without a thresholds file it holds only the dense model.
/// </summary>
public sealed class ThresholdCatalog
{
    public IReadOnlyList<ActiveSet> Sets { get; }
    public double DenseGFlops { get; }
    public bool HasThresholds { get; }
    public string Source { get; }

    public ThresholdCatalog(IReadOnlyList<ActiveSet> sets, double denseGFlops, bool hasThresholds, string source = "")
    {
        if (sets.Count == 0) throw new ArgumentException("no threshold sets", nameof(sets));
        Sets = sets;
        DenseGFlops = denseGFlops;
        HasThresholds = hasThresholds;
        Source = source;
    }

    public ActiveSet Dense => Sets[^1];
    public ActiveSet Cheapest => Sets[0];

    public static ThresholdCatalog DenseOnly(double denseGFlops) =>
        new([new ActiveSet(0, 1.0, denseGFlops, [])], denseGFlops, hasThresholds: false, "dense");

    /// <summary>From a calibration file: sets by measured GFLOPs (predicted, then budget x dense when not measured), then dense.</summary>
    public static ThresholdCatalog FromFile(ThresholdFile file, double denseGFlops)
    {
        double dense = double.IsFinite(file.DenseGFlops) && file.DenseGFlops > 0 ? file.DenseGFlops : denseGFlops;
        var sets = file.Sets
            .Select(s => (s, g: Finite(s.MeasuredGFlops) ?? Finite(s.PredictedGFlops) ?? s.Budget * dense))
            .Where(x => x.s.Thresholds.Any(float.IsFinite)) // a set that prunes nothing is the dense model
            .OrderBy(x => x.g).ThenBy(x => x.s.Budget)
            .Select(x => (x.s.Budget, x.g, x.s.Thresholds))
            .Append((1.0, dense, Array.Empty<float>()))
            .Select((x, i) => new ActiveSet(i, x.Item1, x.Item2, x.Item3) { Rule = file.Rule })
            .ToArray();
        return new ThresholdCatalog(sets, dense, hasThresholds: true, file.Source);
    }

    private static double? Finite(double v) => double.IsFinite(v) && v > 0 ? v : null;

    /// <summary>The richest set whose budget is not above <paramref name="budget"/> (fraction of dense); null when all are.</summary>
    public ActiveSet? ForBudget(double budget)
    {
        ActiveSet? best = null;
        foreach (var s in Sets)
            if (s.Budget <= budget + 1e-9 && (best is null || s.GFlops > best.GFlops)) best = s;
        return best;
    }

    /// <summary>The richest set whose GFLOPs are not above <paramref name="gflops"/>; null when all are.</summary>
    public ActiveSet? ForGFlops(double gflops)
    {
        ActiveSet? best = null;
        foreach (var s in Sets)
            if (s.GFlops <= gflops + 1e-12) best = s;
        return best;
    }

    public double MinBudget => Sets.Min(s => s.Budget);

    /// <summary>
    /// The one rule for a fixed budget, used by the service (Budget:Mode fixed, PUT /v1/budget) and the CLI
    /// (--budget / --gflops): an absolute GFLOPs target takes the richest set not above it by measured GFLOPs, a
    /// fraction the richest set whose calibrated budget is not above it. Null when every set is above the target.
    /// </summary>
    public ActiveSet? Select(double fraction, double? gflops) => gflops is double g ? ForGFlops(g) : ForBudget(fraction);
}
