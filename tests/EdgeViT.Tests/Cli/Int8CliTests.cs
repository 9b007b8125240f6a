using EdgeViT.Host.Baselines;
using EdgeViT.Host.Commands;
using EdgeViT.Host.Evaluation;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Rctp;
using Xunit;

namespace EdgeViT.Tests.Cli;

/// <summary>The int8 path on the shared DeiT-Tiny and photos: accuracy against fp32, its files, and ONNX Runtime's int8 graph.</summary>
public class Int8CliTests
{
    private static string Model => SharedAssets.ModelSafetensors;
    private static readonly Lazy<VitWeights> Weights = new(() => ModelLoader.Load(Model));
    private static readonly Lazy<float[][]> Images = new(() =>
    {
        var pre = new ImagePreprocessor();
        return SharedAssets.Images().Take(40).Select(path =>
        {
            var img = ImageDecoder.Decode(path);
            var chw = new float[pre.OutputLength];
            pre.Process(img.Pixels, img.Width, img.Height, img.Stride, chw);
            return chw;
        }).ToArray();
    });

    /// <summary>
    /// 40 shared photos: the int8 engine's top-1 equals fp32's on at least 37 (fp32 agrees with ORT fp32 on all; a
    /// broken int8 path agrees on ~0), and its logits stay close (mean |diff| well under the logit spread).
    /// </summary>
    [Fact]
    public void Int8AgreesWithFp32OnSharedPhotos()
    {
        var w = Weights.Value;
        using var fp32 = new VitEngine(w);
        using var int8 = new VitEngine(w, new EngineOptions(2) { Precision = Precision.Int8 });
        var a = new float[w.Config.Classes];
        var b = new float[w.Config.Classes];
        int agree = 0;
        double meanDiff = 0, spread = 0;
        foreach (var x in Images.Value)
        {
            fp32.Infer(x, a);
            int8.Infer(x, b);
            if (Ranking.ArgMax(a) == Ranking.ArgMax(b)) agree++;
            for (int i = 0; i < a.Length; i++) meanDiff += Math.Abs(a[i] - b[i]) / a.Length;
            spread += a.Max() - a.Min();
        }
        Assert.True(agree >= 37, $"int8 top-1 agrees with fp32 on {agree}/40 photos");
        Assert.True(meanDiff < 0.05 * spread, $"mean |logit diff| {meanDiff / 40:F4} vs mean spread {spread / 40:F2}");
        Assert.True(meanDiff > 0, "int8 logits identical to fp32: nothing was quantised");
    }

