using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace EdgeViT.Host.Service;

/// <summary>
/// GET /v1/budget — the settings, active set and the sets to choose from.
/// PUT /v1/budget — JSON {"mode":"flops|latency|fixed","target":0.7,"target_gflops":..,"target_p95_ms":..,
/// "hysteresis":..,"min_dwell_ms":..,"min_dwell_up_ms":..,"window_ms":..,"min_samples":..,"flops_window":..};
/// omitted fields keep their value. The body is applied to a <see cref="BudgetOptions"/> and validated by the same
/// rules as the configuration (one settings model). 400 for an invalid body, 409 without a thresholds file.
/// </summary>
public static class BudgetEndpoints
{
    public static Task Get(HttpContext ctx)
    {
        var budget = ctx.RequestServices.GetRequiredService<BudgetController>();
        return HttpJson.Write(ctx, 200, w => WriteBudget(w, budget));
    }

    public static async Task Put(HttpContext ctx)
    {
        var sp = ctx.RequestServices;
        var budget = sp.GetRequiredService<BudgetController>();
        if (!budget.Enabled)
        {
            await HttpJson.Error(ctx, 409, "no Thresholds file configured: the model runs dense and the budget cannot change");
            return;
        }
        BudgetSettings next;
        try
        {
            long limit = Math.Min(sp.GetRequiredService<EdgeVitOptions>().Http.MaxBodyBytes, 64 * 1024);
            if (ctx.Request.ContentLength > limit) { await HttpJson.Error(ctx, 413, $"budget body exceeds {limit} bytes"); return; }
            using var doc = await JsonDocument.ParseAsync(ctx.Request.Body, default, ctx.RequestAborted);
            next = Parse(doc.RootElement, budget.Settings);
            budget.Apply(next);
        }
        catch (JsonException ex) { await HttpJson.Error(ctx, 400, $"budget body is not valid JSON: {ex.Message.Split('\n')[0]}"); return; }
        catch (BadHttpRequestException ex) { await HttpJson.Error(ctx, ex.StatusCode, ex.Message); return; }
        catch (ArgumentException ex) { await HttpJson.Error(ctx, 400, ex.Message); return; }
        await HttpJson.Write(ctx, 200, w => WriteBudget(w, budget));
    }

