using System.CommandLine;
using EdgeViT.Host.Evaluation;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Host.Commands;

/// <summary>--precision fp32|int8 and --quantized FILE (an 'edgevit quantize --out' file; implies int8).</summary>
public sealed class PrecisionOptions
{
    public Option<string?> Precision { get; } = new("--precision")
    {
        Description = "Arithmetic of the block linear layers: fp32 (default) or int8 (weights per output channel, activations per token, int32 sums).",
        HelpName = "fp32|int8",
    };
    public Option<string?> Quantized { get; } = new("--quantized")
    {
        Description = "int8 weights written by 'edgevit quantize --out' for this model (implies --precision int8; default: quantise at load).",
        HelpName = "FILE",
    };

    public PrecisionOptions() => Precision.AcceptOnlyFromAmong("fp32", "int8");

    public void AddTo(Command command) { command.Add(Precision); command.Add(Quantized); }

    public Choice Read(ParseResult parse) => new(parse.GetValue(Precision), parse.GetValue(Quantized));

    public sealed record Choice(string? Requested, string? Quantized)
    {
        public static readonly Choice Fp32 = new(null, null);

        /// <summary>"fp32" or "int8", as threshold files name it.</summary>
        public string Name => Quantized is not null ? "int8" : Requested ?? "fp32";
        public Kernels.Engine.Precision Value => Name == "int8" ? Kernels.Engine.Precision.Int8 : Kernels.Engine.Precision.Fp32;

        /// <summary>Usage checks before anything is loaded.</summary>
        public void Validate()
        {
            if (Quantized is not null && Requested == "fp32") throw new UsageException("--quantized FILE holds int8 weights; it cannot run with --precision fp32");
            if (Quantized is not null) Inputs.RequireFile(Quantized, "int8 weights file");
        }

        /// <summary>The int8 weights for this model (read and checked from --quantized, else quantised now), or null for fp32.</summary>
        public QuantizedWeights? Load(VitWeights weights)
        {
            if (Value != Kernels.Engine.Precision.Int8) return null;
            return Quantized is null ? QuantizedWeights.Quantize(weights) : QuantizedFile.Load(Quantized, weights);
        }

        public EngineOptions Engine(int threads, SimdLevel? simd, QuantizedWeights? quantized) =>
            new(threads, simd) { Precision = Value, Quantized = quantized };
    }
}
