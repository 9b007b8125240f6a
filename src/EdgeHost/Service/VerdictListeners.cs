using System.Text.Json;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service;

/// <summary>
/// Told about a classified camera frame on the inference thread, before its buffer goes back to the source's pool
/// (verdict sinks run after that). Same rules as <see cref="Inference.IVerdictSink"/>: copy what you keep into your
/// own buffers and return; no I/O, no waiting.
/// </summary>
public interface IFrameListener
{
    void OnFrame(Frame frame, Verdict verdict);
}

/// <summary>Adds a part to GET /v1/status (one property) and, optionally, to /readyz's body.</summary>
public interface IStatusContributor
{
    /// <summary>Writes one property (name and value) into the status object.</summary>
    void WriteStatus(Utf8JsonWriter w);

    /// <summary>Writes properties into /readyz's body (optional).</summary>
    void WriteReadiness(Utf8JsonWriter w) { }
}

/// <summary>
/// Budget changes from outside HTTP (MQTT <c>&lt;base&gt;/budget/set</c>): the same body as PUT /v1/budget, parsed
/// and validated by <see cref="BudgetEndpoints.Parse"/>, the same one-line errors.
/// </summary>
public static class BudgetCommand
{
    /// <summary>Applies a JSON budget body; returns null on success or the reason it was refused.</summary>
    public static string? Apply(BudgetController budget, ReadOnlySpan<byte> body)
    {
        if (!budget.Enabled) return "no Thresholds file configured: the model runs dense and the budget cannot change";
        try
        {
            var reader = new Utf8JsonReader(body);
            using var doc = JsonDocument.ParseValue(ref reader);
            budget.Apply(BudgetEndpoints.Parse(doc.RootElement, budget.Settings));
            return null;
        }
        catch (JsonException ex) { return $"budget body is not valid JSON: {ex.Message.Split('\n')[0]}"; }
        catch (ArgumentException ex) { return ex.Message; }
    }
}
