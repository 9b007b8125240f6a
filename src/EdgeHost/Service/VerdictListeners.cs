using System.Text.Json;
using EdgeViT.Capture;

namespace EdgeViT.Host.Service;

/// <summary>
/// Told about every verdict the service emits (frame loop and HTTP), right after the results sink, on the
/// inference path: an implementation copies what it needs into its own buffers and returns (no I/O, no waiting),
/// so a slow consumer (a broker that is down, a browser on a bad link) never delays the next frame.
/// </summary>
public interface IVerdictListener
{
    /// <param name="verdict">Valid during the call only.</param>
    /// <param name="json">The verdict JSON as the results sink wrote it; valid during the call only.</param>
    void OnVerdict(Verdict verdict, ReadOnlySpan<byte> json);
}

/// <summary>Told about a classified camera frame before its buffer goes back to the source's pool (same rules).</summary>
public interface IFrameListener
{
    void OnFrame(Frame frame, Verdict verdict);
}

/// <summary>Adds a part to GET /v1/status (a property written by <see cref="Write"/>) and to /readyz's body.</summary>
public interface IStatusContributor
{
    /// <summary>Writes one property (name and value) into the status object.</summary>
    void WriteStatus(Utf8JsonWriter w);

    /// <summary>Writes properties into /readyz's body (optional).</summary>
    void WriteReadiness(Utf8JsonWriter w) { }
}

/// <summary>
/// Budget changes from outside HTTP (MQTT <c>&lt;base&gt;/budget/set</c>, the live page goes through PUT): the same
/// body as PUT /v1/budget, the same rules, the same one-line errors.
/// </summary>
public static class BudgetCommand
{
    /// <summary>Applies a JSON budget body; returns null on success or the reason it was refused.</summary>
    public static string? Apply(ServiceRuntime rt, ReadOnlySpan<byte> body)
    {
        if (rt.Budget is not { } budget) return "model not loaded yet";
        if (!budget.Enabled) return "no Thresholds file configured: the model runs dense and the budget cannot change";
        try
        {
            var reader = new Utf8JsonReader(body);
            using var doc = JsonDocument.ParseValue(ref reader);
            budget.Apply(HttpApi.ParseBudget(doc.RootElement, budget.Settings));
            return null;
        }
        catch (JsonException ex) { return $"budget body is not valid JSON: {ex.Message.Split('\n')[0]}"; }
        catch (ArgumentException ex) { return ex.Message; }
    }
}
