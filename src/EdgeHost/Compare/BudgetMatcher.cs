using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Host.Compare;

/// <summary>A method's choice for one budget, as the comparison records it.</summary>
/// <param name="Exact">|calibration FLOPs fraction - budget| within <see cref="BudgetMatcher.Tolerance"/> of dense</param>
public sealed record MatchedSetting(string Method, double Budget, MethodSetting Setting, bool Exact);

/// <summary>
/// Asks every method for its setting at every budget. The <c>measure</c> callback a method gets is the mean FLOPs
/// (as a fraction of dense) of a reducer over a fixed subset of the calibration images. A reducer is single-caller,
/// so the parallelism is across (method, budget) tasks: each worker owns a single-threaded engine and measures
/// on it; two budgets of the same method never run at once (a method need not be thread-safe).
/// </summary>
public static class BudgetMatcher
{
    /// <summary>A budget counts as met exactly when the measured fraction is within this of it (1 % of dense).</summary>
    public const double Tolerance = 0.01;

    /// <summary>Calibration images the measure callback uses: this many, evenly spaced over the calibration split.</summary>
    public const int MeasureImages = 64;

    /// <summary>Indices of the measuring subset: min(<see cref="MeasureImages"/>, n), evenly spaced, deterministic.</summary>
    public static int[] MeasureSubset(int calibrationImages)
    {
        int m = Math.Min(MeasureImages, calibrationImages);
        return Enumerable.Range(0, m).Select(i => (int)((long)i * calibrationImages / m)).ToArray();
    }

    public static IReadOnlyList<MatchedSetting> Match(VitWeights weights, IReadOnlyList<IReductionMethod> methods, IReadOnlyList<double> budgets,
        IReadOnlyList<float[]> calibrationImages, int workers, Kernels.Simd.SimdLevel? simd, Action<string> log, Precision precision = Precision.Fp32)
    {
        var subset = MeasureSubset(calibrationImages.Count);
        var config = weights.Config;
        // Budget-major order, so different methods run side by side.
        var pending = new List<(int M, int B)>();
        for (int b = 0; b < budgets.Count; b++)
            for (int m = 0; m < methods.Count; m++) pending.Add((m, b));
        var results = new MatchedSetting?[methods.Count, budgets.Count];
        var busy = new bool[methods.Count];
        var gate = new object();
        workers = Math.Max(1, Math.Min(workers, pending.Count));

        var quantized = precision == Precision.Int8 ? Kernels.Quant.QuantizedWeights.Quantize(weights) : null;
        void Worker()
        {
            using var engine = new VitEngine(weights, new EngineOptions(1, simd) { Precision = precision, Quantized = quantized });
            var logits = new float[config.Classes];
            // Dense multiply-adds as this engine counts them (the same counter the reducers are measured with).
            double dense = engine.Infer(calibrationImages[subset[0]], logits).MultiplyAdds;
            double Measure(ITokenReducer reducer)
            {
                double sum = 0;
                foreach (int i in subset) sum += engine.Infer(calibrationImages[i], logits, reducer).MultiplyAdds;
                return sum / subset.Length / dense;
            }
            while (true)
            {
                (int M, int B) task;
                lock (gate)
                {
                    while (true)
                    {
                        if (pending.Count == 0) return;
                        int k = pending.FindIndex(t => !busy[t.M]);
                        if (k >= 0) { task = pending[k]; pending.RemoveAt(k); busy[task.M] = true; break; }
                        Monitor.Wait(gate);
                    }
                }
                try
                {
                    var method = methods[task.M];
                    double budget = budgets[task.B];
                    var setting = method.ForBudget(budget, Measure);
                    bool exact = Math.Abs(setting.CalibrationFlopsFraction - budget) <= Tolerance;
                    results[task.M, task.B] = new MatchedSetting(method.Name, budget, setting, exact);
                    log($"{method.Name} at {budget:0.00}: {setting.Setting}, {setting.CalibrationFlopsFraction:0.000} of dense on {subset.Length} calibration images{(exact ? "" : " (nearest setting)")}");
                }
                finally
                {
                    lock (gate) { busy[task.M] = false; Monitor.PulseAll(gate); }
                }
            }
        }

        Exception? failure = null;
        var wrapped = Enumerable.Range(0, workers).Select(i => new Thread(() =>
        {
            try { Worker(); }
            catch (Exception ex)
            {
                lock (gate) { failure ??= ex; pending.Clear(); Monitor.PulseAll(gate); }
            }
        }) { IsBackground = true, Name = $"edgevit-compare-match-{i}" }).ToArray();
        foreach (var t in wrapped) t.Start();
        foreach (var t in wrapped) t.Join();
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();

        var list = new List<MatchedSetting>();
        for (int m = 0; m < methods.Count; m++)
            for (int b = 0; b < budgets.Count; b++) list.Add(results[m, b]!);
        return list;
    }
}
