using System.Diagnostics;
using EdgeViT.Host.Commands;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Reduction.Ltmp;

namespace EdgeViT.Host.Compare;

/// <summary>What a method factory may use: the model, the calibration split (decoded once) and the run's options.</summary>
public sealed class CompareContext
{
    public required VitWeights Weights { get; init; }
    public VitConfig Config => Weights.Config;
    /// <summary>Calibration images (the even-indexed ones, or a separate folder), preprocessed [3, H, W] each.</summary>
    public required IReadOnlyList<float[]> CalibrationImages { get; init; }
    /// <summary>Class of each calibration image (from its file name).</summary>
    public required IReadOnlyList<int> CalibrationLabels { get; init; }
    /// <summary>Where the calibration images came from, for the thresholds file ("even" or a folder).</summary>
    public string CalibrationSplit { get; init; } = "even";
    /// <summary>Budgets the comparison will ask for (fractions of dense FLOPs).</summary>
    public required IReadOnlyList<double> Budgets { get; init; }
    /// <summary>Worker threads a method may use to learn or calibrate (each with its own single-threaded engine).</summary>
    public required int Workers { get; init; }
    public Kernels.Simd.SimdLevel? Simd { get; init; }
    /// <summary>Engine precision of the comparison (RCTP's thresholds are fitted on it and LTMP's are trained on it).</summary>
    public Kernels.Engine.Precision Precision { get; init; } = Kernels.Engine.Precision.Fp32;
    /// <summary>--rctp-thresholds, already loaded and checked against the model; null: calibrate.</summary>
    public ThresholdFile? RctpThresholds { get; init; }
    /// <summary>Directory for by-products a method wants to keep (RCTP writes its calibrated thresholds there).</summary>
    public required string OutDir { get; init; }
    public Action<string> Log { get; init; } = _ => { };
}

/// <summary>
/// The methods <c>edgevit compare</c> knows, by name: the one place to register a token-reduction method.
/// Adding a method is one line in <see cref="Entries"/>: its name, a one-line description and a factory from
/// the <see cref="CompareContext"/> to an <see cref="IReductionMethod"/>. "dense" (no reducer) is not a method:
/// it is always evaluated, as the reference every row is compared with.
/// </summary>
public static class MethodCatalog
{
    public const string Dense = "dense";

    public sealed record Entry(string Name, string Description, Func<CompareContext, IReductionMethod> Create);

    private static readonly Entry[] Entries =
    [
        new("rctp", "class-attention thresholds per block (Fisher + Viterbi calibration on the calibration split, or --rctp-thresholds)", CreateRctp),
        new("topk", "top-k by class attention at blocks 4, 7, 10 (knob: keep rate)", c => new TopKMethod(c.Config, fuse: false)),
        new("evit", "EViT: top-k plus one fused inattentive token at blocks 4, 7, 10 (knob: keep rate)", c => new TopKMethod(c.Config, fuse: true)),
        new("ats", "ATS: adaptive token sampling (class attention x |v|, inverse-CDF sampling) from block 4 on (knob: cap)", c => new AtsMethod(c.Config)),
        new("tome", "ToMe: bipartite soft matching on keys, r tokens merged per block, proportional attention (knob: r)", c => new ToMeMethod(c.Config)),
        new("zero-tprune", "Zero-TPrune: weighted-PageRank importance, then similarity pruning at blocks 4, 7, 10 (knob: keep rate)", c => new ZeroTPruneMethod(c.Config)),
        new("ltmp", "LTMP: learned per-block merge and prune thresholds (2L parameters, one pass over the calibration split; knob: FLOPs target)",
            c => new LtmpMethod(c.Weights, c.CalibrationImages.Count, (i, chw) => c.CalibrationImages[i].CopyTo(chw), c.CalibrationLabels,
                new LtmpOptions(Workers: c.Workers, Simd: c.Simd, Precision: c.Precision), c.Log)),
        new("tps", "TPS (eTPS, no fine-tuning): top-k pruning, pruned tokens squeezed into similar hosts at blocks 4, 7, 10 (knob: keep rate)", c => new TpsMethod(c.Config)),
    ];

    public static IReadOnlyList<Entry> All => Entries;
    public static IEnumerable<string> Names => Entries.Select(e => e.Name);

    /// <summary>Every registered method, comma-separated (the --methods default).</summary>
    public static string DefaultMethods => string.Join(",", Names);

    /// <summary>
    /// Parses "rctp,topk,evit" into registered names (in the given order, duplicates dropped; "dense" is accepted
    /// and ignored since it always runs). Unknown names are a usage error that lists the known ones.
    /// </summary>
    public static IReadOnlyList<string> Parse(string text)
    {
        var names = new List<string>();
        foreach (var raw in text.Split(',', StringSplitOptions.TrimEntries))
        {
            string name = raw.ToLowerInvariant();
            if (name.Length == 0) throw new UsageException($"--methods: empty method name in '{text}'");
            if (name == Dense) continue;
            if (!Entries.Any(e => e.Name == name))
                throw new UsageException($"--methods: unknown method '{raw}' (known: {Dense}, {string.Join(", ", Names)})");
            if (!names.Contains(name)) names.Add(name);
        }
        return names;
    }

    public static IReductionMethod Create(string name, CompareContext context)
    {
        var entry = Entries.FirstOrDefault(e => e.Name == name) ?? throw new UsageException($"unknown method '{name}'");
        var method = entry.Create(context);
        if (method.Name != name) throw new InvalidOperationException($"catalog entry '{name}' created a method named '{method.Name}'");
        return method;
    }

    /// <summary>Calibration grid for RCTP: every requested budget and its neighbours 0.01 and 0.02 apart.</summary>
    public static double[] RctpGrid(IEnumerable<double> budgets) =>
        budgets.SelectMany(b => new[] { -0.02, -0.01, 0, 0.01, 0.02 }.Select(d => Math.Round(b + d, 4)))
            .Where(b => b > 0.05 && b <= 1.0).Distinct().Order().ToArray();

    private static IReductionMethod CreateRctp(CompareContext c)
    {
        if (c.RctpThresholds is { } file)
        {
            c.Log($"rctp: {file.Sets.Count} threshold sets from {file.Source}");
            return new RctpMethod(c.Config, file);
        }
        var grid = RctpGrid(c.Budgets);
        c.Log($"rctp: calibrating on {c.CalibrationImages.Count} images, {grid.Length} budgets ({string.Join(",", grid.Select(g => g.ToString("0.00")))}), {c.Workers} workers");
        var clock = Stopwatch.StartNew();
        var describe = new Dictionary<string, string> { ["split"] = c.CalibrationSplit, ["labels"] = "synsets", ["budgets"] = string.Join(",", grid), ["by"] = "edgevit compare" };
        var report = Calibrator.Run(c.Weights, c.CalibrationImages.Count, (i, chw) => c.CalibrationImages[i].CopyTo(chw), c.CalibrationLabels,
            grid, new CalibrationOptions(Workers: c.Workers, Simd: c.Simd) { Precision = c.Precision }, describe, line => c.Log("rctp: " + line));
        string path = Path.Combine(c.OutDir, "rctp-thresholds.json");
        report.File.Save(path);
        c.Log($"rctp: calibrated in {clock.Elapsed.TotalSeconds:F0} s, thresholds in {path}");
        return new RctpMethod(c.Config, ThresholdFile.Load(path));
    }
}
