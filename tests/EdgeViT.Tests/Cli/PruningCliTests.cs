using EdgeViT.Host.Commands;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using Xunit;

namespace EdgeViT.Tests.Cli;

/// <summary>RCTP on the command line: a real (small) calibration of the shared model, and every way to misuse it.</summary>
public class PruningCliTests
{
    private static string Model => SharedAssets.ModelSafetensors;

    /// <summary>A thresholds file with one set at 0.6 and one at 1.0 for the given fingerprint (no calibration needed).</summary>
    private static string WriteThresholds(TempDir tmp, string fingerprint)
    {
        var file = new ThresholdFile
        {
            ModelFingerprint = fingerprint, ModelDescription = "test", Depth = 12, DenseGFlops = 1.254, CalibrationImages = 1,
            CalibrationOptions = new Dictionary<string, string>(),
            Sets =
            [
                new ThresholdSet(0.6, Enumerable.Repeat(0.004f, 12).ToArray(), [], 0.75, 0.75, 0.3, []),
                new ThresholdSet(1.0, Enumerable.Repeat(float.NegativeInfinity, 12).ToArray(), [], 1.254, 1.254, 0, []),
            ],
        };
        string path = tmp.File("t.json");
        file.Save(path);
        return path;
    }

    [Fact]
    public void ThresholdsForAnotherModelAreRefused()
    {
        using var tmp = new TempDir();
        string th = WriteThresholds(tmp, new string('a', 64));
        var r = CliHarness.Run("predict", "--model", Model, "--thresholds", th, "--budget", "0.7", SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r, "calibrated for model aaaaaaaaaaaa");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void BudgetBelowWhatTheFileCoversIsRefused()
    {
        using var tmp = new TempDir();
        string th = WriteThresholds(tmp, ModelLoader.Load(Model).Fingerprint);
        var r = CliHarness.Run("eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--limit", "2", "--thresholds", th, "--budget", "0.4");
        CliHarness.AssertOneErrorLine(r, "budget 0.4 is below the lowest calibrated budget 0.6");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Theory]
    [InlineData("--budget", "0.7")]                                // budget without a thresholds file
    [InlineData("--thresholds", "PLACEHOLDER")]                    // thresholds without a budget
    [InlineData("--thresholds", "PLACEHOLDER", "--budget", "1.5")] // not a fraction
    [InlineData("--thresholds", "PLACEHOLDER", "--budget", "0.7", "--gflops", "0.9")]
    public void PruningOptionMisuseIsAUsageError(params string[] extra)
    {
        using var tmp = new TempDir();
        string th = WriteThresholds(tmp, new string('b', 64));
        var args = new List<string> { "predict", "--model", Model, SharedAssets.Images()[0] };
        args.AddRange(extra.Select(e => e == "PLACEHOLDER" ? th : e));
        var r = CliHarness.Run(args.ToArray());
        CliHarness.AssertOneErrorLine(r);
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void CorruptThresholdsFileIsNamed()
    {
        using var tmp = new TempDir();
        string th = tmp.File("broken.json");
        File.WriteAllText(th, "{\"format\":\"edgevit-rctp-thresholds\",\"version\":1,\"model\":{\"depth\":12,\"fingerprint\":\"x\"},\"sets\":[{\"budget\":0.5,\"thresholds\":[1,2]}]}");
        var r = CliHarness.Run("predict", "--model", Model, "--thresholds", th, "--budget", "0.7", SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r, "broken.json: set 0.5 has 2 thresholds for 12 blocks");
    }

    [Fact]
    public void CalibrateOnAnEmptyFolderFails()
    {
        using var tmp = new TempDir();
        Directory.CreateDirectory(tmp.File("empty"));
        var r = CliHarness.Run("calibrate", "--model", Model, "--images", tmp.File("empty"), "--synsets", SharedAssets.Synsets, "--out", tmp.File("t.json"));
        CliHarness.AssertOneErrorLine(r, "no images");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    /// <summary>
    /// A real calibration of the shared DeiT-Tiny on 16 even images: the file is written, bound to the model,
    /// every set's measured FLOPs are within 3 % of predicted and under its budget (+1 %), and eval with it prunes.
    /// </summary>
    [Fact]
    public void CalibrateThenEvalOnTheSharedModel()
    {
        using var tmp = new TempDir();
        string th = tmp.File("deit.json");
        var r = CliHarness.Run("calibrate", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--split", "even", "--limit", "16", "--budgets", "0.6,0.8", "--threads", "2", "--out", th, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        // --json: stdout is the one JSON line; progress (stage, images, budgets, ETA) is on stderr.
        Assert.Single(r.Stdout.TrimEnd().Split('\n'));
        Assert.Contains("edgevit: calibrate: probe: 16/16 images", r.Stderr);
        Assert.Matches(@"edgevit: calibrate: fit: block 11 MLP, 16 images, 2 budgets, stage (\d+)/\1, .* ETA 0 s", r.Stderr);
        var file = ThresholdFile.Load(th);
        file.EnsureMatches(ModelLoader.Load(Model));
        Assert.Equal(2, file.Sets.Count);
        foreach (var s in file.Sets)
        {
            Assert.InRange(s.MeasuredGFlops / s.PredictedGFlops, 0.97, 1.03);
            Assert.True(s.MeasuredGFlops <= (s.Budget + 0.01) * file.DenseGFlops, $"budget {s.Budget}: {s.MeasuredGFlops} GFLOPs");
        }
        var e = CliHarness.Run("eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--split", "odd", "--limit", "8", "--thresholds", th, "--budget", "0.6", "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        var json = System.Text.Json.JsonDocument.Parse(e.Stdout.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.Equal(0.6, json.GetProperty("budget").GetDouble());
        Assert.True(json.GetProperty("gflops_mean").GetDouble() < 0.7 * file.DenseGFlops);
        Assert.True(json.GetProperty("tokens_kept_per_block")[11].GetDouble() < 197);
    }
    /// <summary>The rule options reach the file (version 3), --augment flip doubles the calibration images, and a cap without fusing is a usage error.</summary>
    [Fact]
    public void CalibrateWritesTheRuleOptionsAndMirrorsThePhotos()
    {
        using var tmp = new TempDir();
        string th = tmp.File("rule.json");
        var r = CliHarness.Run("calibrate", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--split", "even", "--limit", "3", "--budgets", "0.7", "--threads", "2", "--fuse", "on", "--fused-size-cap", "8",
            "--heads", "max", "--score-memory", "0.25", "--augment", "flip", "--out", th, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("edgevit: calibrate: probe: 6/6 images", r.Stderr);
        var file = ThresholdFile.Load(th);
        Assert.Equal(6, file.CalibrationImages);
        Assert.Equal(new EdgeViT.Kernels.Reduction.ThresholdRule(EdgeViT.Kernels.Reduction.ScoreScale.Raw, true, EdgeViT.Kernels.Reduction.HeadPooling.Max, 8, 0.25f), file.Rule);
        Assert.Equal(3, (int)System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(th))!["version"]!);
        var e = CliHarness.Run("eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--split", "odd", "--limit", "2", "--thresholds", th, "--budget", "0.7", "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);

        var bad = CliHarness.Run("calibrate", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--fuse", "off", "--fused-size-cap", "4", "--out", tmp.File("x.json"));
        CliHarness.AssertOneErrorLine(bad, "--fused-size-cap needs --fuse on");
        bad = CliHarness.Run("calibrate", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets,
            "--score-memory", "1", "--out", tmp.File("x.json"));
        CliHarness.AssertOneErrorLine(bad, "--score-memory: '1' is not in [0, 1)");
    }
}
