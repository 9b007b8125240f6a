using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;

namespace EdgeViT.Kernels.Model;

/// <summary>
/// Reads the weights of a ViT/DeiT .onnx export into a <see cref="TensorSet"/> under timm's names
/// (see <see cref="OnnxWeightMapper"/> for how initializers are identified). Only the graph's
/// initializers and node wiring are read; the graph itself is not executed or checked.
/// Metadata: the model's metadata_props, plus producer_name, producer_version, ir_version and opset.
/// </summary>
public static class OnnxWeightsReader
{
    public static TensorSet Read(string path)
    {
        string file = Path.GetFileName(path);
        long length = new FileInfo(path).Length;
        // Protobuf messages cannot exceed 2 GB; bigger exports keep weights as external data anyway.
        if (length > Array.MaxLength)
            throw ModelErrors.Fail(file, $"{length} bytes is more than an ONNX protobuf can hold; external data is not supported");
        return Parse(File.ReadAllBytes(path), path);
    }

    /// <summary>Parses a whole .onnx file already in memory; <paramref name="source"/> names it in messages.</summary>
    public static TensorSet Parse(byte[] bytes, string source)
    {
        string file = Path.GetFileName(source);
        try
        {
            var model = OnnxModel.Parse(bytes);
            if (!model.HasGraph) throw ModelErrors.Fail(file, "the ONNX model has no graph");
            if (model.Initializers.Count == 0) throw ModelErrors.Fail(file, "the ONNX graph has no initializers, so no weights to load");

            var tensors = new Dictionary<string, NamedTensor>(StringComparer.Ordinal);
            foreach (var a in OnnxWeightMapper.Map(model, file))
                tensors[a.TimmName] = ToTimmLayout(a, Decode(model.Bytes, a.Initializer, file));
            return new TensorSet(source, tensors, Metadata(model));
        }
        catch (InvalidDataException ex)
        {
            throw ModelErrors.Fail(file, $"not a valid ONNX protobuf: {ex.Message}");
        }
    }

    private static Dictionary<string, string> Metadata(OnnxModel model)
    {
        var metadata = new Dictionary<string, string>(model.MetadataProps, StringComparer.Ordinal)
        {
            ["producer_name"] = model.ProducerName,
            ["producer_version"] = model.ProducerVersion,
            ["ir_version"] = model.IrVersion.ToString(CultureInfo.InvariantCulture),
        };
        if (model.Opset is long opset) metadata["opset"] = opset.ToString(CultureInfo.InvariantCulture);
        return metadata;
    }

    private static NamedTensor ToTimmLayout(WeightAssignment a, float[] data)
    {
        int[] shape = a.Initializer.Dims.Select(d => (int)d).ToArray();
        if (a.Transpose)
        {
            int rows = shape[0], cols = shape[1];
            var transposed = new float[data.Length];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    transposed[c * rows + r] = data[r * cols + c];
            return new NamedTensor(a.TimmName, [cols, rows], transposed);
        }
        return new NamedTensor(a.TimmName, a.AsVector ? [data.Length] : shape, data);
    }

    /// <summary>Decodes an initializer's payload to float32, checking its size against its dims.</summary>
    internal static float[] Decode(byte[] bytes, OnnxInitializer t, string file)
    {
        string what = $"initializer '{t.Name}' {t.ShapeText}";
        if (t.IsExternal)
            throw ModelErrors.Fail(file, $"{what} keeps its data in a separate file; external data is not supported (export with the weights inside the .onnx)");
        if (t.IsSegmented) throw ModelErrors.Fail(file, $"{what} is segmented; segmented tensors are not supported");
        int count = ElementCount(t, file);
        var data = new float[count];
        switch (t.DataType)
        {
            case OnnxDataType.Float when t.RawData is { } raw:
                var rawFloats = Payload(bytes, raw, count, 4, what, file);
                if (BitConverter.IsLittleEndian) MemoryMarshal.Cast<byte, float>(rawFloats).CopyTo(data);
                else for (int i = 0; i < count; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(rawFloats[(4 * i)..]);
                break;
            case OnnxDataType.Float:
                long floatBytes = t.FloatData.Sum(r => (long)r.Length);
                if (floatBytes != 4L * count)
                    throw ModelErrors.Fail(file, $"{what} has {floatBytes / 4} values in float_data but its dims need {count}");
                int at = 0;
                foreach (var range in t.FloatData)
                    for (int off = 0; off < range.Length; off += 4)
                        data[at++] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(range.Start + off, 4));
                break;
            case OnnxDataType.Float16 or OnnxDataType.BFloat16:
                Func<ushort, float> widen = t.DataType == OnnxDataType.Float16 ? HalfFloats.FromHalfBits : HalfFloats.FromBFloat16Bits;
                if (t.RawData is { } rawHalf)
                {
                    var halves = Payload(bytes, rawHalf, count, 2, what, file);
                    for (int i = 0; i < count; i++) data[i] = widen(BinaryPrimitives.ReadUInt16LittleEndian(halves[(2 * i)..]));
                }
                else
                {
                    // Without raw_data, ONNX stores 16-bit floats one per int32_data varint.
                    int n = 0;
                    foreach (var range in t.Int32Data)
                    {
                        var r = new ProtoReader(bytes.AsSpan(range.Start, range.Length), range.Start);
                        while (!r.AtEnd)
                        {
                            ulong bits = r.ReadVarint();
                            if (n < count) data[n] = widen((ushort)bits);
                            n++;
                        }
                    }
                    if (n != count) throw ModelErrors.Fail(file, $"{what} has {n} values in int32_data but its dims need {count}");
                }
                break;
            default:
                throw ModelErrors.Fail(file, $"{what} has data type {DataTypeName(t.DataType)}; only FLOAT, FLOAT16 and BFLOAT16 weights are supported");
        }
        return data;
    }

    private static ReadOnlySpan<byte> Payload(byte[] bytes, FileRange raw, int count, int elementSize, string what, string file)
    {
        if (raw.Length != (long)count * elementSize)
            throw ModelErrors.Fail(file, $"{what} has {raw.Length} bytes of raw_data but its dims need {(long)count * elementSize}");
        return bytes.AsSpan(raw.Start, raw.Length);
    }

    private static int ElementCount(OnnxInitializer t, string file)
    {
        long count = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0) throw ModelErrors.Fail(file, $"initializer '{t.Name}' has a negative dimension in {t.ShapeText}");
            count = d == 0 ? 0 : count > Array.MaxLength / d ? long.MaxValue : count * d;
        }
        if (count > Array.MaxLength || t.Dims.Any(d => d > int.MaxValue))
            throw ModelErrors.Fail(file, $"initializer '{t.Name}' {t.ShapeText} is too large to load");
        return (int)count;
    }

    private static string DataTypeName(OnnxDataType type) =>
        Enum.IsDefined(type) ? type.ToString().ToUpperInvariant() : $"#{(int)type}";
}