    [Fact]
    public void QuantizedFileRoundTripsAndGivesTheSameLogits()
    {
        using var tmp = new TempDir();
        string q = tmp.File("deit.int8");
        var r = CliHarness.Run("quantize", "--model", Model, "--out", q, "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("\"layers\":48", r.Stdout);

        var w = Weights.Value;
        var loaded = QuantizedFile.Load(q, w);
        var fresh = QuantizedWeights.Quantize(w);
        foreach (var ((_, x), (_, y)) in loaded.Layers().Zip(fresh.Layers()))
        {
            Assert.Equal(y.Weight, x.Weight);
            Assert.Equal(y.Scale, x.Scale);
            Assert.Equal(y.Bias, x.Bias);
        }
        var logitsFile = new float[w.Config.Classes];
        var logitsFresh = new float[w.Config.Classes];
        using (var e = new VitEngine(w, new EngineOptions { Precision = Precision.Int8, Quantized = loaded })) e.Infer(Images.Value[0], logitsFile);
        using (var e = new VitEngine(w, new EngineOptions { Precision = Precision.Int8 })) e.Infer(Images.Value[0], logitsFresh);
        Assert.Equal(logitsFresh, logitsFile);

        // The CLI reads it too, and --quantized implies int8.
        var p = CliHarness.Run("predict", "--model", Model, "--quantized", q, "--json", SharedAssets.Images()[0]);
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("\"precision\":\"int8\"", p.Stdout);
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("flip")]
    [InlineData("magic")]
    [InlineData("version")]
    [InlineData("version1")]
    public void CorruptQuantizedFileIsOneErrorLine(string damage)
    {
        using var tmp = new TempDir();
        string q = tmp.File("deit.int8");
        QuantizedFile.Save(q, QuantizedWeights.Quantize(Weights.Value), Weights.Value);
        var bytes = File.ReadAllBytes(q);
        string expect;
        switch (damage)
        {
            case "truncate": bytes = bytes[..(bytes.Length - 1000)]; expect = "checksum mismatch"; break;
            case "flip": bytes[^5000] ^= 0x40; expect = "checksum mismatch"; break;
            case "magic": bytes[0] = (byte)'X'; expect = "not an EdgeViT int8 weights file"; break;
            default:
                // version1: a file of the previous rule (weights in [-127, 127]) is refused with the fix, not misread.
                var text = System.Text.Encoding.UTF8.GetString(bytes);
                int at = text.IndexOf($"\"version\":{QuantizedFile.Version}", StringComparison.Ordinal);
                bytes[at + 10] = damage == "version1" ? (byte)'1' : (byte)'7';
                expect = damage == "version1" ? "version 1 is not supported" : "version 7 is not supported";
                break;
        }
        File.WriteAllBytes(q, bytes);
        var r = CliHarness.Run("predict", "--model", Model, "--quantized", q, SharedAssets.Images()[0]);
        if (damage.StartsWith("version")) CliHarness.AssertOneErrorLine(r, "deit.int8", expect, "rerun 'edgevit quantize'");
        else CliHarness.AssertOneErrorLine(r, "deit.int8", expect);
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void QuantizedFileOfAnotherModelIsRefused()
    {
        using var tmp = new TempDir();
        string q = tmp.File("other.int8");
        var other = VitWeights.Random(Weights.Value.Config, seed: 3);
        QuantizedFile.Save(q, QuantizedWeights.Quantize(other), other);
        var r = CliHarness.Run("predict", "--model", Model, "--quantized", q, SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r, "other.int8", $"quantised from model {other.Fingerprint[..12]}", "rerun 'edgevit quantize'");
    }

    [Fact]
    public void QuantizedWithFp32IsAUsageError()
    {
        using var tmp = new TempDir();
        string q = tmp.File("deit.int8");
        File.WriteAllText(q, "x");
        var r = CliHarness.Run("predict", "--model", Model, "--quantized", q, "--precision", "fp32", SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r, "--precision fp32");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    /// <summary>Thresholds fitted on one precision are refused for the other, in one line naming both; version-1 files load as fp32.</summary>
    [Fact]
    public void ThresholdsOfTheOtherPrecisionAreRefused()
    {
        using var tmp = new TempDir();
        var file = new ThresholdFile
        {
            ModelFingerprint = Weights.Value.Fingerprint, ModelDescription = "test", Depth = 12, DenseGFlops = 1.254, CalibrationImages = 1,
            CalibrationOptions = new Dictionary<string, string>(),
            Sets = [new ThresholdSet(1.0, Enumerable.Repeat(float.NegativeInfinity, 12).ToArray(), [], 1.254, 1.254, 0, [])],
            Precision = "int8",
        };
        string th = tmp.File("t8.json");
        file.Save(th);
        var r = CliHarness.Run("predict", "--model", Model, "--thresholds", th, "--budget", "1", SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r, "t8.json", "fitted on the int8 engine, not fp32");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
        Assert.Equal(0, CliHarness.Run("predict", "--model", Model, "--thresholds", th, "--budget", "1", "--precision", "int8", SharedAssets.Images()[0]).ExitCode);

        // A version-1 file (no precision key) is an fp32 file.
        string v1 = tmp.File("t1.json");
        File.WriteAllText(v1, File.ReadAllText(th).Replace("\"version\": 2", "\"version\": 1").Replace("\"precision\": \"int8\",", ""));
        Assert.Equal("fp32", ThresholdFile.Load(v1).Precision);
        var r1 = CliHarness.Run("predict", "--model", Model, "--thresholds", v1, "--budget", "1", "--precision", "int8", SharedAssets.Images()[0]);
        CliHarness.AssertOneErrorLine(r1, "t1.json", "fitted on the fp32 engine, not int8");
    }

    /// <summary>
    /// explain runs the int8 engine for an int8 threshold file (the tokens drawn are the ones int8 keeps) and refuses
    /// the file without --precision int8, in one line.
    /// </summary>
    [Fact]
    public void ExplainDrawsTheInt8EnginesTokens()
    {
        using var tmp = new TempDir();
        var thresholds = Enumerable.Repeat(0.004f, 12).ToArray();
        var file = new ThresholdFile
        {
            ModelFingerprint = Weights.Value.Fingerprint, ModelDescription = "test", Depth = 12, DenseGFlops = 1.254, CalibrationImages = 1,
            CalibrationOptions = new Dictionary<string, string>(),
            Sets = [new ThresholdSet(0.7, thresholds, [], 0.88, 0.88, 0, [])],
            Precision = "int8",
        };
        string th = tmp.File("t8.json");
        file.Save(th);
        string image = SharedAssets.Images()[0], png = tmp.File("explain.png");

        var refused = CliHarness.Run("explain", "--model", Model, "--thresholds", th, "--budget", "0.7", image, "--out", png);
        CliHarness.AssertOneErrorLine(refused, "t8.json", "fitted on the int8 engine, not fp32");

        var r = CliHarness.Run("explain", "--model", Model, "--thresholds", th, "--budget", "0.7", "--precision", "int8", image, "--out", png, "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("\"precision\":\"int8\"", r.Stdout);
        Assert.True(new FileInfo(png).Length > 1000, "no PNG written");

        // The counts drawn are the int8 engine's own: the same forward through VitEngine directly.
        var w = Weights.Value;
        using var engine = new VitEngine(w, new EngineOptions(1) { Precision = Precision.Int8 });
        var pre = new ImagePreprocessor();
        var img = ImageDecoder.Decode(image);
        var chw = new float[pre.OutputLength];
        pre.Process(img.Pixels, img.Width, img.Height, img.Stride, chw);
        var stats = engine.Infer(chw, new float[w.Config.Classes], file.Sets[0].Thresholds, file.Sets[0].Rule);
        Assert.Contains($"\"tokens_kept_per_block\":[{string.Join(",", stats.TokensPerBlock)}]", r.Stdout);
        Assert.True(stats.TokensPerBlock[^1] < stats.TokensPerBlock[0], "the thresholds pruned nothing: the test shows no pruning");
    }

    /// <summary>
    /// The graphs 'quantize --onnx-out' writes run in ONNX Runtime: the fp32 one reproduces EdgeViT fp32 (so the graph
    /// is the model), the int8 one (quantize_dynamic's pattern) stays near EdgeViT int8 and agrees on top-1.
    /// </summary>
    [Fact]
    public void OnnxGraphsRunInOnnxRuntimeAndMatchOurs()
    {
        using var tmp = new TempDir();
        var w = Weights.Value;
        string fp32Path = tmp.File("fp32.onnx"), int8Path = tmp.File("int8.onnx");
        OnnxGraphWriter.Write(fp32Path, w, null);
        Assert.Equal(0, CliHarness.Run("quantize", "--model", Model, "--onnx-out", int8Path).ExitCode);
        using var ortFp32 = new OnnxRuntimeRunner(fp32Path, 1);
        using var ortInt8 = new OnnxRuntimeRunner(int8Path, 1);
        using var fp32 = new VitEngine(w);
        using var int8 = new VitEngine(w, new EngineOptions { Precision = Precision.Int8 });
        var ours = new float[w.Config.Classes];
        var theirs = new float[w.Config.Classes];
        int agree = 0;
        double worstFp32 = 0, meanInt8 = 0;
        foreach (var x in Images.Value.Take(10))
        {
            fp32.Infer(x, ours);
            ortFp32.Run(x, theirs);
            worstFp32 = Math.Max(worstFp32, BenchCommand.MaxAbsDifference(ours, theirs));
            int8.Infer(x, ours);
            ortInt8.Run(x, theirs);
            meanInt8 += BenchCommand.MaxAbsDifference(ours, theirs) / 10;
            if (Ranking.ArgMax(ours) == Ranking.ArgMax(theirs)) agree++;
        }
        Assert.True(worstFp32 < 1e-3, $"our fp32 ONNX graph differs from EdgeViT fp32 by {worstFp32}");
        Assert.True(meanInt8 < 1.0, $"ORT int8 logits differ from EdgeViT int8 by {meanInt8:F3} (max |diff|, mean over images)");
        Assert.True(meanInt8 > 1e-3, "ORT int8 logits equal EdgeViT's to 1e-3: the graph is not quantised");
        Assert.True(agree >= 9, $"ORT int8 and EdgeViT int8 top-1 agree on {agree}/10");
    }
}
