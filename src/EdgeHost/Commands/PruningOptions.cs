using System.CommandLine;
using System.Globalization;
using EdgeViT.Host.Evaluation;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Host.Commands;

/// <summary>--thresholds FILE with --budget B (fraction of dense FLOPs) or --gflops G: RCTP threshold pruning.</summary>
public sealed class PruningOptions
{
    public Option<string?> Thresholds { get; } = new("--thresholds")
    {
        Description = "RCTP thresholds file from 'edgevit calibrate': prune tokens by class attention.",
        HelpName = "FILE",
    };
    public Option<double?> Budget { get; } = new("--budget")
    {
        Description = "FLOPs budget as a fraction of the dense model (e.g. 0.7); needs --thresholds.",
        HelpName = "B",
    };
    public Option<double?> GFlops { get; } = new("--gflops")
    {
        Description = "FLOPs budget in GFLOPs (multiply-adds) per image; needs --thresholds.",
        HelpName = "G",
    };

    public void AddTo(Command command) { command.Add(Thresholds); command.Add(Budget); command.Add(GFlops); }

    public Choice Read(ParseResult parse) => new(parse.GetValue(Thresholds), parse.GetValue(Budget), parse.GetValue(GFlops));

    public sealed record Choice(string? Thresholds, double? Budget, double? GFlops)
    {
        /// <summary>Checks the combination before anything is loaded (usage errors, exit 2).</summary>
        public void Validate()
        {
            if (Thresholds is null && (Budget is not null || GFlops is not null))
                throw new UsageException("--budget and --gflops need --thresholds FILE");
            if (Thresholds is not null && Budget is null && GFlops is null)
                throw new UsageException("--thresholds needs a budget: --budget B (fraction of dense FLOPs) or --gflops G");
            if (Budget is not null && GFlops is not null)
                throw new UsageException("give either --budget or --gflops, not both");
            if (Budget is double b && !(b > 0 && b <= 1))
                throw new UsageException($"--budget must be a fraction of dense FLOPs in (0, 1] (got {b.ToString(CultureInfo.InvariantCulture)})");
            if (GFlops is double g && !(g > 0))
                throw new UsageException($"--gflops must be positive (got {g.ToString(CultureInfo.InvariantCulture)})");
            if (Thresholds is not null) Inputs.RequireFile(Thresholds, "thresholds file");
        }

        /// <summary>
        /// The threshold set for the model and engine precision ("fp32"/"int8"), or null for dense; errors name the file and what is wrong. The set is
        /// chosen by the service's rule (<see cref="Service.ThresholdCatalog.Select"/>), so `predict --budget 0.7`
        /// runs what `run` with Budget:Target=0.7 runs.
        /// </summary>
        public ThresholdSet? Resolve(VitWeights weights, string precision)
        {
            if (Thresholds is null) return null;
            var file = ThresholdFile.Load(Thresholds);
            file.EnsureMatches(weights, precision);
            var catalog = Service.ThresholdCatalog.FromFile(file, Service.LoadedModel.DenseGFlops(weights));
            var chosen = catalog.Select(Budget ?? 1.0, GFlops) ?? throw new ModelFormatException(GFlops is double g
                ? $"{Path.GetFileName(file.Source)}: --gflops {g.ToString("0.###", CultureInfo.InvariantCulture)} is below the cheapest threshold set ({catalog.Cheapest.GFlops.ToString("0.###", CultureInfo.InvariantCulture)} GFLOPs)"
                : $"{Path.GetFileName(file.Source)}: budget {Budget!.Value.ToString("0.###", CultureInfo.InvariantCulture)} is below the lowest calibrated budget {file.MinBudget.ToString("0.###", CultureInfo.InvariantCulture)} (the file covers {file.MinBudget.ToString("0.###", CultureInfo.InvariantCulture)}..{file.MaxBudget.ToString("0.###", CultureInfo.InvariantCulture)})");
            return chosen.IsDense ? null : file.Sets.First(s => ReferenceEquals(s.Thresholds, chosen.Thresholds));
        }
    }
}
