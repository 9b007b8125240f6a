using System.Buffers.Binary;
using System.Text;
using EdgeViT.Kernels.Model;
using Xunit;

namespace EdgeViT.Tests.Model;

/// <summary>A private temp directory per test class, deleted afterwards.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(
        System.IO.Path.Combine(System.IO.Path.GetTempPath(), "edgevit-model-tests-" + Guid.NewGuid().ToString("N"))).FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

public static class ModelAssert
{
    /// <summary>A ModelFormatException whose message is one line naming the file; returns the message.</summary>
    public static string OneLineError(Action load, string path)
    {
        var ex = Assert.Throws<ModelFormatException>(load);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.DoesNotContain('\r', ex.Message);
        Assert.Contains(System.IO.Path.GetFileName(path), ex.Message);
        return ex.Message;
    }

    /// <summary>A small ViT (d=64, so the head count infers as 1) that loads and writes quickly.</summary>
    public static VitConfig SmallConfig(bool distilled = false) =>
        new(EmbedDim: 64, Depth: 2, Heads: 1, PatchSize: 4, ImageSize: 8, Classes: 10, MlpDim: 128, HasDistillationToken: distilled);

    public static List<NamedTensor> Tensors(VitWeights w) =>
        w.CanonicalTensors().Select(t => new NamedTensor(t.Name, t.Shape, t.Data)).ToList();
}

/// <summary>Protobuf wire-format writer for building ONNX test models by hand.</summary>
public sealed class ProtoWriter
{
    private readonly MemoryStream _stream = new();

    public byte[] ToArray() => _stream.ToArray();

    public ProtoWriter Int(int field, long value) { Tag(field, 0); Varint((ulong)value); return this; }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _stream.Write(b);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> bytes) { Tag(field, 2); Varint((ulong)bytes.Length); _stream.Write(bytes); return this; }

    public ProtoWriter String(int field, string text) => Bytes(field, Encoding.UTF8.GetBytes(text));

    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    public ProtoWriter PackedInt64(int field, IEnumerable<long> values)
    {
        var packed = new ProtoWriter();
        foreach (long v in values) packed.Varint((ulong)v);
        return Bytes(field, packed.ToArray());
    }

    private void Tag(int field, int wire) => Varint((ulong)((field << 3) | wire));

    private void Varint(ulong value)
    {
        while (value >= 0x80) { _stream.WriteByte((byte)(value | 0x80)); value >>= 7; }
        _stream.WriteByte((byte)value);
    }
}

/// <summary>How a test initializer stores its values.</summary>
public enum OnnxStorage { RawFloat, PackedFloatData, RawFloat16, Float16InInt32Data, External, RawDouble }

/// <summary>A hand-built ONNX ModelProto: initializers and nodes only (enough for the weight loader).</summary>
public sealed class OnnxTestModel
{
    private readonly ProtoWriter _graph = new();

    public OnnxTestModel Initializer(string name, int[] dims, float[] data, OnnxStorage storage = OnnxStorage.RawFloat)
    {
        var t = new ProtoWriter().PackedInt64(1, dims.Select(d => (long)d));
        switch (storage)
        {
            case OnnxStorage.RawFloat:
                t.Int(2, 1).Bytes(9, LittleEndian(data, 4, (s, v) => BinaryPrimitives.WriteSingleLittleEndian(s, v)));
                break;
            case OnnxStorage.PackedFloatData:
                t.Int(2, 1).Bytes(4, LittleEndian(data, 4, (s, v) => BinaryPrimitives.WriteSingleLittleEndian(s, v)));
                break;
            case OnnxStorage.RawFloat16:
                t.Int(2, 10).Bytes(9, LittleEndian(data, 2, (s, v) => BinaryPrimitives.WriteHalfLittleEndian(s, (Half)v)));
                break;
            case OnnxStorage.Float16InInt32Data:
                t.Int(2, 10).PackedInt64(5, data.Select(v => (long)BitConverter.HalfToUInt16Bits((Half)v)));
                break;
            case OnnxStorage.External:
                t.Int(2, 1)
                 .Message(13, new ProtoWriter().String(1, "location").String(2, "weights.bin"))
                 .Int(14, 1);
                break;
            case OnnxStorage.RawDouble:
                t.Int(2, 11).Bytes(9, LittleEndian(data, 8, (s, v) => BinaryPrimitives.WriteDoubleLittleEndian(s, v)));
                break;
        }
        t.String(8, name);
        _graph.Message(5, t);
        return this;
    }

