using EdgeViT.Kernels.Model;
using Xunit;

namespace EdgeViT.Tests.Model;

/// <summary>Hand-built ONNX graphs in the layouts of different exporters must all give back the same weights.</summary>
public sealed class OnnxMappingTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(OnnxNaming.TorchShort, false, true)]
    [InlineData(OnnxNaming.FullPath, false, true)]
    [InlineData(OnnxNaming.FullPath, true, true)]
    [InlineData(OnnxNaming.FullPath, true, false)]
    [InlineData(OnnxNaming.Anonymous, false, true)]
    [InlineData(OnnxNaming.Anonymous, true, false)]
    public void ExporterLayouts_LoadToTheOriginalWeights(OnnxNaming naming, bool useGemm, bool gemmTransB)
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 11);
        var loaded = LoadOnnx(OnnxExport.Build(original, naming, useGemm, gemmTransB));
        Assert.Equal(original.Config, loaded.Config);
        Assert.Equal(original.Blocks[1].Fc1.Weight, loaded.Blocks[1].Fc1.Weight);
        Assert.Equal(original.Fingerprint, loaded.Fingerprint);
    }

    [Theory]
    [InlineData(OnnxNaming.TorchShort)]
    [InlineData(OnnxNaming.Anonymous)]
    public void DistilledOnnx_MapsBothHeads(OnnxNaming naming)
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(distilled: true), 12);
        var loaded = LoadOnnx(OnnxExport.Build(original, naming));
        Assert.True(loaded.Config.HasDistillationToken);
        Assert.Equal(original.HeadDistillation!.Weight, loaded.HeadDistillation!.Weight);
        Assert.Equal(original.Fingerprint, loaded.Fingerprint);
    }

    [Theory]
    [InlineData(OnnxStorage.PackedFloatData)]
    [InlineData(OnnxStorage.RawFloat16)]
    [InlineData(OnnxStorage.Float16InInt32Data)]
    public void InitializerStorageVariants_Decode(OnnxStorage storage)
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 13);
        var loaded = LoadOnnx(OnnxExport.Build(original, OnnxNaming.TorchShort, storage: storage));
        Func<float, float> stored = storage == OnnxStorage.PackedFloatData ? v => v : v => (float)(Half)v;
        Assert.Equal(original.Blocks[0].Qkv.Weight.Select(stored), loaded.Blocks[0].Qkv.Weight);
        Assert.Equal(original.Head.Bias.Select(stored), loaded.Head.Bias);
        Assert.Equal(original.PatchEmbed.Weight.Select(stored), loaded.PatchEmbed.Weight);
    }

    [Fact]
    public void ExternalData_IsRejectedClearly()
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 14);
        var m = new OnnxTestModel()
            .Initializer("blocks.0.attn.qkv.weight", [192, 64], [], OnnxStorage.External)
            .Initializer("cls_token", [1, 1, 64], original.ClassToken);
        string message = LoadOnnxError(m.Build());
        Assert.Contains("external data is not supported", message);
        Assert.Contains("blocks.0.attn.qkv.weight", message);
    }

    [Fact]
    public void UnsupportedDataType_IsNamed()
    {
        var m = new OnnxTestModel().Initializer("cls_token", [1, 1, 64], new float[64], OnnxStorage.RawDouble);
        string message = LoadOnnxError(m.Build());
        Assert.Contains("'cls_token' [1,1,64] has data type DOUBLE", message);
    }

    [Fact]
    public void BiasNameDisagreeingWithNodeBlock_IsAnInconsistency()
    {
        // The Add after /qkv/MatMul (block 0) reads a bias named for block 1, and vice versa.
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 15);
        byte[] onnx = OnnxExport.Build(original, OnnxNaming.TorchShort, renameInitializer: name => name switch
        {
            "blocks.0.qkv.bias" => "blocks.1.qkv.bias",
            "blocks.1.qkv.bias" => "blocks.0.qkv.bias",
            _ => null,
        });
        string message = LoadOnnxError(onnx);
        Assert.Contains("initializer 'blocks.1.qkv.bias' is 'blocks.1.attn.qkv.bias' by its name but 'blocks.0.attn.qkv.bias' by node '/qkv/MatMul'", message);
    }

    [Fact]
    public void GraphOrderWithWrongShape_IsNamed()
    {
        // Without names, block 1's fc1 weight replaced by a [64,100] one cannot be block 1's fc1 ([64 -> 128]).
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 16);
        var broken = new VitWeights
        {
            Config = original.Config, PatchEmbed = original.PatchEmbed, ClassToken = original.ClassToken,
            PositionEmbedding = original.PositionEmbedding, FinalNorm = original.FinalNorm, Head = original.Head,
            Blocks = [original.Blocks[0], original.Blocks[1] with { Fc1 = new Linear(64, 100, new float[6400], new float[100]) }],
        };
        string message = LoadOnnxError(OnnxExport.Build(broken, OnnxNaming.Anonymous));
        Assert.Contains("should be blocks.1.mlp.fc1 with 64 inputs and 128 outputs but has 64 and 100", message);
    }

    [Fact]
    public void GemmWithScaledWeights_IsRejected()
    {
        var m = new OnnxTestModel()
            .Initializer("head.weight", [10, 64], new float[640])
            .Node("Gemm", "/head/Gemm", ["x", "head.weight"], ["y"], ints: [("transB", 1)], floats: [("alpha", 0.5f)]);
        string message = LoadOnnxError(m.Build());
        Assert.Contains("Gemm node '/head/Gemm' has alpha=0.5", message);
    }

    [Fact]
    public void GraphWithoutWeights_IsNamed()
    {
        string message = LoadOnnxError(new OnnxTestModel().Node("Relu", "r", ["x"], ["y"]).Build());
        Assert.Contains("no initializers", message);
    }

    [Fact]
    public void Metadata_IncludesProducerAndModelProps()
    {
        var m = new OnnxTestModel().Initializer("cls_token", [1, 1, 64], new float[64]);
        string path = _temp.File("meta.onnx");
        File.WriteAllBytes(path, m.Build("exporter-x", "2.5", new Dictionary<string, string> { ["num_heads"] = "2" }));
        var set = ModelLoader.LoadTensors(path);
        Assert.Equal("exporter-x", set.Metadata["producer_name"]);
        Assert.Equal("2.5", set.Metadata["producer_version"]);
        Assert.Equal("2", set.Metadata["num_heads"]);
        Assert.Equal([1, 1, 64], set.Require("cls_token").Shape);
    }

    private VitWeights LoadOnnx(byte[] bytes)
    {
        string path = _temp.File($"model-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, bytes);
        return ModelLoader.Load(path);
    }

    private string LoadOnnxError(byte[] bytes)
    {
        string path = _temp.File($"broken-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, bytes);
        return ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
    }
}
