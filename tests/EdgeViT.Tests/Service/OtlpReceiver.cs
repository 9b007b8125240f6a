using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EdgeViT.Tests.Service;

/// <summary>One data point of a received metric: attributes, value (sum/gauge) or count/sum (histogram).</summary>
public sealed record OtlpPoint(IReadOnlyDictionary<string, string> Attributes, double Value, ulong Count, double Sum);

/// <summary>A metric of one export request.</summary>
public sealed record OtlpMetric(string Scope, string Name, string Unit, string Kind, IReadOnlyList<OtlpPoint> Points);

public sealed record OtlpSpan(string Scope, string TraceId, string SpanId, string ParentSpanId, string Name, IReadOnlyDictionary<string, string> Attributes);

/// <summary>
/// A real OTLP/HTTP receiver (protobuf) on 127.0.0.1 at a free port: accepts POST /v1/metrics, /v1/traces and
/// /v1/logs, decodes ExportMetricsServiceRequest and ExportTraceServiceRequest with a hand-written wire-format
/// reader (only the fields the tests need), and answers 200 with an empty export response.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly object _lock = new();
    private readonly List<List<OtlpMetric>> _metricBatches = [];
    private readonly List<OtlpSpan> _spans = [];
    private readonly List<Dictionary<string, string>> _resources = [];
    private int _logRequests;
    private readonly List<string> _errors = [];

    public Uri Endpoint { get; }

    private OtlpReceiver(int port)
    {
        Endpoint = new Uri($"http://127.0.0.1:{port}");
        _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public static OtlpReceiver Start()
    {
        for (int attempt = 0; ; attempt++)
        {
            var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            try { return new OtlpReceiver(port); }
            catch (HttpListenerException) when (attempt < 5) { /* taken in between: try another */ }
        }
    }

    public IReadOnlyList<List<OtlpMetric>> MetricBatches { get { lock (_lock) return _metricBatches.ToList(); } }
    public IReadOnlyList<OtlpSpan> Spans { get { lock (_lock) return _spans.ToList(); } }
    public IReadOnlyList<Dictionary<string, string>> Resources { get { lock (_lock) return _resources.ToList(); } }
    public int LogRequests { get { lock (_lock) return _logRequests; } }
    public IReadOnlyList<string> Errors { get { lock (_lock) return _errors.ToList(); } }

    /// <summary>The metric as of the last export that carried it (exports are cumulative).</summary>
    public OtlpMetric? Latest(string name)
    {
        var batches = MetricBatches;
        for (int i = batches.Count - 1; i >= 0; i--)
            if (batches[i].FirstOrDefault(m => m.Name == name) is { } m) return m;
        return null;
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) { return; } // stopped
            try { Handle(ctx); }
            catch (Exception ex)
            {
                lock (_lock) _errors.Add($"{ctx.Request.Url?.AbsolutePath}: {ex.Message}");
                ctx.Response.StatusCode = 400;
            }
            finally { ctx.Response.Close(); }
        }
    }

    private void Handle(HttpListenerContext ctx)
    {
        var request = ctx.Request;
        using var body = new MemoryStream();
        Stream input = request.InputStream;
        if (string.Equals(request.Headers["Content-Encoding"], "gzip", StringComparison.OrdinalIgnoreCase)) input = new GZipStream(input, CompressionMode.Decompress);
        input.CopyTo(body);
        byte[] bytes = body.ToArray();
        string path = request.Url!.AbsolutePath;
        if (request.HttpMethod != "POST") { ctx.Response.StatusCode = 405; return; }
        if (!(request.ContentType ?? "").StartsWith("application/x-protobuf", StringComparison.Ordinal))
            throw new InvalidDataException($"content type {request.ContentType}, expected application/x-protobuf");
        switch (path)
        {
            case "/v1/metrics":
                var (metrics, res) = ParseMetrics(bytes);
                lock (_lock) { _metricBatches.Add(metrics); _resources.AddRange(res); }
                break;
            case "/v1/traces":
                var (spans, res2) = ParseTraces(bytes);
                lock (_lock) { _spans.AddRange(spans); _resources.AddRange(res2); }
                break;
            case "/v1/logs":
                lock (_lock) _logRequests++;
                break;
            default:
                ctx.Response.StatusCode = 404;
                return;
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentType = "application/x-protobuf";
        ctx.Response.ContentLength64 = 0; // an empty Export*ServiceResponse
    }

    // ---- OTLP protobuf (opentelemetry/proto/collector/{metrics,trace}/v1), only the fields used here

    public static (List<OtlpMetric>, List<Dictionary<string, string>>) ParseMetrics(byte[] data)
    {
        var metrics = new List<OtlpMetric>();
        var resources = new List<Dictionary<string, string>>();
        foreach (var rm in Fields(data).Where(f => f.Number == 1)) // ExportMetricsServiceRequest.resource_metrics
        {
            foreach (var f in Fields(rm.Bytes))
            {
                if (f.Number == 1) resources.Add(Attributes(Fields(f.Bytes).Where(a => a.Number == 1))); // Resource.attributes
                if (f.Number != 2) continue; // ResourceMetrics.scope_metrics
                string scope = "";
                foreach (var sm in Fields(f.Bytes))
                {
                    if (sm.Number == 1) scope = Fields(sm.Bytes).Where(x => x.Number == 1).Select(x => Str(x.Bytes)).FirstOrDefault() ?? "";
                    if (sm.Number == 2) metrics.Add(Metric(scope, sm.Bytes));
                }
            }
        }
        return (metrics, resources);
    }

    private static OtlpMetric Metric(string scope, byte[] data)
    {
        string name = "", unit = "", kind = "";
        var points = new List<OtlpPoint>();
        foreach (var f in Fields(data))
        {
            switch (f.Number)
            {
                case 1: name = Str(f.Bytes); break;
                case 3: unit = Str(f.Bytes); break;
                case 5 or 7: // gauge, sum: data_points = NumberDataPoint
                    kind = f.Number == 5 ? "gauge" : "sum";
                    foreach (var dp in Fields(f.Bytes).Where(x => x.Number == 1)) points.Add(NumberPoint(dp.Bytes));
                    break;
                case 9: // histogram: data_points = HistogramDataPoint
                    kind = "histogram";
                    foreach (var dp in Fields(f.Bytes).Where(x => x.Number == 1)) points.Add(HistogramPoint(dp.Bytes));
                    break;
                case 10: kind = "exponential_histogram"; break;
            }
        }
        return new OtlpMetric(scope, name, unit, kind, points);
    }

    private static OtlpPoint NumberPoint(byte[] data)
    {
        double value = 0;
        var attrs = new List<Field>();
        foreach (var f in Fields(data))
        {
            if (f.Number == 4) value = BitConverter.Int64BitsToDouble((long)f.Value); // as_double
            if (f.Number == 6) value = (long)f.Value; // as_int (sfixed64)
            if (f.Number == 7) attrs.Add(f);
        }
        return new OtlpPoint(Attributes(attrs), value, 0, 0);
    }

    private static OtlpPoint HistogramPoint(byte[] data)
    {
        ulong count = 0;
        double sum = 0;
        var attrs = new List<Field>();
        foreach (var f in Fields(data))
        {
            if (f.Number == 4) count = f.Value; // count (fixed64)
            if (f.Number == 5) sum = BitConverter.Int64BitsToDouble((long)f.Value); // sum (double)
            if (f.Number == 9) attrs.Add(f);
        }
        return new OtlpPoint(Attributes(attrs), sum, count, sum);
    }

    public static (List<OtlpSpan>, List<Dictionary<string, string>>) ParseTraces(byte[] data)
    {
        var spans = new List<OtlpSpan>();
        var resources = new List<Dictionary<string, string>>();
        foreach (var rs in Fields(data).Where(f => f.Number == 1)) // resource_spans
        {
            foreach (var f in Fields(rs.Bytes))
            {
                if (f.Number == 1) resources.Add(Attributes(Fields(f.Bytes).Where(a => a.Number == 1)));
                if (f.Number != 2) continue; // scope_spans
                string scope = "";
                foreach (var ss in Fields(f.Bytes))
                {
                    if (ss.Number == 1) scope = Fields(ss.Bytes).Where(x => x.Number == 1).Select(x => Str(x.Bytes)).FirstOrDefault() ?? "";
                    if (ss.Number != 2) continue;
                    string trace = "", span = "", parent = "", name = "";
                    var attrs = new List<Field>();
                    foreach (var sf in Fields(ss.Bytes))
                    {
                        switch (sf.Number)
                        {
                            case 1: trace = Convert.ToHexString(sf.Bytes); break;
                            case 2: span = Convert.ToHexString(sf.Bytes); break;
                            case 4: parent = Convert.ToHexString(sf.Bytes); break;
                            case 5: name = Str(sf.Bytes); break;
                            case 9: attrs.Add(sf); break;
                        }
                    }
                    spans.Add(new OtlpSpan(scope, trace, span, parent, name, Attributes(attrs)));
                }
            }
        }
        return (spans, resources);
    }

    /// <summary>KeyValue list -> key: value as text (string, bool, int, double).</summary>
    private static Dictionary<string, string> Attributes(IEnumerable<Field> keyValues)
    {
        var result = new Dictionary<string, string>();
        foreach (var kv in keyValues)
        {
            string key = "", value = "";
            foreach (var f in Fields(kv.Bytes))
            {
                if (f.Number == 1) key = Str(f.Bytes);
                if (f.Number != 2) continue;
                foreach (var v in Fields(f.Bytes)) // AnyValue
                    value = v.Number switch
                    {
                        1 => Str(v.Bytes),
                        2 => (v.Value != 0).ToString(),
                        3 => ((long)v.Value).ToString(System.Globalization.CultureInfo.InvariantCulture),
                        4 => BitConverter.Int64BitsToDouble((long)v.Value).ToString(System.Globalization.CultureInfo.InvariantCulture),
                        _ => value,
                    };
            }
            result[key] = value;
        }
        return result;
    }

    private static string Str(byte[] b) => Encoding.UTF8.GetString(b);

    /// <summary>A decoded field: varint/fixed value in <see cref="Value"/>, length-delimited payload in <see cref="Bytes"/>.</summary>
    public readonly record struct Field(int Number, int WireType, ulong Value, byte[] Bytes);

    /// <summary>The protobuf wire format: (tag varint, value) pairs; throws on malformed input.</summary>
    public static List<Field> Fields(byte[] data)
    {
        var fields = new List<Field>();
        int pos = 0;
        while (pos < data.Length)
        {
            ulong tag = Varint(data, ref pos);
            int number = (int)(tag >> 3), wire = (int)(tag & 7);
            if (number == 0) throw new InvalidDataException("field number 0");
            switch (wire)
            {
                case 0: fields.Add(new Field(number, wire, Varint(data, ref pos), [])); break;
                case 1:
                    Need(data, pos, 8);
                    fields.Add(new Field(number, wire, BitConverter.ToUInt64(data, pos), []));
                    pos += 8;
                    break;
                case 2:
                    int length = checked((int)Varint(data, ref pos));
                    Need(data, pos, length);
                    fields.Add(new Field(number, wire, 0, data[pos..(pos + length)]));
                    pos += length;
                    break;
                case 5:
                    Need(data, pos, 4);
                    fields.Add(new Field(number, wire, BitConverter.ToUInt32(data, pos), []));
                    pos += 4;
                    break;
                default: throw new InvalidDataException($"unsupported wire type {wire} (field {number})");
            }
        }
        return fields;
    }

    private static void Need(byte[] data, int pos, int n)
    {
        if (n < 0 || pos + n > data.Length) throw new InvalidDataException("truncated protobuf");
    }

    private static ulong Varint(byte[] data, ref int pos)
    {
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (pos >= data.Length) throw new InvalidDataException("truncated varint");
            byte b = data[pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw new InvalidDataException("varint too long");
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        _listener.Close();
        try { await _loop; } catch (Exception) { /* stopping */ }
    }
}
