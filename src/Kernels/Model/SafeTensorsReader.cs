using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace EdgeViT.Kernels.Model;

/// <summary>Element types of .safetensors files that the loaders read or write (all widened to float32).</summary>
public enum SafeTensorsDType { F32, F16, BF16 }

/// <summary>
/// Reads a .safetensors file: an 8-byte little-endian header length, a JSON header mapping each tensor
/// to {dtype, shape, data_offsets} (offsets relative to the data after the header) plus an optional
/// "__metadata__" string map, then the tensor bytes. The header is checked completely (sizes, bounds,
/// overlaps and holes, as the format's reference implementation does) before any tensor is read,
/// then tensors are read in file order in one pass straight into their float arrays.
/// </summary>
public static class SafeTensorsReader
{
    /// <summary>The reference implementation's header limit; larger values mean a corrupt length.</summary>
    public const int MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private sealed record Entry(string Name, SafeTensorsDType DType, int[] Shape, int Count, long Begin, long End);

    public static TensorSet Read(string path)
    {
        string file = Path.GetFileName(path);
        // No FileStream buffer: tensors are read in large blocks directly into their arrays.
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw ModelErrors.Fail(file, $"{fileLength} bytes is too short for a safetensors header (8-byte length, then JSON)");

        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw ModelErrors.Fail(file, $"header length {headerLength} is beyond the file size {fileLength} (truncated, or not a safetensors file)");
        if (headerLength > MaxHeaderBytes)
            throw ModelErrors.Fail(file, $"header length {headerLength} exceeds the safetensors limit of {MaxHeaderBytes} bytes");
        var header = new byte[headerLength];
        stream.ReadExactly(header);

        long dataStart = 8 + (long)headerLength;
        var (entries, metadata) = ParseHeader(header, fileLength - dataStart, file);

        var tensors = new Dictionary<string, NamedTensor>(entries.Count, StringComparer.Ordinal);
        byte[]? scratch = null;
        foreach (var e in entries) // already in file order, without holes: no seeking
            tensors[e.Name] = new NamedTensor(e.Name, e.Shape, ReadData(stream, e, ref scratch));
        return new TensorSet(path, tensors, metadata);
    }

    private static (List<Entry> Entries, Dictionary<string, string> Metadata) ParseHeader(byte[] header, long dataLength, string file)
    {
        if (header.Length == 0 || header[0] != (byte)'{')
            throw ModelErrors.Fail(file, "the header does not start with '{' (not a safetensors file?)");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException ex)
        {
            throw ModelErrors.Fail(file, $"the header is not valid JSON: {ex.Message}");
        }

