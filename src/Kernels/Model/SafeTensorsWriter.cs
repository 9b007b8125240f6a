using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace EdgeViT.Kernels.Model;

/// <summary>
/// Writes .safetensors files that <see cref="SafeTensorsReader"/> (and the Python safetensors package) read:
/// tensors packed in the given order, header padded with spaces to 8 bytes so the data stays aligned.
/// The file is written beside the target and renamed, so a failed write never leaves half a model.
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>
    /// Writes weights under timm's names (<see cref="VitWeights.CanonicalTensors"/>), with metadata describing
    /// the architecture (<see cref="ConfigMetadata"/>) so that a reload infers the same config;
    /// <paramref name="metadata"/> adds to or overrides it.
    /// </summary>
    public static void Write(string path, VitWeights weights, IReadOnlyDictionary<string, string>? metadata = null,
        SafeTensorsDType dtype = SafeTensorsDType.F32)
    {
        var merged = ConfigMetadata(weights.Config);
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>()) merged[key] = value;
        Write(path, weights.CanonicalTensors().Select(t => new NamedTensor(t.Name, t.Shape, t.Data)), merged, dtype);
    }

    /// <summary>Writes arbitrary tensors (names and shapes unchecked beyond data length), e.g. deliberately broken models.</summary>
    public static void Write(string path, IEnumerable<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata = null,
        SafeTensorsDType dtype = SafeTensorsDType.F32)
    {
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor '{t.Name}' is listed twice", nameof(tensors));
            long count = t.Shape.Aggregate(1L, (n, d) => n * d);
            if (count != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}' has shape {t.ShapeText} ({count} values) but {t.Data.Length} values", nameof(tensors));
        }

        byte[] header = Header(list, metadata, dtype);
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                Span<byte> length = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
                stream.Write(length);
                stream.Write(header);
                foreach (var t in list) WriteData(stream, t.Data, dtype);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>The metadata keys <see cref="VitWeights.FromTensors"/> reads, plus descriptive ones.</summary>
    public static Dictionary<string, string> ConfigMetadata(VitConfig c) => new(StringComparer.Ordinal)
    {
        ["embed_dim"] = c.EmbedDim.ToString(CultureInfo.InvariantCulture),
        ["depth"] = c.Depth.ToString(CultureInfo.InvariantCulture),
        ["num_heads"] = c.Heads.ToString(CultureInfo.InvariantCulture),
        ["img_size"] = c.ImageSize.ToString(CultureInfo.InvariantCulture),
        ["num_classes"] = c.Classes.ToString(CultureInfo.InvariantCulture),
        ["layer_norm_eps"] = c.LayerNormEps.ToString("R", CultureInfo.InvariantCulture),
    };

    private static byte[] Header(List<NamedTensor> tensors, IReadOnlyDictionary<string, string>? metadata, SafeTensorsDType dtype)
    {
        var buffer = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps names and metadata readable; the output is still strict JSON.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            int elementSize = dtype == SafeTensorsDType.F32 ? 4 : 2;
            foreach (var t in tensors)
            {
                long end = offset + (long)t.Data.Length * elementSize;
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", dtype.ToString());
                json.WriteStartArray("shape");
                foreach (int d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
                offset = end;
            }
            json.WriteEndObject();
        }
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteData(Stream stream, float[] data, SafeTensorsDType dtype)
    {
        if (dtype == SafeTensorsDType.F32 && BitConverter.IsLittleEndian)
        {
            const int chunk = 1 << 26; // keeps each byte span under 2 GB
            for (int start = 0; start < data.Length; start += chunk)
                stream.Write(MemoryMarshal.AsBytes(data.AsSpan(start, Math.Min(chunk, data.Length - start))));
            return;
        }
        var scratch = new byte[1 << 16];
        int elementSize = dtype == SafeTensorsDType.F32 ? 4 : 2;
        int perChunk = scratch.Length / elementSize;
        for (int start = 0; start < data.Length; start += perChunk)
        {
            int n = Math.Min(perChunk, data.Length - start);
            for (int i = 0; i < n; i++)
            {
                float v = data[start + i];
                var slot = scratch.AsSpan(i * elementSize);
                switch (dtype)
                {
                    case SafeTensorsDType.F32: BinaryPrimitives.WriteSingleLittleEndian(slot, v); break;
                    case SafeTensorsDType.F16: BinaryPrimitives.WriteUInt16LittleEndian(slot, HalfFloats.ToHalfBits(v)); break;
                    default: BinaryPrimitives.WriteUInt16LittleEndian(slot, HalfFloats.ToBFloat16Bits(v)); break;
                }
            }
            stream.Write(scratch, 0, n * elementSize);
        }
    }
}
