using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// RCTP as a comparison method: a calibrated <see cref="ThresholdFile"/> is a family of threshold sets; for a
/// budget it takes the set whose measured FLOPs (stored in the file, from calibration) is nearest the budget,
/// wrapped in <see cref="ThresholdPruning"/>. Unlike <see cref="ThresholdFile.Select"/> (production: the largest
/// budget not above the request) nearest is the fair choice when every method is matched to the same FLOPs.
/// </summary>
public sealed class RctpMethod : IReductionMethod
{
    private readonly VitConfig _config;

    public RctpMethod(VitConfig config, ThresholdFile file)
    {
        if (file.Depth != config.Depth) throw new ArgumentException($"thresholds file has {file.Depth} blocks, model has {config.Depth}");
        _config = config;
        File = file;
    }

    public ThresholdFile File { get; }
    public string Name => "rctp";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        double dense = File.DenseGFlops;
        var set = File.Sets.MinBy(s => Math.Abs(Fraction(s, dense) - budget))!;
        var reducer = new ThresholdPruning(_config, set.Thresholds, $"rctp({set.Budget:0.###})", set.Rule);
        return new MethodSetting(reducer, $"set {set.Budget:0.00} (calibrated {Fraction(set, dense):0.000})", measure(reducer));
    }

    // Measured FLOPs when the file has them (it always does from 'edgevit calibrate'), else the set's budget.
    private static double Fraction(ThresholdSet s, double dense) =>
        double.IsFinite(s.MeasuredGFlops) && dense > 0 ? s.MeasuredGFlops / dense : s.Budget;
}
