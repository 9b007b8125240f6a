using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace EdgeViT.Host.Output;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = false,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(PredictReport))]
[JsonSerializable(typeof(EvalReport))]
[JsonSerializable(typeof(BenchReport))]
[JsonSerializable(typeof(QuantizeReport))]
[JsonSerializable(typeof(CalibrateReport))]
[JsonSerializable(typeof(CompareReport))]
public sealed partial class ReportJsonContext : JsonSerializerContext;

/// <summary>Writes a report as one compact JSON line (the last line a command prints with --json).</summary>
public static class JsonOutput
{
    public static string Serialize<T>(T report, JsonTypeInfo<T> typeInfo) => JsonSerializer.Serialize(report, typeInfo);

    public static void WriteLine<T>(TextWriter stdout, T report, JsonTypeInfo<T> typeInfo)
    {
        stdout.WriteLine(Serialize(report, typeInfo));
        stdout.Flush();
    }

    /// <summary>Rounds for display in JSON (timings to microseconds, ratios and probabilities finer).</summary>
    public static double Round(double value, int digits = 4) => double.IsFinite(value) ? Math.Round(value, digits) : value;
}
