using Xunit;
using EdgeViT.Host.Commands;

namespace EdgeViT.Tests.Cli;

/// <summary>Bad input ends as one "edgevit: error:" line naming the culprit and a non-zero exit code, never a stack trace.</summary>
public class CliErrorTests
{
    private static string Model => SharedAssets.ModelSafetensors;
    private static string Image => SharedAssets.Images()[0];

    [Fact]
    public void MissingModelPath()
    {
        using var tmp = new TempDir();
        string missing = tmp.File("no-such-model.safetensors");
        var r = CliHarness.Run("predict", "--model", missing, Image);
        CliHarness.AssertOneErrorLine(r, "no-such-model.safetensors");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void MissingModelPath_Eval()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("eval", "--model", tmp.File("gone.onnx"), "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, "gone.onnx");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void CorruptModel_RandomBytes()
    {
        using var tmp = new TempDir();
        string path = tmp.File("random.safetensors");
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        var r = CliHarness.Run("predict", "--model", path, Image);
        CliHarness.AssertOneErrorLine(r, "random.safetensors");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void CorruptModel_TruncatedCopyOfSharedModel()
    {
        using var tmp = new TempDir();
        string path = tmp.File("truncated.safetensors");
        using (var src = File.OpenRead(Model))
        using (var dst = File.Create(path))
        {
            var buffer = new byte[src.Length / 3];
            src.ReadExactly(buffer);
            dst.Write(buffer);
        }
        var r = CliHarness.Run("predict", "--model", path, Image);
        CliHarness.AssertOneErrorLine(r, "truncated.safetensors");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void NonImageFilePassedToPredict()
    {
        using var tmp = new TempDir();
        string path = tmp.File("notes.JPEG");
        File.WriteAllText(path, "this is text, not a JPEG\n");
        var r = CliHarness.Run("predict", "--model", Model, path);
        CliHarness.AssertOneErrorLine(r, "notes.JPEG");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void MissingImagePath()
    {
        using var tmp = new TempDir();
        string missing = tmp.File("n01440764_missing.JPEG");
        var r = CliHarness.Run("predict", "--model", Model, missing);
        CliHarness.AssertOneErrorLine(r, "n01440764_missing.JPEG");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void EmptyImagesDirForEval()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("eval", "--model", Model, "--images", tmp.Path, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, tmp.Path, "no images");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void MissingImagesDirForEval()
    {
        using var tmp = new TempDir();
        string missing = tmp.File("nowhere");
        var r = CliHarness.Run("eval", "--model", Model, "--images", missing, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, "nowhere");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void BrokenImageInEvalFolder()
    {
        using var tmp = new TempDir();
        File.Copy(SharedAssets.Images()[0], tmp.File(Path.GetFileName(SharedAssets.Images()[0])));
        File.WriteAllBytes(tmp.File("n01443537_goldfish.JPEG"), [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46]); // a JPEG header, then nothing
        var r = CliHarness.Run("eval", "--model", Model, "--images", tmp.Path, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, "n01443537_goldfish.JPEG");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void ImageWhoseSynsetIsNotInTheSynsetsFile()
    {
        using var tmp = new TempDir();
        File.Copy(SharedAssets.Images()[0], tmp.File("n99999999_unknown.JPEG"));
        var r = CliHarness.Run("eval", "--model", Model, "--images", tmp.Path, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, "n99999999_unknown.JPEG", "n99999999");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("eval")]
    [InlineData("bench")]
    public void ThreadsZero(string command)
    {
        string[] args = command switch
        {
            "predict" => ["predict", "--model", Model, Image, "--threads", "0"],
            "eval" => ["eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets, "--threads", "0"],
            _ => ["bench", "--model", Model, "--threads", "0"],
        };
        var r = CliHarness.Run(args);
        CliHarness.AssertOneErrorLine(r, "--threads");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Theory]
    [InlineData("--threads", "100000")]
    [InlineData("--threads", "two")]
    [InlineData("--limit", "-1")]
    [InlineData("--limit", "0")]
    [InlineData("--simd", "1024")]
    public void BadOptionValuesAreUsageErrors(string option, string value)
    {
        var r = CliHarness.Run("eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets, option, value);
        CliHarness.AssertOneErrorLine(r, option);
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void BadBenchCounts()
    {
        var r = CliHarness.Run("bench", "--model", Model, "--iterations", "0");
        CliHarness.AssertOneErrorLine(r, "--iterations");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
        r = CliHarness.Run("bench", "--model", Model, "--warmup", "-1");
        CliHarness.AssertOneErrorLine(r, "--warmup");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void MissingRequiredOptionIsUsageError()
    {
        var r = CliHarness.Run("eval", "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets);
        CliHarness.AssertOneErrorLine(r, "--model");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void UnknownCommandAndOption()
    {
        var r = CliHarness.Run("frobnicate");
        CliHarness.AssertOneErrorLine(r, "frobnicate");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
        r = CliHarness.Run("predict", "--model", Model, Image, "--bogus");
        CliHarness.AssertOneErrorLine(r, "--bogus");
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void NoCommandIsUsageError()
    {
        var r = CliHarness.Run();
        CliHarness.AssertOneErrorLine(r);
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
    }

    [Fact]
    public void SynsetsFileMissingForEval()
    {
        using var tmp = new TempDir();
        var r = CliHarness.Run("eval", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", tmp.File("synsets-gone.txt"));
        CliHarness.AssertOneErrorLine(r, "synsets-gone.txt");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void BenchWithoutAnOnnxSibling()
    {
        using var tmp = new TempDir();
        string copy = tmp.File("lonely.safetensors");
        File.Copy(Model, copy);
        var r = CliHarness.Run("bench", "--model", copy);
        CliHarness.AssertOneErrorLine(r, "lonely.onnx", "--onnx");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void HelpWorksWithoutRequiredOptions()
    {
        var r = CliHarness.Run("eval", "--help");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("--images", r.Stdout);
        Assert.Equal("", r.Stderr);
    }
}
