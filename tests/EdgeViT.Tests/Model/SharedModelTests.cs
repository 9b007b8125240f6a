using EdgeViT.Kernels.Model;
using Xunit;

namespace EdgeViT.Tests.Model;

/// <summary>Both shared DeiT-Tiny files, loaded once for the class (lazily, so one failing file fails only its tests).</summary>
public sealed class SharedModels
{
    private readonly Lazy<VitWeights> _safeTensors = new(() => ModelLoader.Load(SharedAssets.ModelSafetensors));
    private readonly Lazy<VitWeights> _onnx = new(() => ModelLoader.Load(SharedAssets.ModelOnnx));
    private readonly Lazy<TensorSet> _onnxTensors = new(() => ModelLoader.LoadTensors(SharedAssets.ModelOnnx));

    public VitWeights SafeTensors => _safeTensors.Value;
    public VitWeights Onnx => _onnx.Value;
    public TensorSet OnnxTensors => _onnxTensors.Value;
}

public class SharedModelTests(SharedModels models) : IClassFixture<SharedModels>
{
    [Fact]
    public void SafeTensors_InfersDeiTTinyConfig()
    {
        Assert.Equal(VitConfig.DeiT("tiny"), models.SafeTensors.Config);
        Assert.Null(models.SafeTensors.DistillationToken);
        Assert.Null(models.SafeTensors.HeadDistillation);
    }

    [Fact]
    public void Onnx_InfersDeiTTinyConfig()
    {
        Assert.Equal(VitConfig.DeiT("tiny"), models.Onnx.Config);
        Assert.Null(models.Onnx.HeadDistillation);
    }

    [Fact]
    public void SharedFiles_HaveEqualFingerprints()
    {
        Assert.Matches("^[0-9a-f]{64}$", models.SafeTensors.Fingerprint);
        Assert.Equal(models.SafeTensors.Fingerprint, models.Onnx.Fingerprint);
    }

    [Fact]
    public void SharedFiles_TransposedQkvWeightOfBlock3_IsElementwiseEqual()
    {
        // Stored [in,out] under an anonymous name in the ONNX file; must come back as timm's [out,in].
        var fromSafeTensors = models.SafeTensors.Blocks[3].Qkv;
        var fromOnnx = models.Onnx.Blocks[3].Qkv;
        Assert.Equal((192, 576), (fromOnnx.In, fromOnnx.Out));
        Assert.Equal(fromSafeTensors.Weight, fromOnnx.Weight);
        Assert.Equal(fromSafeTensors.Bias, fromOnnx.Bias);
        Assert.NotEqual(0f, fromOnnx.Weight[1]); // not trivially equal (all zero)
    }

    [Fact]
    public void SharedFiles_HeadAndPatchEmbedding_AreElementwiseEqual()
    {
        Assert.Equal(models.SafeTensors.Head.Weight, models.Onnx.Head.Weight);
        Assert.Equal(models.SafeTensors.PatchEmbed.Weight, models.Onnx.PatchEmbed.Weight);
        Assert.Equal(models.SafeTensors.Blocks[11].Fc2.Weight, models.Onnx.Blocks[11].Fc2.Weight);
    }

    [Fact]
    public void Onnx_TensorsCarryTimmNamesAndShapes()
    {
        var t = models.OnnxTensors;
        Assert.Equal([576, 192], t.Require("blocks.3.attn.qkv.weight").Shape);
        Assert.Equal([192, 768], t.Require("blocks.11.mlp.fc2.weight").Shape);
        Assert.Equal([192, 3, 16, 16], t.Require("patch_embed.proj.weight").Shape);
        Assert.Equal([1000, 192], t.Require("head.weight").Shape);
        Assert.DoesNotContain(t.Tensors.Keys, k => k.StartsWith("onnx::", StringComparison.Ordinal));
        Assert.Equal(12 * 12 + 8, t.Tensors.Count); // 12 per block; patch (2), cls, pos, norm (2), head (2)
    }

    [Fact]
    public void Onnx_MetadataNamesProducer()
    {
        Assert.Equal("pytorch", models.OnnxTensors.Metadata["producer_name"]);
        Assert.Equal("1.13.0", models.OnnxTensors.Metadata["producer_version"]);
        Assert.Equal("14", models.OnnxTensors.Metadata["opset"]);
    }

    [Fact]
    public void DetectFormat_UsesContent()
    {
        Assert.Equal(ModelFileFormat.SafeTensors, ModelLoader.DetectFormat(SharedAssets.ModelSafetensors));
        Assert.Equal(ModelFileFormat.Onnx, ModelLoader.DetectFormat(SharedAssets.ModelOnnx));
    }
}
