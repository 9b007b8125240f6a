using System.Buffers.Binary;
using System.Text;
using EdgeViT.Kernels.Model;
using Xunit;

namespace EdgeViT.Tests.Model;

public sealed class CorruptModelTests : IDisposable
{
    private readonly TempDir _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(0.6)]
    [InlineData(0.05)]
    [InlineData(0.0005)]
    public void TruncatedSafeTensors_FailsWithOneLineNamingFile(double fraction)
    {
        string path = Truncated(SharedAssets.ModelSafetensors, fraction);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("truncated", message);
    }

    [Theory]
    [InlineData(0.6)]
    [InlineData(0.05)]
    [InlineData(0.0005)]
    public void TruncatedOnnx_FailsWithOneLineNamingFile(double fraction)
    {
        string path = Truncated(SharedAssets.ModelOnnx, fraction);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("truncated", message);
    }

    [Theory]
    [InlineData("random.bin")]
    [InlineData("random.onnx")]
    [InlineData("random.safetensors")]
    public void RandomBytes_FailWithOneLineNamingFile(string name)
    {
        string path = _temp.File(name);
        var bytes = new byte[100_000];
        new Random(1234).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
    }

    [Fact]
    public void TextFile_IsNeitherFormat()
    {
        string path = _temp.File("notes.txt");
        File.WriteAllText(path, "these are not the weights you are looking for\n");
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("not a .safetensors or .onnx model", message);
    }

    [Fact]
    public void EmptyFile_FailsNamingFile()
    {
        string path = _temp.File("empty.safetensors");
        File.WriteAllBytes(path, []);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("empty", message);
    }

    [Fact]
    public void MissingPath_ThrowsFileNotFoundNamingPath()
    {
        string path = _temp.File("no-such-model.safetensors");
        var ex = Assert.Throws<FileNotFoundException>(() => ModelLoader.Load(path));
        Assert.Contains(path, ex.Message);
    }

    [Fact]
    public void SafeTensorsMissingOneTensor_NamesIt()
    {
        var tensors = ModelAssert.Tensors(VitWeights.Random(ModelAssert.SmallConfig(), 1));
        tensors.RemoveAll(t => t.Name == "blocks.1.mlp.fc2.bias");
        string path = _temp.File("missing.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("missing tensor 'blocks.1.mlp.fc2.bias'", message);
    }

    [Fact]
    public void SafeTensorsMissingLastBlockQkv_DoesNotLoadAsShallowerModel()
    {
        var tensors = ModelAssert.Tensors(VitWeights.Random(ModelAssert.SmallConfig(), 2));
        tensors.RemoveAll(t => t.Name == "blocks.1.attn.qkv.weight");
        string path = _temp.File("no-last-qkv.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("missing tensor 'blocks.1.attn.qkv.weight'", message);
    }

    [Fact]
    public void QkvWeightWithWrongOutDim_NamesTensorAndBothShapes()
    {
        var tensors = ModelAssert.Tensors(VitWeights.Random(ModelAssert.SmallConfig(), 3));
        int i = tensors.FindIndex(t => t.Name == "blocks.1.attn.qkv.weight");
        tensors[i] = new NamedTensor("blocks.1.attn.qkv.weight", [191, 64], new float[191 * 64]);
        string path = _temp.File("bad-qkv.safetensors");
        SafeTensorsWriter.Write(path, tensors);
        string message = ModelAssert.OneLineError(() => ModelLoader.Load(path), path);
        Assert.Contains("blocks.1.attn.qkv.weight", message);
        Assert.Contains("[191,64]", message);
        Assert.Contains("[192,64]", message);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}""", 16, "not valid JSON")]
    [InlineData("""[{"a":1}]""", 0, "not a .safetensors or .onnx model (the content matches neither format despite its .safetensors extension)")]
    [InlineData("""{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}""", 16, "dtype F64")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}""", 12, "holds 12 bytes but F32 [4] needs 16")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8, "'a' data [0,16) lies beyond the end of the file (truncated?)")]
    [InlineData("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}""", 24, "overlaps")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16, "belong to no tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 16, "8 bytes after the last tensor")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, "non-negative")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2]}}""", 8, "no \"data_offsets\"")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", 8, "0 <= begin <= end")]
    [InlineData("""{"__metadata__":{"depth":12},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 8, "'depth' is a JSON Number")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16, "lists 'a' twice")]
    public void SafeTensorsHeaderFaults_AreNamed(string header, int dataBytes, string expected)
    {
        string path = _temp.File("hand-made.safetensors");
        File.WriteAllBytes(path, SafeTensorsBytes(header, dataBytes));
        string message = ModelAssert.OneLineError(() => ModelLoader.LoadTensors(path), path);
        Assert.Contains(expected, message);
    }

    [Fact]
    public void SafeTensorsHeaderLengthBeyondFile_IsNamed()
    {
        string path = _temp.File("short.safetensors");
        var bytes = SafeTensorsBytes("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 5000);
        File.WriteAllBytes(path, bytes);
        string message = ModelAssert.OneLineError(() => ModelLoader.LoadTensors(path), path);
        Assert.Contains("header length 5000 is beyond the file size", message);
    }

    [Fact]
    public void Load_DetectsFormatByContentNotExtension()
    {
        var weights = VitWeights.Random(ModelAssert.SmallConfig(), 4);
        string path = _temp.File("actually-safetensors.onnx");
        SafeTensorsWriter.Write(path, weights);
        Assert.Equal(ModelFileFormat.SafeTensors, ModelLoader.DetectFormat(path));
        Assert.Equal(weights.Fingerprint, ModelLoader.Load(path).Fingerprint);

        string onnxPath = _temp.File("actually-onnx.safetensors");
        File.WriteAllBytes(onnxPath, OnnxExport.Build(weights, OnnxNaming.TorchShort));
        Assert.Equal(ModelFileFormat.Onnx, ModelLoader.DetectFormat(onnxPath));
        Assert.Equal(weights.Fingerprint, ModelLoader.Load(onnxPath).Fingerprint);
    }

    private string Truncated(string source, double fraction)
    {
        byte[] bytes = File.ReadAllBytes(source);
        string path = _temp.File($"cut-{fraction}-" + Path.GetFileName(source));
        File.WriteAllBytes(path, bytes.AsSpan(0, (int)(bytes.Length * fraction)).ToArray());
        return path;
    }

    private static byte[] SafeTensorsBytes(string header, int dataBytes)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        return bytes;
    }
}