        using (doc)
        {
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                // JSON allows repeated keys; a tensor listed twice is ambiguous.
                if (!seen.Add(property.Name)) throw ModelErrors.Fail(file, $"the header lists '{property.Name}' twice");
                if (property.Name == MetadataKey) ReadMetadata(property.Value, metadata, file);
                else entries.Add(ParseEntry(property.Name, property.Value, file));
            }
            CheckLayout(entries, dataLength, file);
            return (entries, metadata);
        }
    }

    private static void ReadMetadata(JsonElement element, Dictionary<string, string> metadata, string file)
    {
        if (element.ValueKind != JsonValueKind.Object)
            throw ModelErrors.Fail(file, $"{MetadataKey} is a JSON {element.ValueKind}, expected an object of strings");
        foreach (var item in element.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw ModelErrors.Fail(file, $"{MetadataKey} entry '{item.Name}' is a JSON {item.Value.ValueKind}, expected a string");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static Entry ParseEntry(string name, JsonElement element, string file)
    {
        string what = $"tensor '{name}'";
        if (element.ValueKind != JsonValueKind.Object)
            throw ModelErrors.Fail(file, $"{what} is described by a JSON {element.ValueKind}, expected an object");

        var dtypeText = Field(element, "dtype", JsonValueKind.String, what, file).GetString();
        SafeTensorsDType dtype = dtypeText switch
        {
            "F32" => SafeTensorsDType.F32,
            "F16" => SafeTensorsDType.F16,
            "BF16" => SafeTensorsDType.BF16,
            _ => throw ModelErrors.Fail(file, $"{what} has dtype {dtypeText}; only F32, F16 and BF16 are supported"),
        };

        var shapeElement = Field(element, "shape", JsonValueKind.Array, what, file);
        var shape = new int[shapeElement.GetArrayLength()];
        long count = 1;
        int i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int d) || d < 0)
                throw ModelErrors.Fail(file, $"{what} has shape {shapeElement.GetRawText()}; dimensions must be non-negative integers");
            shape[i++] = d;
            count = Math.Min(count * d, long.MaxValue / int.MaxValue); // saturates instead of overflowing
        }
        string shapeText = "[" + string.Join(",", shape) + "]";
        if (count > Array.MaxLength) throw ModelErrors.Fail(file, $"{what} with shape {shapeText} is too large to load");

        var offsets = Field(element, "data_offsets", JsonValueKind.Array, what, file);
        if (offsets.GetArrayLength() != 2 || !offsets[0].TryGetInt64(out long begin) || !offsets[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw ModelErrors.Fail(file, $"{what} has data_offsets {offsets.GetRawText()}; expected [begin,end] with 0 <= begin <= end");

        long expectedBytes = count * ElementSize(dtype);
        if (end - begin != expectedBytes)
            throw ModelErrors.Fail(file, $"{what} data [{begin},{end}) holds {end - begin} bytes but {dtypeText} {shapeText} needs {expectedBytes}");
        return new Entry(name, dtype, shape, (int)count, begin, end);
    }

    private static JsonElement Field(JsonElement obj, string key, JsonValueKind kind, string what, string file)
    {
        if (!obj.TryGetProperty(key, out var value))
            throw ModelErrors.Fail(file, $"{what} has no \"{key}\"");
        if (value.ValueKind != kind)
            throw ModelErrors.Fail(file, $"{what} has \"{key}\" as a JSON {value.ValueKind}, expected {kind}");
        return value;
    }

    /// <summary>Sorts entries into file order; the data must be covered exactly: no overlap, hole or tail.</summary>
    private static void CheckLayout(List<Entry> entries, long dataLength, string file)
    {
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long position = 0;
        Entry? previous = null;
        foreach (var e in entries)
        {
            if (e.Begin < position)
                throw ModelErrors.Fail(file, $"tensor '{e.Name}' data [{e.Begin},{e.End}) overlaps tensor '{previous!.Name}' [{previous.Begin},{previous.End})");
            if (e.Begin > position)
                throw ModelErrors.Fail(file, $"data bytes [{position},{e.Begin}) before tensor '{e.Name}' belong to no tensor");
            if (e.End > dataLength)
                throw ModelErrors.Fail(file, $"tensor '{e.Name}' data [{e.Begin},{e.End}) lies beyond the end of the file (truncated?); the data section holds {dataLength} bytes");
            position = e.End;
            previous = e;
        }
        if (position != dataLength)
            throw ModelErrors.Fail(file, $"{dataLength - position} bytes after the last tensor belong to no tensor");
    }

    private static int ElementSize(SafeTensorsDType dtype) => dtype == SafeTensorsDType.F32 ? 4 : 2;

    private static float[] ReadData(Stream stream, Entry e, ref byte[]? scratch)
    {
        var data = new float[e.Count];
        if (e.DType == SafeTensorsDType.F32)
        {
            // Chunks keep each byte span under 2 GB.
            const int chunk = 1 << 26;
            for (int start = 0; start < data.Length; start += chunk)
                stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan(start, Math.Min(chunk, data.Length - start))));
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < data.Length; i++)
                    data[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(data[i])));
            return data;
        }

        Func<ushort, float> widen = e.DType == SafeTensorsDType.F16 ? HalfFloats.FromHalfBits : HalfFloats.FromBFloat16Bits;
        scratch ??= new byte[1 << 16];
        for (int done = 0; done < data.Length;)
        {
            int n = Math.Min(scratch.Length / 2, data.Length - done);
            stream.ReadExactly(scratch, 0, 2 * n);
            for (int i = 0; i < n; i++) data[done + i] = widen(BinaryPrimitives.ReadUInt16LittleEndian(scratch.AsSpan(2 * i)));
            done += n;
        }
        return data;
    }
}
