using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using EdgeViT.Host.Evaluation;
using Microsoft.AspNetCore.Http;
using static EdgeViT.Host.Service.OpenInferenceApi;

namespace EdgeViT.Host.Service;

/// <summary>Writes a v2 inference response: logits always, classification when asked; JSON or binary tensors.</summary>
public static class V2InferResponse
{
    public static async Task Write(HttpContext ctx, string modelName, V2InferRequest request, float[] logits, SynsetTable? synsets)
    {
        string[]? classes = null;
        if (request.Classification > 0)
        {
            var probs = new float[logits.Length];
            Ranking.Softmax(logits, probs);
            var top = new int[request.Classification];
            int n = Ranking.TopK(logits, top);
            classes = new string[n];
            for (int i = 0; i < n; i++)
            {
                int c = top[i];
                string label = synsets is not null && c < synsets.Count ? synsets[c].Id + " " + synsets[c].Words : c.ToString(CultureInfo.InvariantCulture);
                classes[i] = $"{probs[c].ToString("0.######", CultureInfo.InvariantCulture)}:{c}:{label}";
            }
        }

        var binary = new ArrayBufferWriter<byte>();
        var json = new ArrayBufferWriter<byte>(logits.Length * 12 + 512);
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("model_name", modelName);
            w.WriteString("model_version", OpenInferenceApi.Version);
            if (request.Id is { } id) w.WriteString("id", id);
            w.WriteStartArray("outputs");
            w.WriteStartObject();
            w.WriteString("name", LogitsOutput);
            w.WriteString("datatype", "FP32");
            w.WriteStartArray("shape");
            w.WriteNumberValue(1);
            w.WriteNumberValue(logits.Length);
            w.WriteEndArray();
            if (request.BinaryLogits)
            {
                var span = binary.GetSpan(logits.Length * 4);
                for (int i = 0; i < logits.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(span.Slice(i * 4, 4), logits[i]);
                binary.Advance(logits.Length * 4);
                BinarySize(w, logits.Length * 4);
            }
            else
            {
                w.WriteStartArray("data");
                foreach (float v in logits) w.WriteNumberValue(v);
                w.WriteEndArray();
            }
            w.WriteEndObject();
            if (classes is not null)
            {
                w.WriteStartObject();
                w.WriteString("name", ClassificationOutput);
                w.WriteString("datatype", "BYTES");
                w.WriteStartArray("shape");
                w.WriteNumberValue(1);
                w.WriteNumberValue(classes.Length);
                w.WriteEndArray();
                if (request.BinaryClassification)
                {
                    int before = binary.WrittenCount;
                    foreach (var s in classes)
                    {
                        byte[] bytes = Encoding.UTF8.GetBytes(s);
                        BinaryPrimitives.WriteInt32LittleEndian(binary.GetSpan(4), bytes.Length);
                        binary.Advance(4);
                        binary.Write(bytes);
                    }
                    BinarySize(w, binary.WrittenCount - before);
                }
                else
                {
                    w.WriteStartArray("data");
                    foreach (var s in classes) w.WriteStringValue(s);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        ctx.Response.StatusCode = 200;
        if (binary.WrittenCount == 0)
        {
            ctx.Response.ContentType = "application/json";
            await ctx.Response.Body.WriteAsync(json.WrittenMemory, ctx.RequestAborted);
            return;
        }
        ctx.Response.ContentType = "application/octet-stream";
        ctx.Response.Headers[HeaderLength] = json.WrittenCount.ToString(CultureInfo.InvariantCulture);
        ctx.Response.ContentLength = json.WrittenCount + binary.WrittenCount;
        await ctx.Response.Body.WriteAsync(json.WrittenMemory, ctx.RequestAborted);
        await ctx.Response.Body.WriteAsync(binary.WrittenMemory, ctx.RequestAborted);
    }

    private static void BinarySize(Utf8JsonWriter w, int bytes)
    {
        w.WriteStartObject("parameters");
        w.WriteNumber("binary_data_size", bytes);
        w.WriteEndObject();
    }
}
