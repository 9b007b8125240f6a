using Xunit;
using System.Text.Json;
using EdgeViT.Host.Output;

namespace EdgeViT.Tests.Cli;

/// <summary>The JSON shape of each report (serialised directly) and, end to end, of each command with --json.</summary>
public class JsonOutputTests
{
    private static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement;

    private static void AssertKeys(JsonElement obj, params string[] keys)
    {
        foreach (var k in keys) Assert.True(obj.TryGetProperty(k, out _), $"missing key '{k}' in {obj}");
    }

    [Fact]
    public void PredictReportShape()
    {
        var report = new PredictReport("m.safetensors", "ViT", 1, "Vector256",
            [new PredictImageResult("a.jpg", 1.5, [new PredictClass(3, "n01491361", "tiger shark", 0.75), new PredictClass(7, null, null, 0.1)], 0.9, [197, 150])], 0.7);
        string json = JsonOutput.Serialize(report, ReportJsonContext.Default.PredictReport);
        Assert.DoesNotContain('\n', json);
        var root = Parse(json);
        AssertKeys(root, "model", "results", "threads", "simd", "budget");
        Assert.Equal(150, root.GetProperty("results")[0].GetProperty("tokens_kept_per_block")[1].GetInt32());
        var image = root.GetProperty("results")[0];
        Assert.Equal("a.jpg", image.GetProperty("image").GetString());
        var top = image.GetProperty("top");
        Assert.Equal(3, top[0].GetProperty("class").GetInt32());
        Assert.Equal("tiger shark", top[0].GetProperty("label").GetString());
        Assert.Equal(0.75, top[0].GetProperty("prob").GetDouble());
        Assert.Equal(JsonValueKind.Null, top[1].GetProperty("label").ValueKind);
    }

    [Fact]
    public void EvalReportShape()
    {
        var report = new EvalReport("m", "ViT", "dir", "syn.txt", 2, "Vector128", 2, 10, 80, 95, 12.5, 12, 13, 12.6, 3, 2, 1.5, 6.6, 1.26, "odd", 0.7, [197, 120.5]);
        var root = Parse(JsonOutput.Serialize(report, ReportJsonContext.Default.EvalReport));
        AssertKeys(root, "images", "top1", "top5", "ms_median", "gflops_mean", "threads", "model", "simd",
            "preprocess_ms_median", "decode_ms_median", "wall_s", "budget", "tokens_kept_per_block", "split");
        Assert.Equal(10, root.GetProperty("images").GetInt32());
        Assert.Equal(80, root.GetProperty("top1").GetDouble());
    }

    [Fact]
    public void BenchReportShape()
    {
        var report = new BenchReport("m", "m.onnx", "ViT", "random(1)", 1, "Vector512", 100, 10,
            10, 9, 11, 17, 16, 18, 0.6, 0.55, 0.65, 1e-5, true, 3, 3, 1.26, 0.7, 14, 0.7, 1.25, 32);
        var root = Parse(JsonOutput.Serialize(report, ReportJsonContext.Default.BenchReport));
        AssertKeys(root, "edgevit_ms", "onnxruntime_ms", "ratio", "threads", "model", "simd",
            "edgevit_p10_ms", "edgevit_p90_ms", "onnxruntime_p10_ms", "onnxruntime_p90_ms", "ratio_p10", "ratio_p90", "max_abs_logit_diff", "budget", "edgevit_dense_ms", "pruned_vs_dense", "dense_gflops");
    }

    // End to end (need the real loader, decoder, preprocessor and engine).

    [Fact]
    public void PredictJsonEndToEnd()
    {
        var images = SharedAssets.Images().Take(2).ToArray();
        var r = CliHarness.Run(["predict", "--model", SharedAssets.ModelSafetensors, .. images, "--top", "3", "--synsets", SharedAssets.Synsets, "--json"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var root = Parse(r.StdoutLines[^1]);
        Assert.Equal(2, root.GetProperty("results").GetArrayLength());
        var top = root.GetProperty("results")[0].GetProperty("top");
        Assert.Equal(3, top.GetArrayLength());
        Assert.Equal(0, top[0].GetProperty("class").GetInt32()); // n01440764_tench -> class 0
        Assert.StartsWith("tench", top[0].GetProperty("label").GetString());
        Assert.True(top[0].GetProperty("prob").GetDouble() >= top[1].GetProperty("prob").GetDouble());
    }

    [Fact]
    public void EvalJsonEndToEnd()
    {
        var r = CliHarness.Run("eval", "--model", SharedAssets.ModelSafetensors, "--images", SharedAssets.ImagesDir,
            "--synsets", SharedAssets.Synsets, "--limit", "4", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Single(r.StdoutLines); // progress goes to stderr, so --json's stdout is the one object
        Assert.Matches(@"edgevit: eval: 4/4 images, top-1 \d+\.\d\d %, top-5 \d+\.\d\d %, \d+ s elapsed, ETA 0 s", r.Stderr);
        var root = Parse(r.StdoutLines[^1]);
        AssertKeys(root, "images", "top1", "top5", "ms_median", "gflops_mean");
        Assert.Equal(4, root.GetProperty("images").GetInt32());
        Assert.InRange(root.GetProperty("top5").GetDouble(), root.GetProperty("top1").GetDouble(), 100);
        Assert.True(root.GetProperty("gflops_mean").GetDouble() > 0.5); // DeiT-Tiny: ~1.26 GMACs
    }

    [Fact]
    public void BenchJsonEndToEnd()
    {
        var r = CliHarness.Run("bench", "--model", SharedAssets.ModelSafetensors, "--iterations", "3", "--warmup", "1", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var root = Parse(r.StdoutLines[^1]);
        AssertKeys(root, "edgevit_ms", "onnxruntime_ms", "ratio", "threads", "model");
        Assert.True(root.GetProperty("onnxruntime_ms").GetDouble() > 0);
        Assert.True(root.GetProperty("max_abs_logit_diff").GetDouble() <= 1e-3);
    }

    [Fact]
    public void BenchProfileReportsEveryStage()
    {
        var r = CliHarness.Run("bench", "--model", SharedAssets.ModelSafetensors, "--iterations", "3", "--warmup", "1", "--threads", "2", "--profile", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var profile = Parse(r.StdoutLines[^1]).GetProperty("profile_ms");
        var stages = profile.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.Equal(["Embed", "Qkv", "Attention", "Proj", "Reduce", "Fc1Gelu", "Fc2", "Head"], stages.Keys);
        Assert.All(stages.Values, ms => Assert.True(ms >= 0));
        // The GEMM stages are real work on every pass (12 blocks of DeiT-Tiny).
        foreach (var gemm in new[] { "Qkv", "Attention", "Proj", "Fc1Gelu", "Fc2" }) Assert.True(stages[gemm] > 0, gemm);
    }
}
