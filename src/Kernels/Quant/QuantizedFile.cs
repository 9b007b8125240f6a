using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// The file <c>edgevit quantize --out</c> writes: a model's int8 layers, bound to the fp32 model's fingerprint.
/// Layout: 8 bytes "EVINT8\r\n", uint32 header length, UTF-8 JSON header (format, version, fingerprint, scheme,
/// layers with shapes, SHA-256 of the payload), then per layer in header order: Out*In int8 weights, Out float32
/// scales, Out float32 biases (little-endian). The payload hash makes any corruption a load error.
/// </summary>
public static class QuantizedFile
{
    public const string Format = "edgevit-int8-weights";
    /// <summary>2: weights in [-64, 64] (7 bits, for AVX2's vpmaddubsw). Version 1 files (weights in [-127, 127]) are refused.</summary>
    public const int Version = 2;
    public const string Scheme = "weights: symmetric per output channel in [-64, 64]; activations: symmetric int8 per token, dynamic";
    private static readonly byte[] Magic = "EVINT8\r\n"u8.ToArray();

    public static void Save(string path, QuantizedWeights q, VitWeights model)
    {
        if (!q.BelongsTo(model)) throw new ArgumentException("quantised weights belong to another model");
        var layers = q.Layers().ToList();
        using var payload = new MemoryStream();
        foreach (var (_, l) in layers)
        {
            payload.Write(MemoryMarshal.AsBytes(l.Weight.AsSpan()));
            WriteFloats(payload, l.Scale);
            WriteFloats(payload, l.Bias);
        }
        var header = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["precision"] = "int8",
            ["scheme"] = Scheme,
            ["model"] = new JsonObject { ["fingerprint"] = model.Fingerprint, ["description"] = model.Config.Describe(), ["depth"] = model.Config.Depth },
            ["layers"] = new JsonArray(layers.Select(x => (JsonNode)new JsonObject { ["name"] = x.Name, ["in"] = x.Layer.In, ["out"] = x.Layer.Out }).ToArray()),
            ["payload_sha256"] = Convert.ToHexStringLower(SHA256.HashData(payload.GetBuffer().AsSpan(0, (int)payload.Length))),
        };
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write))
            {
                f.Write(Magic);
                Span<byte> len = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(len, (uint)json.Length);
                f.Write(len);
                f.Write(json);
                payload.Position = 0;
                payload.CopyTo(f);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Reads and checks a file for this model: wrong format, version, model, shape or a damaged payload is a one-line <see cref="ModelFormatException"/>.</summary>
    public static QuantizedWeights Load(string path, VitWeights model)
    {
        string file = Path.GetFileName(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"quantised weights file not found: {path}", path);
        byte[] bytes = File.ReadAllBytes(path);
        try
        {
            return Parse(bytes, model, file);
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException or FormatException or InvalidOperationException
                                       or ArgumentException or IndexOutOfRangeException or OverflowException or NullReferenceException)
        {
            throw ModelErrors.Fail(file, $"corrupt int8 weights file ({ex.Message})");
        }
    }

    private static QuantizedWeights Parse(byte[] bytes, VitWeights model, string file)
    {
        if (bytes.Length < Magic.Length + 4 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw ModelErrors.Fail(file, "not an EdgeViT int8 weights file (write one with 'edgevit quantize --out')");
        int headerLength = checked((int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(Magic.Length)));
        int start = Magic.Length + 4;
        if (headerLength <= 0 || start + headerLength > bytes.Length) throw new InvalidDataException($"header length {headerLength} exceeds the file");
        var header = JsonNode.Parse(bytes.AsSpan(start, headerLength)) as JsonObject ?? throw new InvalidDataException("header is not a JSON object");
        if ((string?)header["format"] != Format) throw ModelErrors.Fail(file, $"not an EdgeViT int8 weights file (format '{(string?)header["format"]}')");
        int version = (int?)header["version"] ?? 0;
        if (version != Version)
            throw ModelErrors.Fail(file, $"int8 weights file version {version} is not supported (this build reads version {Version}" +
                (version == 1 ? ", whose weights are 7-bit" : "") + "); rerun 'edgevit quantize'");
        string fingerprint = (string?)header["model"]?["fingerprint"] ?? throw new InvalidDataException("no model fingerprint");
        if (!string.Equals(fingerprint, model.Fingerprint, StringComparison.OrdinalIgnoreCase))
            throw ModelErrors.Fail(file, $"quantised from model {fingerprint[..Math.Min(12, fingerprint.Length)]} ({(string?)header["model"]?["description"]}), " +
                $"not from {Path.GetFileName(model.Source)} ({model.Fingerprint[..12]}); rerun 'edgevit quantize'");

        var payload = bytes.AsSpan(start + headerLength);
        string hash = Convert.ToHexStringLower(SHA256.HashData(payload));
        if (hash != (string?)header["payload_sha256"]) throw ModelErrors.Fail(file, "corrupt int8 weights file (payload checksum mismatch: truncated or damaged)");

        var expected = model.Blocks.SelectMany((b, i) => new[] { ($"blocks.{i}.attn.qkv", b.Qkv), ($"blocks.{i}.attn.proj", b.Proj), ($"blocks.{i}.mlp.fc1", b.Fc1), ($"blocks.{i}.mlp.fc2", b.Fc2) })
            .Select(x => (Name: x.Item1, x.Item2.In, x.Item2.Out)).ToList();
        var layers = header["layers"] as JsonArray ?? throw new InvalidDataException("no layer list");
        if (layers.Count != expected.Count) throw new InvalidDataException($"{layers.Count} layers, the model has {expected.Count}");
        var read = new List<QuantizedLinear>();
        int offset = 0;
        for (int i = 0; i < layers.Count; i++)
        {
            string name = (string?)layers[i]?["name"] ?? "";
            int inDim = (int?)layers[i]?["in"] ?? -1, outDim = (int?)layers[i]?["out"] ?? -1;
            if (name != expected[i].Name || inDim != expected[i].In || outDim != expected[i].Out)
                throw new InvalidDataException($"layer {i} is {name} [{outDim},{inDim}], the model has {expected[i].Name} [{expected[i].Out},{expected[i].In}]");
            int wBytes = checked(inDim * outDim);
            if (offset + wBytes + 8L * outDim > payload.Length) throw new InvalidDataException($"payload ends inside {name}");
            var w = MemoryMarshal.Cast<byte, sbyte>(payload.Slice(offset, wBytes)).ToArray();
            offset += wBytes;
            var scale = ReadFloats(payload.Slice(offset, 4 * outDim)); offset += 4 * outDim;
            var bias = ReadFloats(payload.Slice(offset, 4 * outDim)); offset += 4 * outDim;
            var layer = new QuantizedLinear(inDim, outDim, w, scale, bias);
            layer.Validate(name);
            read.Add(layer);
        }
        if (offset != payload.Length) throw new InvalidDataException($"{payload.Length - offset} bytes after the last layer");
        var blocks = Enumerable.Range(0, read.Count / 4).Select(b => new QuantizedBlock(read[4 * b], read[4 * b + 1], read[4 * b + 2], read[4 * b + 3])).ToArray();
        return new QuantizedWeights(model.Fingerprint, blocks);
    }

    private static void WriteFloats(Stream s, float[] values)
    {
        Span<byte> b = stackalloc byte[4];
        foreach (var v in values) { BinaryPrimitives.WriteSingleLittleEndian(b, v); s.Write(b); }
    }

    private static float[] ReadFloats(ReadOnlySpan<byte> bytes)
    {
        var f = new float[bytes.Length / 4];
        for (int i = 0; i < f.Length; i++) f[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(4 * i));
        return f;
    }
}
