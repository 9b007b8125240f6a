using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using EdgeViT.Kernels.Model;
using static EdgeViT.Host.Service.OpenInferenceApi;

namespace EdgeViT.Host.Service;

/// <summary>
/// A parsed and checked v2 inference request: exactly one input, either an FP32 tensor of the model's input shape
/// or a BYTES [1] encoded image. Every problem is a <see cref="BadRequest"/> naming the field and what was expected.
/// </summary>
public sealed class V2InferRequest
{
    public string? Id { get; private init; }
    public required string InputName { get; init; }
    /// <summary>The CHW tensor (FP32 input), else null.</summary>
    public float[]? Tensor { get; private init; }
    /// <summary>The encoded image (BYTES input).</summary>
    public ReadOnlyMemory<byte> Image { get; private init; }
    /// <summary>Top-K class names with scores to return as the classification output (0 = none).</summary>
    public int Classification { get; private set; }
    public bool BinaryLogits { get; private set; }
    public bool BinaryClassification { get; private set; }

    public static V2InferRequest Parse(ReadOnlyMemory<byte> body, string? headerLength, int tensorLength, VitConfig config)
    {
        var json = body;
        var binary = ReadOnlyMemory<byte>.Empty;
        if (!string.IsNullOrEmpty(headerLength))
        {
            if (!int.TryParse(headerLength, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n <= 0 || n > body.Length)
                throw new BadRequest($"{HeaderLength} must be the JSON header's byte count, 1..{body.Length} (got '{headerLength}')");
            json = body[..n];
            binary = body[n..];
        }
        if (json.IsEmpty) throw new BadRequest("request body is empty: send an inference request JSON object");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException ex) { throw new BadRequest($"request is not valid JSON: {ex.Message.Split('\n')[0]}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new BadRequest($"request must be a JSON object (got {Kind(root)})");
            string? id = null;
            if (root.TryGetProperty("id", out var idElement))
                id = idElement.ValueKind switch
                {
                    JsonValueKind.String => idElement.GetString(),
                    JsonValueKind.Number => idElement.GetRawText(),
                    _ => throw new BadRequest($"id must be a string (got {Kind(idElement)})"),
                };
            int classification = 0;
            bool binaryOut = false;
            if (root.TryGetProperty("parameters", out var parameters)) ReadParameters(parameters, "parameters", config, ref classification, ref binaryOut);

            if (!root.TryGetProperty("inputs", out var inputs)) throw new BadRequest("inputs is required (one tensor: FP32 [1,3,S,S] or BYTES [1])");
            if (inputs.ValueKind != JsonValueKind.Array) throw new BadRequest($"inputs must be an array (got {Kind(inputs)})");
            if (inputs.GetArrayLength() != 1) throw new BadRequest($"inputs must hold exactly one tensor (got {inputs.GetArrayLength()})");
            var input = inputs[0];
            if (input.ValueKind != JsonValueKind.Object) throw new BadRequest($"inputs[0] must be an object (got {Kind(input)})");
            string name = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() is { Length: > 0 } s
                ? s : throw new BadRequest("inputs[0].name is required (a string)");
            string what = $"input '{name}'";
            string datatype = input.TryGetProperty("datatype", out var dt) && dt.ValueKind == JsonValueKind.String
                ? dt.GetString()! : throw new BadRequest($"{what}: datatype is required (FP32 or BYTES)");
            long[] shape = Shape(input, what);
            int? binarySize = null;
            if (input.TryGetProperty("parameters", out var ip))
            {
                if (ip.ValueKind != JsonValueKind.Object) throw new BadRequest($"{what}: parameters must be an object (got {Kind(ip)})");
                if (ip.TryGetProperty("binary_data_size", out var bs))
                    binarySize = bs.ValueKind == JsonValueKind.Number && bs.TryGetInt32(out int size) && size >= 0
                        ? size : throw new BadRequest($"{what}: binary_data_size must be a non-negative integer (got {bs.GetRawText()})");
            }
            bool hasData = input.TryGetProperty("data", out var data);
            // The only input with no data and no size takes all the binary data (as OpenVINO Model Server's examples send it).
            if (binarySize is null && !hasData && !binary.IsEmpty) binarySize = binary.Length;
            if (binarySize is not null && hasData) throw new BadRequest($"{what}: give either data or binary_data_size, not both");
            if (binarySize is null && !hasData) throw new BadRequest($"{what}: data is required (or binary_data_size with the binary tensor data extension)");
            if (binarySize is int bsz && bsz != binary.Length)
                throw new BadRequest(binary.Length == 0 && string.IsNullOrEmpty(headerLength)
                    ? $"{what}: binary_data_size is set but the request has no {HeaderLength} header"
                    : $"{what}: binary_data_size is {bsz} bytes but {binary.Length} bytes follow the JSON header");
            if (binarySize is null && !binary.IsEmpty) throw new BadRequest($"{binary.Length} bytes follow the JSON header but no input declares binary_data_size");

            var request = datatype switch
            {
                "FP32" => new V2InferRequest
                {
                    Id = id,
                    InputName = name,
                    Tensor = FloatTensor(what, shape, config, tensorLength, hasData ? data : null, binary),
                },
                "BYTES" => new V2InferRequest
                {
                    Id = id,
                    InputName = name,
                    Image = ImageBytes(what, shape, hasData ? data : null, binary),
                },
                _ => throw new BadRequest($"{what}: datatype must be FP32 (a normalised [1,{config.InChannels},{config.ImageSize},{config.ImageSize}] tensor) or BYTES (a [1] encoded image) (got '{datatype}')"),
            };
            request.Classification = classification;
            request.BinaryLogits = request.BinaryClassification = binaryOut;

            if (root.TryGetProperty("outputs", out var outputs))
            {
                if (outputs.ValueKind != JsonValueKind.Array) throw new BadRequest($"outputs must be an array (got {Kind(outputs)})");
                int i = 0;
                foreach (var o in outputs.EnumerateArray())
                {
                    string where = $"outputs[{i++}]";
                    string oname = o.ValueKind == JsonValueKind.Object && o.TryGetProperty("name", out var on) && on.ValueKind == JsonValueKind.String
                        ? on.GetString()! : throw new BadRequest($"{where}.name is required (a string)");
                    if (oname != LogitsOutput && oname != ClassificationOutput)
                        throw new BadRequest($"unknown output '{oname}' (this model has '{LogitsOutput}' and '{ClassificationOutput}')");
                    int k = 0;
                    bool bin = binaryOut;
                    if (o.TryGetProperty("parameters", out var op)) ReadParameters(op, $"output '{oname}' parameters", config, ref k, ref bin);
                    if (oname == ClassificationOutput && k == 0) k = 5;
                    if (k > 0) request.Classification = k;
                    if (oname == LogitsOutput) request.BinaryLogits = bin;
                    else request.BinaryClassification = bin;
                }
            }
            return request;
        }
    }

    private static void ReadParameters(JsonElement p, string where, VitConfig config, ref int classification, ref bool binaryOut)
    {
        if (p.ValueKind != JsonValueKind.Object) throw new BadRequest($"{where} must be an object (got {Kind(p)})");
        if (p.TryGetProperty("classification", out var c))
            classification = c.ValueKind == JsonValueKind.Number && c.TryGetInt32(out int k) && k >= 1 && k <= config.Classes
                ? k : throw new BadRequest($"{where}: classification must be an integer 1..{config.Classes} (got {c.GetRawText()})");
        foreach (var key in new[] { "binary_data_output", "binary_data" })
            if (p.TryGetProperty(key, out var b))
                binaryOut = b.ValueKind is JsonValueKind.True or JsonValueKind.False
                    ? b.GetBoolean() : throw new BadRequest($"{where}: {key} must be true or false (got {b.GetRawText()})");
    }

    private static long[] Shape(JsonElement input, string what)
    {
        if (!input.TryGetProperty("shape", out var s)) throw new BadRequest($"{what}: shape is required");
        if (s.ValueKind != JsonValueKind.Array) throw new BadRequest($"{what}: shape must be an array of dimensions (got {Kind(s)})");
        var shape = new long[s.GetArrayLength()];
        int i = 0;
        foreach (var d in s.EnumerateArray())
            shape[i++] = d.ValueKind == JsonValueKind.Number && d.TryGetInt64(out long v) && v >= 0
                ? v : throw new BadRequest($"{what}: shape[{i - 1}] must be a non-negative integer (got {d.GetRawText()})");
        return shape;
    }

    private static string ShapeText(ReadOnlySpan<long> shape) => "[" + string.Join(",", shape.ToArray()) + "]";

    private static float[] FloatTensor(string what, long[] shape, VitConfig c, int tensorLength, JsonElement? data, ReadOnlyMemory<byte> binary)
    {
        long[] expected = [1, c.InChannels, c.ImageSize, c.ImageSize];
        if (shape.Length == 4 && shape[0] != 1 && shape.AsSpan(1).SequenceEqual(expected.AsSpan(1)))
            throw new BadRequest($"{what}: batch size must be 1 (got shape {ShapeText(shape)})");
        if (!shape.AsSpan().SequenceEqual(expected))
            throw new BadRequest($"{what}: FP32 shape must be {ShapeText(expected)} (got {ShapeText(shape)})");
        var tensor = new float[tensorLength];
        if (data is null)
        {
            if (binary.Length != tensorLength * 4)
                throw new BadRequest($"{what}: shape {ShapeText(shape)} is {tensorLength * 4} bytes of FP32 but binary_data_size is {binary.Length}");
            var src = binary.Span;
            for (int i = 0; i < tensorLength; i++) tensor[i] = BinaryPrimitives.ReadSingleLittleEndian(src.Slice(i * 4, 4));
        }
        else
        {
            int count = 0;
            Flatten(data.Value, tensor, ref count, what);
            if (count != tensorLength) throw new BadRequest($"{what}: shape {ShapeText(shape)} needs {tensorLength} values but data has {count}");
        }
        for (int i = 0; i < tensor.Length; i++)
            if (!float.IsFinite(tensor[i])) throw new BadRequest($"{what}: element {i} is not a finite number");
        return tensor;
    }

    /// <summary>Row-major values of a flat or nested JSON array.</summary>
    private static void Flatten(JsonElement e, float[] into, ref int count, string what)
    {
        if (e.ValueKind != JsonValueKind.Array) throw new BadRequest($"{what}: data must be an array of numbers (got {Kind(e)})");
        foreach (var v in e.EnumerateArray())
        {
            if (v.ValueKind == JsonValueKind.Array) { Flatten(v, into, ref count, what); continue; }
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetSingle(out float f))
                throw new BadRequest($"{what}: data element {count} must be a number (got {Kind(v)} {Short(v)})");
            if (count < into.Length) into[count] = f;
            count++;
        }
    }

