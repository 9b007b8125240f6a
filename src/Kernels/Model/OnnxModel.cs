namespace EdgeViT.Kernels.Model;

/// <summary>ONNX TensorProto.DataType values the loader names or converts.</summary>
internal enum OnnxDataType
{
    Undefined = 0, Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, String = 8,
    Bool = 9, Float16 = 10, Double = 11, UInt32 = 12, UInt64 = 13, Complex64 = 14, Complex128 = 15, BFloat16 = 16,
}

/// <summary>A byte range of the model file.</summary>
internal readonly record struct FileRange(int Start, int Length);

/// <summary>
/// An initializer as found in the graph: name, dims and type, with its payload left in the file
/// (ranges only) so that tensors the model does not need (shape constants, int64 data) are never decoded.
/// </summary>
internal sealed class OnnxInitializer
{
    public string Name { get; set; } = "";
    public long[] Dims { get; set; } = [];
    public OnnxDataType DataType { get; set; }
    public FileRange? RawData { get; set; }
    /// <summary>Payload of float_data: packed chunks or single fixed32 values, in order.</summary>
    public List<FileRange> FloatData { get; } = [];
    /// <summary>Payload of int32_data (varints; FLOAT16/BFLOAT16 bits live here when not raw).</summary>
    public List<FileRange> Int32Data { get; } = [];
    public bool IsExternal { get; set; }
    public bool IsSegmented { get; set; }
    public string ShapeText => "[" + string.Join(",", Dims) + "]";
}

internal sealed class OnnxNode
{
    public int Index { get; init; }
    public string Name { get; set; } = "";
    public string OpType { get; set; } = "";
    public List<string> Inputs { get; } = [];
    public List<string> Outputs { get; } = [];
    public Dictionary<string, long> IntAttributes { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, float> FloatAttributes { get; } = new(StringComparer.Ordinal);

    /// <summary>The node's name for messages; anonymous nodes are named by position and op.</summary>
    public string Display => Name.Length > 0 ? Name : $"#{Index} {OpType}";
    /// <summary>The name that carries the module path: torch names outputs like "/qkv/MatMul_output_0".</summary>
    public string PathName => Name.Length > 0 ? Name : Outputs.Count > 0 ? Outputs[0] : "";
    public string? Input(int i) => i < Inputs.Count && Inputs[i].Length > 0 ? Inputs[i] : null;
}

/// <summary>The parts of an ONNX ModelProto the weight loader uses (onnx/onnx.proto field numbers).</summary>
internal sealed class OnnxModel
{
    public required byte[] Bytes { get; init; }
    public long IrVersion { get; private set; }
    public string ProducerName { get; private set; } = "";
    public string ProducerVersion { get; private set; } = "";
    /// <summary>Version of the default ("" or "ai.onnx") operator set, if declared.</summary>
    public long? Opset { get; private set; }
    public Dictionary<string, string> MetadataProps { get; } = new(StringComparer.Ordinal);
    public List<OnnxNode> Nodes { get; } = [];
    public List<OnnxInitializer> Initializers { get; } = [];
    public bool HasGraph { get; private set; }

