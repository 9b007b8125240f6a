using Xunit;
using EdgeViT.Host.Baselines;
using EdgeViT.Host.Commands;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Tests.Cli;

public class OnnxRuntimeRunnerTests
{
    [Fact]
    public void RunsTheSharedOnnxAtBatchOne()
    {
        using var runner = new OnnxRuntimeRunner(SharedAssets.ModelOnnx, threads: 1);
        Assert.Equal([1L, 3, 224, 224], runner.InputShape);
        Assert.Equal(3 * 224 * 224, runner.InputLength);
        Assert.Equal(1000, runner.OutputLength);

        var input = new float[runner.InputLength];
        BenchCommand.FillRandomNormalised(input, new PreprocessOptions(), seed: 1);
        var a = new float[1000];
        var b = new float[1000];
        runner.Run(input, a);
        runner.Run(input, b);
        Assert.All(a, x => Assert.True(float.IsFinite(x)));
        Assert.Equal(a, b); // deterministic, and the pinned buffers are reused correctly

        // In-place form sees the same input and output.
        input.CopyTo(runner.Input);
        runner.Run();
        Assert.Equal(a, runner.Output.ToArray());

        // A different input gives different logits (the input buffer really is what ORT reads).
        BenchCommand.FillRandomNormalised(input, new PreprocessOptions(), seed: 2);
        runner.Run(input, b);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void RejectsWrongInputLength()
    {
        using var runner = new OnnxRuntimeRunner(SharedAssets.ModelOnnx);
        Assert.Throws<ArgumentException>(() => runner.Run(new float[10], new float[1000]));
    }

    [Fact]
    public void CorruptOnnxIsAModelFormatExceptionNamingTheFile()
    {
        using var tmp = new TempDir();
        string path = tmp.File("garbage.onnx");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        var ex = Assert.Throws<ModelFormatException>(() => new OnnxRuntimeRunner(path));
        Assert.Contains("garbage.onnx", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void MissingOnnxIsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => new OnnxRuntimeRunner("/nonexistent/model.onnx"));
    }

    [Fact]
    public void FindsTheSiblingOnnx()
    {
        Assert.Equal(SharedAssets.ModelOnnx, OnnxRuntimeRunner.FindOnnxFor(SharedAssets.ModelSafetensors));
        Assert.Equal(SharedAssets.ModelOnnx, OnnxRuntimeRunner.FindOnnxFor(SharedAssets.ModelOnnx));
        using var tmp = new TempDir();
        Assert.Null(OnnxRuntimeRunner.FindOnnxFor(tmp.File("x.safetensors")));
    }
}