    public OnnxTestModel Node(string op, string name, string[] inputs, string[] outputs,
        IEnumerable<(string Name, long Value)>? ints = null, IEnumerable<(string Name, float Value)>? floats = null)
    {
        var n = new ProtoWriter();
        foreach (var i in inputs) n.String(1, i);
        foreach (var o in outputs) n.String(2, o);
        if (name.Length > 0) n.String(3, name);
        n.String(4, op);
        foreach (var (attr, value) in ints ?? Array.Empty<(string, long)>()) n.Message(5, new ProtoWriter().String(1, attr).Int(3, value).Int(20, 2));
        foreach (var (attr, value) in floats ?? Array.Empty<(string, float)>()) n.Message(5, new ProtoWriter().String(1, attr).Float(2, value).Int(20, 1));
        _graph.Message(1, n);
        return this;
    }

    public byte[] Build(string producer = "edgevit-tests", string version = "0.1", IReadOnlyDictionary<string, string>? metadata = null)
    {
        var model = new ProtoWriter().Int(1, 8).String(2, producer).String(3, version).Message(7, _graph)
            .Message(8, new ProtoWriter().String(1, "").Int(2, 14));
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>())
            model.Message(14, new ProtoWriter().String(1, k).String(2, v));
        return model.ToArray();
    }

    private static byte[] LittleEndian(float[] data, int size, SpanAction write)
    {
        var bytes = new byte[data.Length * size];
        for (int i = 0; i < data.Length; i++) write(bytes.AsSpan(i * size), data[i]);
        return bytes;
    }

    private delegate void SpanAction(Span<byte> span, float value);
}

/// <summary>Naming conventions of ONNX exporters that the loader must understand.</summary>
public enum OnnxNaming
{
    /// <summary>torch 1.13: leaf module names (/qkv_3/MatMul), anonymous transposed MatMul weights, flat block names.</summary>
    TorchShort,
    /// <summary>Full module paths (/blocks.3/attn/qkv/MatMul) and timm initializer names.</summary>
    FullPath,
    /// <summary>No usable names at all: linear layers must be found by graph order.</summary>
    Anonymous,
}