    public static OnnxModel Parse(byte[] bytes)
    {
        var model = new OnnxModel { Bytes = bytes };
        var r = new ProtoReader(bytes);
        while (r.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.Varint, "ModelProto.ir_version"); model.IrVersion = r.ReadInt64(); break;
                case 2: r.Expect(wire, WireType.LengthDelimited, "ModelProto.producer_name"); model.ProducerName = r.ReadString(); break;
                case 3: r.Expect(wire, WireType.LengthDelimited, "ModelProto.producer_version"); model.ProducerVersion = r.ReadString(); break;
                case 7:
                    r.Expect(wire, WireType.LengthDelimited, "ModelProto.graph");
                    model.ParseGraph(r.ReadMessage("ModelProto.graph"));
                    model.HasGraph = true;
                    break;
                case 8: r.Expect(wire, WireType.LengthDelimited, "ModelProto.opset_import"); model.ParseOpset(r.ReadMessage()); break;
                case 14:
                    r.Expect(wire, WireType.LengthDelimited, "ModelProto.metadata_props");
                    var (key, value) = ParseStringPair(r.ReadMessage());
                    model.MetadataProps[key] = value;
                    break;
                default: r.Skip(wire); break;
            }
        }
        return model;
    }

    private void ParseOpset(ProtoReader r)
    {
        string domain = "";
        long version = 0;
        while (r.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) domain = r.ReadString();
            else if (field == 2 && wire == WireType.Varint) version = r.ReadInt64();
            else r.Skip(wire);
        }
        if (domain is "" or "ai.onnx") Opset = version;
    }

    private static (string Key, string Value) ParseStringPair(ProtoReader r)
    {
        string key = "", value = "";
        while (r.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) key = r.ReadString();
            else if (field == 2 && wire == WireType.LengthDelimited) value = r.ReadString();
            else r.Skip(wire);
        }
        return (key, value);
    }

    private void ParseGraph(ProtoReader r)
    {
        while (r.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.LengthDelimited, "GraphProto.node"); Nodes.Add(ParseNode(r.ReadMessage("GraphProto.node"), Nodes.Count)); break;
                case 5: r.Expect(wire, WireType.LengthDelimited, "GraphProto.initializer"); Initializers.Add(ParseTensor(r.ReadMessage("GraphProto.initializer"))); break;
                default: r.Skip(wire); break;
            }
        }
    }

    private static OnnxNode ParseNode(ProtoReader r, int index)
    {
        var node = new OnnxNode { Index = index };
        while (r.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.LengthDelimited, "NodeProto.input"); node.Inputs.Add(r.ReadString()); break;
                case 2: r.Expect(wire, WireType.LengthDelimited, "NodeProto.output"); node.Outputs.Add(r.ReadString()); break;
                case 3: r.Expect(wire, WireType.LengthDelimited, "NodeProto.name"); node.Name = r.ReadString(); break;
                case 4: r.Expect(wire, WireType.LengthDelimited, "NodeProto.op_type"); node.OpType = r.ReadString(); break;
                case 5: r.Expect(wire, WireType.LengthDelimited, "NodeProto.attribute"); ParseAttribute(r.ReadMessage(), node); break;
                default: r.Skip(wire); break;
            }
        }
        return node;
    }

    /// <summary>Keeps scalar int and float attributes only (Gemm's transA/transB/alpha/beta).</summary>
    private static void ParseAttribute(ProtoReader r, OnnxNode node)
    {
        string name = "";
        long? i = null;
        float? f = null;
        while (r.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) name = r.ReadString();
            else if (field == 2 && wire == WireType.Fixed32) f = r.ReadFloat();
            else if (field == 3 && wire == WireType.Varint) i = r.ReadInt64();
            else r.Skip(wire);
        }
        if (i is long iv) node.IntAttributes[name] = iv;
        if (f is float fv) node.FloatAttributes[name] = fv;
    }

    private static OnnxInitializer ParseTensor(ProtoReader r)
    {
        var t = new OnnxInitializer();
        var dims = new List<long>();
        while (r.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1: // dims: packed or one varint per field
                    if (wire == WireType.LengthDelimited)
                    {
                        var packed = r.ReadMessage();
                        while (!packed.AtEnd) dims.Add(packed.ReadInt64());
                    }
                    else { r.Expect(wire, WireType.Varint, "TensorProto.dims"); dims.Add(r.ReadInt64()); }
                    break;
                case 2: r.Expect(wire, WireType.Varint, "TensorProto.data_type"); t.DataType = (OnnxDataType)r.ReadInt64(); break;
                case 3: t.IsSegmented = true; r.Skip(wire); break;
                case 4: // float_data: packed, or one fixed32 per field
                    if (wire == WireType.LengthDelimited) { int n = r.ReadBytes(out int at).Length; t.FloatData.Add(new FileRange(at, n)); }
                    else { r.Expect(wire, WireType.Fixed32, "TensorProto.float_data"); int at = r.FilePosition; r.ReadFixed32(); t.FloatData.Add(new FileRange(at, 4)); }
                    break;
                case 5: // int32_data: packed, or one varint per field
                    if (wire == WireType.LengthDelimited) { int n = r.ReadBytes(out int at).Length; t.Int32Data.Add(new FileRange(at, n)); }
                    else { r.Expect(wire, WireType.Varint, "TensorProto.int32_data"); int at = r.FilePosition; r.ReadVarint(); t.Int32Data.Add(new FileRange(at, r.FilePosition - at)); }
                    break;
                case 8: r.Expect(wire, WireType.LengthDelimited, "TensorProto.name"); t.Name = r.ReadString(); break;
                case 9:
                    r.Expect(wire, WireType.LengthDelimited, "TensorProto.raw_data");
                    int length = r.ReadBytes(out int start).Length;
                    t.RawData = new FileRange(start, length);
                    break;
                case 13: t.IsExternal = true; r.Skip(wire); break; // external_data entries
                case 14: r.Expect(wire, WireType.Varint, "TensorProto.data_location"); if (r.ReadInt64() == 1) t.IsExternal = true; break;
                default: r.Skip(wire); break;
            }
        }
        t.Dims = dims.ToArray();
        return t;
    }
}