    private static ReadOnlyMemory<byte> ImageBytes(string what, long[] shape, JsonElement? data, ReadOnlyMemory<byte> binary)
    {
        if (!(shape.Length == 1 && shape[0] == 1)) throw new BadRequest($"{what}: BYTES shape must be [1], one encoded image (got {ShapeText(shape)})");
        if (data is null)
        {
            // Binary BYTES elements carry a 4-byte little-endian length first (the binary tensor data extension).
            if (binary.Length < 4) throw new BadRequest($"{what}: binary BYTES data must start with the element's 4-byte length (got {binary.Length} bytes)");
            int n = BinaryPrimitives.ReadInt32LittleEndian(binary.Span);
            if (n <= 0 || n != binary.Length - 4) throw new BadRequest($"{what}: BYTES element length {n} does not match the {binary.Length - 4} bytes after it");
            return binary[4..];
        }
        var d = data.Value;
        while (d.ValueKind == JsonValueKind.Array && d.GetArrayLength() == 1 && d[0].ValueKind == JsonValueKind.Array) d = d[0];
        if (d.ValueKind != JsonValueKind.Array || d.GetArrayLength() != 1)
            throw new BadRequest($"{what}: BYTES data must be an array of one base64 string (got {(d.ValueKind == JsonValueKind.Array ? $"{d.GetArrayLength()} elements" : Kind(d))})");
        var element = d[0];
        if (element.ValueKind != JsonValueKind.String) throw new BadRequest($"{what}: BYTES element must be a base64 string (got {Kind(element)})");
        if (!element.TryGetBytesFromBase64(out var bytes) || bytes.Length == 0) throw new BadRequest($"{what}: BYTES element is not valid base64");
        return bytes;
    }

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Short(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length > 24 ? raw[..24] + "..." : raw;
    }
}
