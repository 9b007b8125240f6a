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

        /// <summary>The threshold set for the model and engine precision ("fp32"/"int8"), or null for dense; errors name the file and what is wrong.</summary>
        public ThresholdSet? Resolve(VitWeights weights, string precision)
        {
            if (Thresholds is null) return null;
            var file = ThresholdFile.Load(Thresholds);
            file.EnsureMatches(weights, precision);
            double budget = Budget ?? GFlops!.Value / file.DenseGFlops;
            return file.Select(budget);
        }
    }
}