/// <summary>Writes a ViT's weights as an ONNX graph the way various exporters lay them out.</summary>
public static class OnnxExport
{
    public static byte[] Build(VitWeights w, OnnxNaming naming, bool useGemm = false, bool gemmTransB = true,
        OnnxStorage storage = OnnxStorage.RawFloat, Func<string, string?>? renameInitializer = null)
    {
        var m = new OnnxTestModel();
        var c = w.Config;
        int anonymous = 1000;
        string Rename(string name) => renameInitializer?.Invoke(name) ?? name;
        void Init(string name, int[] dims, float[] data) => m.Initializer(Rename(name), dims, data, storage);
        string NodeName(string path) => naming == OnnxNaming.Anonymous ? "" : path;
        string Output(string path) => naming == OnnxNaming.Anonymous ? $"t{anonymous++}" : path + "_output_0";

        string patchW = naming switch { OnnxNaming.TorchShort => "patch.weight", OnnxNaming.FullPath => "patch_embed.proj.weight", _ => "onnx::Conv_1" };
        string patchB = naming switch { OnnxNaming.TorchShort => "patch.bias", OnnxNaming.FullPath => "patch_embed.proj.bias", _ => "onnx::Conv_2" };
        Init(patchW, [c.EmbedDim, c.InChannels, c.PatchSize, c.PatchSize], w.PatchEmbed.Weight);
        Init(patchB, [c.EmbedDim], w.PatchEmbed.Bias);
        Init("cls_token", [1, 1, c.EmbedDim], w.ClassToken);
        if (w.DistillationToken is not null) Init("dist_token", [1, 1, c.EmbedDim], w.DistillationToken);
        Init("pos_embed", [1, c.Tokens, c.EmbedDim], w.PositionEmbedding);
        string x = Output("/patch/Conv");
        m.Node("Conv", NodeName("/patch/Conv"), ["pixel_values", Rename(patchW), Rename(patchB)], [x]);

        for (int i = 0; i < c.Depth; i++)
        {
            var b = w.Blocks[i];
            foreach (var (norm, n) in new[] { ("norm1", b.Norm1), ("norm2", b.Norm2) })
            {
                Init($"blocks.{i}.{norm}.weight", [c.EmbedDim], n.Gamma);
                Init($"blocks.{i}.{norm}.bias", [c.EmbedDim], n.Beta);
            }
            foreach (var (role, module, lin) in new[] { ("qkv", "attn", b.Qkv), ("proj", "attn", b.Proj), ("fc1", "mlp", b.Fc1), ("fc2", "mlp", b.Fc2) })
            {
                string path = naming == OnnxNaming.TorchShort ? (i == 0 ? $"/{role}" : $"/{role}_{i}") : $"/blocks.{i}/{module}/{role}";
                string weightName = naming == OnnxNaming.FullPath ? $"blocks.{i}.{module}.{role}.weight" : $"onnx::MatMul_{anonymous++}";
                string biasName = naming switch
                {
                    OnnxNaming.TorchShort => $"blocks.{i}.{role}.bias",
                    OnnxNaming.FullPath => $"blocks.{i}.{module}.{role}.bias",
                    _ => $"onnx::Add_{anonymous++}",
                };
                x = Linear(m, lin, path, weightName, biasName, x, useGemm, gemmTransB, NodeName, Output, Init, Rename);
                if (role == "qkv") // an attention MatMul between activations, which must be ignored
                    m.Node("MatMul", NodeName($"/MatMul_{i}"), [x, x], [x = Output($"/MatMul_{i}")]);
            }
        }
        Init("norm.weight", [c.EmbedDim], w.FinalNorm.Gamma);
        Init("norm.bias", [c.EmbedDim], w.FinalNorm.Beta);
        foreach (var (head, lin) in new[] { ("head", w.Head), ("head_dist", w.HeadDistillation) })
        {
            if (lin is null) continue;
            string weightName = naming == OnnxNaming.Anonymous ? $"onnx::Gemm_{anonymous++}" : $"{head}.weight";
            string biasName = naming == OnnxNaming.Anonymous ? $"onnx::Gemm_{anonymous++}" : $"{head}.bias";
            Linear(m, lin, "/" + head, weightName, biasName, x, useGemm: true, gemmTransB: true, NodeName, Output, Init, Rename);
        }
        return m.Build(producer: "pytorch", version: "1.13.0");
    }

    private static string Linear(OnnxTestModel m, Linear lin, string path, string weightName, string biasName, string input,
        bool useGemm, bool gemmTransB, Func<string, string> nodeName, Func<string, string> output,
        Action<string, int[], float[]> init, Func<string, string> rename)
    {
        if (useGemm && gemmTransB)
            init(weightName, [lin.Out, lin.In], lin.Weight);
        else
            init(weightName, [lin.In, lin.Out], Transpose(lin.Weight, lin.Out, lin.In));
        init(biasName, [lin.Out], lin.Bias);
        if (useGemm)
        {
            string y = output(path + "/Gemm");
            m.Node("Gemm", nodeName(path + "/Gemm"), [input, rename(weightName), rename(biasName)], [y],
                ints: [("transB", gemmTransB ? 1 : 0)], floats: [("alpha", 1f), ("beta", 1f)]);
            return y;
        }
        string mm = output(path + "/MatMul");
        m.Node("MatMul", nodeName(path + "/MatMul"), [input, rename(weightName)], [mm]);
        string sum = output(path + "/Add");
        m.Node("Add", nodeName(path + "/Add"), [rename(biasName), mm], [sum]);
        return sum;
    }

    public static float[] Transpose(float[] data, int rows, int cols)
    {
        var t = new float[data.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                t[c * rows + r] = data[r * cols + c];
        return t;
    }
}
