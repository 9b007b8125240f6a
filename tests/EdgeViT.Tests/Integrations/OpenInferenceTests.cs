using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using EdgeViT.Host.Evaluation;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Imaging;
using EdgeViT.Tests.Service;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>The Open Inference Protocol (KServe v2) REST endpoints on the real service with DeiT-Tiny.</summary>
[Collection(ServiceHostCollection.Name)]
public class OpenInferenceTests
{
    private const string Name = "deit_tiny_patch16_224";

    private static Dictionary<string, string?> HttpOnly()
    {
        var c = TestService.BaseConfig();
        c["Source:Kind"] = "none";
        c["Trigger:Mode"] = "http";
        return c;
    }

    /// <summary>The image preprocessed as the service does (decode, resize, crop, normalise): CHW floats.</summary>
    private static float[] Tensor(string image)
    {
        var config = VitConfig.DeiT("tiny");
        var pre = new ImagePreprocessor(Inputs.PreprocessFor(config));
        var rgb = ImageDecoder.Decode(image);
        var chw = new float[pre.OutputLength];
        pre.Process(rgb.Pixels, rgb.Width, rgb.Height, rgb.Stride, chw);
        return chw;
    }

    private static StringContent JsonBody(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<(HttpStatusCode, JsonElement)> Post(HttpClient http, string path, HttpContent content)
    {
        using var r = await http.PostAsync(path, content);
        string text = await r.Content.ReadAsStringAsync();
        return (r.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static float[] Logits(JsonElement response)
    {
        var logits = response.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "logits");
        Assert.Equal("FP32", logits.GetProperty("datatype").GetString());
        Assert.Equal([1, 1000], logits.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        return logits.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
    }

    private static int ArgMax(float[] v) => Array.IndexOf(v, v.Max());

    [Fact(Timeout = 240_000)]
    public async Task ProtocolExamplesGiveTheTop1OfV1Classify()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var http = service.Http;

        // Health and metadata.
        Assert.True((await service.GetJsonAsync("/v2/health/live")).GetProperty("live").GetBoolean());
        Assert.True((await service.GetJsonAsync("/v2/health/ready")).GetProperty("ready").GetBoolean());
        var server = await service.GetJsonAsync("/v2");
        Assert.Contains("binary_tensor_data", server.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
        var meta = await service.GetJsonAsync($"/v2/models/{Name}");
        Assert.Equal(Name, meta.GetProperty("name").GetString());
        Assert.Equal([1, 3, 224, 224], meta.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.True((await service.GetJsonAsync($"/v2/models/{Name}/versions/1/ready")).GetProperty("ready").GetBoolean());

        foreach (var image in SharedAssets.Images().Take(3))
        {
            byte[] jpeg = File.ReadAllBytes(image);
            using var classify = await http.PostAsync("/v1/classify", new ByteArrayContent(jpeg));
            int expected = JsonDocument.Parse(await classify.Content.ReadAsStringAsync()).RootElement.GetProperty("top")[0].GetProperty("class").GetInt32();

            // FP32, written as the protocol's example: id, one input with name/shape/datatype/data, outputs by name.
            float[] chw = Tensor(image);
            string fp32 = JsonSerializer.Serialize(new
            {
                id = "42",
                inputs = new[] { new { name = "input", shape = new[] { 1, 3, 224, 224 }, datatype = "FP32", data = chw } },
                outputs = new[] { new { name = "logits" } },
            });
            var (status, json) = await Post(http, $"/v2/models/{Name}/infer", JsonBody(fp32));
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal("42", json.GetProperty("id").GetString());
            Assert.Equal(Name, json.GetProperty("model_name").GetString());
            float[] fromTensor = Logits(json);
            Assert.Equal(expected, ArgMax(fromTensor));

            // BYTES, base64 in JSON, with class names asked for through parameters.
            string bytes = JsonSerializer.Serialize(new
            {
                inputs = new[] { new { name = "image", shape = new[] { 1 }, datatype = "BYTES", data = new[] { Convert.ToBase64String(jpeg) } } },
                parameters = new { classification = 3 },
            });
            (status, json) = await Post(http, $"/v2/models/{Name}/versions/1/infer", JsonBody(bytes));
            Assert.Equal(HttpStatusCode.OK, status);
            float[] fromImage = Logits(json);
            Assert.Equal(expected, ArgMax(fromImage));
            // The same preprocessing on both paths: the same logits.
            Assert.True(fromTensor.Zip(fromImage).Max(p => Math.Abs(p.First - p.Second)) < 1e-4f);
            var cls = json.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "classification");
            Assert.Equal("BYTES", cls.GetProperty("datatype").GetString());
            string first = cls.GetProperty("data")[0].GetString()!;
            Assert.Equal(expected, int.Parse(first.Split(':')[1]));
            Assert.Matches(@"^0\.\d+:\d+:n\d{8} ", first);

            // BYTES through the binary tensor data extension (length-prefixed element after the JSON header),
            // logits asked back binary.
            string header = "{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":" + (jpeg.Length + 4) + "}}],"
                            + "\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}}]}";
            byte[] head = Encoding.UTF8.GetBytes(header);
            var body = new byte[head.Length + 4 + jpeg.Length];
            head.CopyTo(body, 0);
            BinaryPrimitives.WriteInt32LittleEndian(body.AsSpan(head.Length), jpeg.Length);
            jpeg.CopyTo(body, head.Length + 4);
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.Add("Inference-Header-Content-Length", head.Length.ToString());
            using var binary = await http.PostAsync($"/v2/models/{Name}/infer", content);
            Assert.Equal(HttpStatusCode.OK, binary.StatusCode);
            int jsonLength = int.Parse(binary.Headers.GetValues("Inference-Header-Content-Length").Single());
            byte[] all = await binary.Content.ReadAsByteArrayAsync();
            var responseHeader = JsonDocument.Parse(all.AsMemory(0, jsonLength)).RootElement;
            Assert.Equal(4000, responseHeader.GetProperty("outputs")[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
            var logits = new float[1000];
            for (int i = 0; i < 1000; i++) logits[i] = BinaryPrimitives.ReadSingleLittleEndian(all.AsSpan(jsonLength + 4 * i));
            Assert.Equal(expected, ArgMax(logits));
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task MalformedRequestsAre400NamingTheProblem()
    {
        await using var service = await TestService.StartAsync(HttpOnly());
        var http = service.Http;
        string url = $"/v2/models/{Name}/infer";
        string Fp32(string shape, string data, string datatype = "FP32") =>
            $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":{shape},\"datatype\":\"{datatype}\",\"data\":{data}}}]}}";
        string zeros = "[" + string.Join(",", Enumerable.Repeat("0", 3 * 224 * 224)) + "]";

        async Task Bad(string body, string expected, HttpStatusCode code = HttpStatusCode.BadRequest, string? path = null)
        {
            var (status, json) = await Post(http, path ?? url, JsonBody(body));
            Assert.Equal(code, status);
            Assert.Contains(expected, json.GetProperty("error").GetString());
        }

        await Bad(Fp32("[1,3,225,224]", zeros), "input 'input': FP32 shape must be [1,3,224,224] (got [1,3,225,224])");
        await Bad(Fp32("[2,3,224,224]", zeros), "batch size must be 1");
        await Bad(Fp32("[1,3,224,224]", "[1,2,3]"), "input 'input': shape [1,3,224,224] needs 150528 values but data has 3");
        await Bad(Fp32("[1,3,224,224]", "[\"a\"]"), "input 'input': data element 0 must be a number (got string");
        await Bad(Fp32("[1,3,224,224]", zeros, "INT8"), "datatype must be FP32");
        await Bad(Fp32("[1]", "[\"not base64!\"]", "BYTES"), "input 'input': BYTES element is not valid base64");
        await Bad(Fp32("[2]", "[\"AAAA\",\"AAAA\"]", "BYTES"), "BYTES shape must be [1]");
        await Bad(Fp32("[1]", "[\"" + Convert.ToBase64String(Encoding.UTF8.GetBytes("hello, not an image")) + "\"]", "BYTES"), "input 'input': ");
        await Bad("{\"inputs\":[]}", "inputs must hold exactly one tensor (got 0)");
        await Bad("{\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"data\":[]}]}", "input 'input': shape is required");
        await Bad("{\"id\":", "request is not valid JSON");
        await Bad("{\"inputs\":[{\"name\":\"image\",\"shape\":[1],\"datatype\":\"BYTES\",\"data\":[\"AAAA\"]}],\"outputs\":[{\"name\":\"probs\"}]}", "unknown output 'probs'");
        await Bad(Fp32("[1,3,224,224]", zeros), "unknown model 'resnet50'", HttpStatusCode.NotFound, "/v2/models/resnet50/infer");
        await Bad(Fp32("[1,3,224,224]", zeros), "unknown version '7'", HttpStatusCode.NotFound, $"/v2/models/{Name}/versions/7/infer");
        using var missing = await http.GetAsync("/v2/models/resnet50");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        // Still serving after all that.
        Assert.True((await service.GetJsonAsync("/v2/health/ready")).GetProperty("ready").GetBoolean());
    }

    [Fact(Timeout = 120_000)]
    public async Task ModelNameComesFromModelName()
    {
        var c = HttpOnly();
        c["Model:Name"] = "deit-tiny";
        await using var service = await TestService.StartAsync(c);
        Assert.Equal("deit-tiny", (await service.GetJsonAsync("/v2/models/deit-tiny")).GetProperty("name").GetString());
        using var r = await service.Http.GetAsync($"/v2/models/{Name}/ready");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
    }
}
