namespace EdgeViT.Kernels.Reduction;

/// <summary>A method's reducer for one budget and what was chosen to get it.</summary>
/// <param name="Reducer">the policy to run</param>
/// <param name="Setting">human-readable knob value(s), e.g. "r=9" or "keep=0.62 at blocks 3,6,9"</param>
/// <param name="CalibrationFlopsFraction">mean FLOPs of the reducer over the calibration images, as a fraction of dense</param>
public sealed record MethodSetting(ITokenReducer Reducer, string Setting, double CalibrationFlopsFraction);

/// <summary>
/// A token-reduction method as the comparison sees it: a family of reducers, one of which is picked per FLOPs
/// budget. Methods that learn from data (RCTP, LTMP) take the calibration images in their constructor; methods
/// with a knob pick it with <see cref="KnobSearch"/>. Budgets a method cannot reach exactly are matched by its
/// nearest setting; the comparison reports the FLOPs measured on the evaluation images either way.
/// </summary>
public interface IReductionMethod
{
    /// <summary>Short lower-case name: "rctp", "topk", "evit", "ats", "tome", "zero-tprune", "tps", "ltmp".</summary>
    string Name { get; }

    /// <param name="budget">target mean FLOPs as a fraction of dense (e.g. 0.7)</param>
    /// <param name="measure">mean FLOPs fraction of a reducer over (a subset of) the calibration images</param>
    MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure);
}

/// <summary>Picks a one-knob method's setting whose measured FLOPs are nearest a budget.</summary>
public static class KnobSearch
{
    /// <summary>
    /// Bisects a continuous knob in [lo, hi] whose FLOPs fall as it rises (or rise, with <paramref name="flopsRise"/>),
    /// then returns the nearest of the evaluated settings.
    /// </summary>
    public static MethodSetting Bisect(double budget, double lo, double hi, Func<double, ITokenReducer> create,
        Func<double, string> describe, Func<ITokenReducer, double> measure, bool flopsRise = false, int steps = 10)
    {
        (double Knob, double Flops, ITokenReducer Reducer)? best = null;
        void Consider(double knob, ITokenReducer r, double f)
        {
            if (best is null || Math.Abs(f - budget) < Math.Abs(best.Value.Flops - budget)) best = (knob, f, r);
        }
        for (int i = 0; i < steps; i++)
        {
            double mid = 0.5 * (lo + hi);
            var r = create(mid);
            double f = measure(r);
            Consider(mid, r, f);
            bool tooExpensive = f > budget;
            if (tooExpensive != flopsRise) lo = mid; else hi = mid; // move toward cheaper (or dearer) settings
        }
        var b = best!.Value;
        return new MethodSetting(b.Reducer, describe(b.Knob), b.Flops);
    }

    /// <summary>Integer knob in [lo, hi] (e.g. ToMe's r): binary search, then the nearest of the two neighbours.</summary>
    public static MethodSetting Integer(double budget, int lo, int hi, Func<int, ITokenReducer> create,
        Func<int, string> describe, Func<ITokenReducer, double> measure, bool flopsRise = false)
    {
        var cache = new Dictionary<int, (ITokenReducer R, double F)>();
        (ITokenReducer R, double F) Eval(int k)
        {
            if (!cache.TryGetValue(k, out var v)) { var r = create(k); v = (r, measure(r)); cache[k] = v; }
            return v;
        }
        int a = lo, b = hi;
        while (b - a > 1)
        {
            int mid = (a + b) / 2;
            bool tooExpensive = Eval(mid).F > budget;
            if (tooExpensive != flopsRise) a = mid; else b = mid;
        }
        var best = new[] { a, b }.Select(k => (k, v: Eval(k))).MinBy(t => Math.Abs(t.v.F - budget));
        return new MethodSetting(best.v.R, describe(best.k), best.v.F);
    }
}
