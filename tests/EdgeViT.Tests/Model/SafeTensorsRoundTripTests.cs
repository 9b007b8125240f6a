using EdgeViT.Kernels.Model;
using Xunit;

namespace EdgeViT.Tests.Model;

public sealed class SafeTensorsRoundTripTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void SharedModel_RoundTrip_PreservesFingerprintAndConfig()
    {
        var original = ModelLoader.Load(SharedAssets.ModelOnnx);
        string path = _temp.File("deit-tiny-copy.safetensors");
        SafeTensorsWriter.Write(path, original);
        var reloaded = ModelLoader.Load(path);
        Assert.Equal(original.Fingerprint, reloaded.Fingerprint);
        Assert.Equal(original.Config, reloaded.Config);
    }

    [Fact]
    public void RandomModel_RoundTrip_PreservesFingerprint()
    {
        // 6 heads of 32: not inferable from shapes, so this also checks the written num_heads metadata.
        var config = new VitConfig(192, 3, 6, 8, 32, 7, 384, false, LayerNormEps: 1e-5f);
        var original = VitWeights.Random(config, 42);
        string path = _temp.File("random.safetensors");
        SafeTensorsWriter.Write(path, original);
        var reloaded = ModelLoader.Load(path);
        Assert.Equal(config, reloaded.Config);
        Assert.Equal(original.Fingerprint, reloaded.Fingerprint);
    }

    [Fact]
    public void DistilledModel_RoundTrip_IsDetectedWithDistillationHead()
    {
        var original = VitWeights.Random(VitConfig.DeiT("tiny") with { HasDistillationToken = true }, 7);
        string path = _temp.File("distilled.safetensors");
        SafeTensorsWriter.Write(path, original);
        var reloaded = ModelLoader.Load(path);
        Assert.True(reloaded.Config.HasDistillationToken);
        Assert.Equal(198, reloaded.Config.Tokens);
        Assert.NotNull(reloaded.DistillationToken);
        Assert.NotNull(reloaded.HeadDistillation);
        Assert.Equal(original.HeadDistillation!.Weight, reloaded.HeadDistillation!.Weight);
        Assert.Equal(original.Fingerprint, reloaded.Fingerprint);
    }

    [Fact]
    public void Writer_KeepsGivenMetadata()
    {
        string path = _temp.File("meta.safetensors");
        SafeTensorsWriter.Write(path, VitWeights.Random(ModelAssert.SmallConfig(), 5), new Dictionary<string, string> { ["note"] = "a \"quoted\" + ünïcode value" });
        var set = ModelLoader.LoadTensors(path);
        Assert.Equal("a \"quoted\" + ünïcode value", set.Metadata["note"]);
        Assert.Equal("1", set.Metadata["num_heads"]);
    }

    [Fact]
    public void Float16File_LoadsAsRoundedFloats()
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 8);
        string path = _temp.File("half.safetensors");
        SafeTensorsWriter.Write(path, original, dtype: SafeTensorsDType.F16);
        var reloaded = ModelLoader.Load(path);
        Assert.Equal(original.Config, reloaded.Config);
        Assert.Equal(original.Blocks[1].Fc1.Weight.Select(v => (float)(Half)v), reloaded.Blocks[1].Fc1.Weight);
        Assert.Equal(original.PositionEmbedding.Select(v => (float)(Half)v), reloaded.PositionEmbedding);
    }

    [Fact]
    public void BFloat16File_LoadsWithinBFloat16Precision()
    {
        var original = VitWeights.Random(ModelAssert.SmallConfig(), 9);
        string path = _temp.File("bf16.safetensors");
        SafeTensorsWriter.Write(path, original, dtype: SafeTensorsDType.BF16);
        var reloaded = ModelLoader.Load(path);
        var expected = original.Blocks[0].Qkv.Weight;
        var actual = reloaded.Blocks[0].Qkv.Weight;
        bool anyRounded = false;
        for (int i = 0; i < expected.Length; i++)
        {
            // 8 significant bits, rounded to nearest: off by at most half a unit, 2^-8 of the value.
            Assert.True(Math.Abs(expected[i] - actual[i]) <= Math.Abs(expected[i]) / 256f, $"element {i}: {expected[i]} vs {actual[i]}");
            Assert.Equal(0u, BitConverter.SingleToUInt32Bits(actual[i]) & 0xFFFF);
            anyRounded |= expected[i] != actual[i];
        }
        Assert.True(anyRounded);
    }
}