    /// <summary>Applies a PUT body to the current settings; <see cref="ArgumentException"/> names the bad field.</summary>
    public static BudgetSettings Parse(JsonElement body, BudgetSettings current)
    {
        if (body.ValueKind != JsonValueKind.Object) throw new ArgumentException($"budget body must be a JSON object (got {body.ValueKind.ToString().ToLowerInvariant()})");
        var o = current.ToOptions();
        bool targetGiven = false, gflopsGiven = false;
        foreach (var p in body.EnumerateObject())
        {
            switch (p.Name.Replace("_", "").ToLowerInvariant())
            {
                case "mode":
                    if (p.Value.ValueKind != JsonValueKind.String || !Enum.TryParse<BudgetMode>(p.Value.GetString(), ignoreCase: true, out var mode) || !Enum.IsDefined(mode)
                        || int.TryParse(p.Value.GetString(), out _))
                        throw new ArgumentException($"mode must be one of {DefinedEnumAttribute.EnumChoices(typeof(BudgetMode))} (got {p.Value.GetRawText()})");
                    o.Mode = mode;
                    break;
                case "target": o.Target = Number(p); targetGiven = true; break;
                case "targetgflops":
                    o.TargetGFlops = p.Value.ValueKind == JsonValueKind.Null ? null : Number(p);
                    gflopsGiven = true;
                    break;
                case "targetp95ms": o.TargetP95Ms = Number(p); break;
                case "hysteresis": o.Hysteresis = Number(p); break;
                case "mindwellms": o.MinDwellMs = Int(p); break;
                case "mindwellupms": o.MinDwellUpMs = Int(p); break;
                case "windowms": o.WindowMs = Int(p); break;
                case "minsamples": o.MinSamples = Int(p); break;
                case "flopswindow": o.FlopsWindow = Int(p); break;
                default: throw new ArgumentException($"unknown budget field '{p.Name}' (mode, target, target_gflops, target_p95_ms, hysteresis, min_dwell_ms, min_dwell_up_ms, window_ms, min_samples, flops_window)");
            }
        }
        if (targetGiven && !gflopsGiven) o.TargetGFlops = null; // a new fraction replaces an old absolute target
        var problems = EdgeVitOptionsValidator.CheckSection(o, "");
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems.Select(SnakeCaseKey)));
        return BudgetSettings.From(o);

        static double Number(JsonProperty p)
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetDouble(out double v))
                throw new ArgumentException($"{p.Name} must be a number (got {p.Value.GetRawText()})");
            return v;
        }
        static int Int(JsonProperty p)
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int v))
                throw new ArgumentException($"{p.Name} must be an integer (got {p.Value.GetRawText()})");
            return v;
        }
    }

    private static readonly Dictionary<string, string> JsonNames = new()
    {
        ["Mode"] = "mode", ["Target"] = "target", ["TargetGFlops"] = "target_gflops", ["TargetP95Ms"] = "target_p95_ms",
        ["Hysteresis"] = "hysteresis", ["WindowMs"] = "window_ms", ["MinSamples"] = "min_samples", ["MinDwellMs"] = "min_dwell_ms",
        ["MinDwellUpMs"] = "min_dwell_up_ms", ["FlopsWindow"] = "flops_window",
    };

    /// <summary>"TargetP95Ms must be > 0" as the JSON body spells the field: "target_p95_ms must be > 0".</summary>
    private static string SnakeCaseKey(string message)
    {
        int space = message.IndexOf(' ');
        return space > 0 && JsonNames.TryGetValue(message[..space], out var name) ? name + message[space..] : message;
    }

    public static void WriteBudget(Utf8JsonWriter w, BudgetController b)
    {
        var s = b.Settings;
        w.WriteBoolean("enabled", b.Enabled);
        w.WriteString("mode", s.ModeName);
        w.WriteNumber("target", s.Target);
        if (s.TargetGFlops is double g) w.WriteNumber("target_gflops", g); else w.WriteNull("target_gflops");
        w.WriteNumber("target_p95_ms", s.TargetP95Ms);
        w.WriteNumber("hysteresis", s.Hysteresis);
        w.WriteNumber("window_ms", s.WindowMs);
        w.WriteNumber("min_samples", s.MinSamples);
        w.WriteNumber("min_dwell_ms", s.MinDwellMs);
        w.WriteNumber("min_dwell_up_ms", s.MinDwellUpMs);
        w.WriteNumber("flops_window", s.FlopsWindow);
        w.WriteStartObject("active_set");
        WriteSet(w, b.Current);
        w.WriteEndObject();
        w.WriteNumber("switches", b.Switches);
        w.WriteString("last_reason", b.LastReason);
        if (double.IsFinite(b.LastP95Ms)) w.WriteNumber("p95_ms", Math.Round(b.LastP95Ms, 3));
        if (double.IsFinite(b.MeanGFlops)) w.WriteNumber("mean_gflops", Math.Round(b.MeanGFlops, 6));
        w.WriteNumber("dense_gflops", Math.Round(b.Catalog.DenseGFlops, 6));
        w.WriteStartArray("sets");
        foreach (var set in b.Catalog.Sets)
        {
            w.WriteStartObject();
            WriteSet(w, set);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static void WriteSet(Utf8JsonWriter w, ActiveSet set)
    {
        w.WriteNumber("index", set.Index);
        w.WriteNumber("budget", Math.Round(set.Budget, 6));
        w.WriteNumber("gflops", Math.Round(set.GFlops, 6));
        w.WriteBoolean("dense", set.IsDense);
    }
}
