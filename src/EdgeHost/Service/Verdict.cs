using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using EdgeViT.Host.Evaluation;

namespace EdgeViT.Host.Service;

/// <summary>
/// The result of classifying one frame, filled in place by <see cref="Classifier"/>: one instance per consumer
/// (the frame loop keeps one for its lifetime), so producing a verdict allocates nothing.
/// </summary>
public sealed class Verdict(int topK, int depth)
{
    public DateTimeOffset Time;
    /// <summary>The source's name ("folder:/data/images", "http").</summary>
    public string Source = "";
    /// <summary>Where the frame came from (file name, device, "request body").</summary>
    public string Origin = "";
    public long Sequence;
    public int Width, Height;
    public int Count;
    public readonly int[] Classes = new int[topK];
    public readonly float[] Scores = new float[topK];
    public double GFlops;
    public readonly int[] TokensPerBlock = new int[depth];
    public double CaptureMs = double.NaN, DecodeMs, PreprocessMs, InferMs, TotalMs;
    /// <summary>The threshold set the frame ran with.</summary>
    public ActiveSet? Set;

    /// <summary>Decode + preprocess + infer: what the budget controller's latency mode holds.</summary>
    public double ProcessingMs => DecodeMs + PreprocessMs + InferMs;

    /// <summary>A private copy (a request's answer outlives the worker's reused verdict).</summary>
    public Verdict Clone()
    {
        var c = new Verdict(Classes.Length, TokensPerBlock.Length)
        {
            Time = Time, Source = Source, Origin = Origin, Sequence = Sequence, Width = Width, Height = Height, Count = Count,
            GFlops = GFlops, CaptureMs = CaptureMs, DecodeMs = DecodeMs, PreprocessMs = PreprocessMs, InferMs = InferMs,
            TotalMs = TotalMs, Set = Set,
        };
        Classes.AsSpan().CopyTo(c.Classes);
        Scores.AsSpan().CopyTo(c.Scores);
        TokensPerBlock.AsSpan().CopyTo(c.TokensPerBlock);
        return c;
    }
}

/// <summary>
/// Writes a verdict as one compact JSON object with a reused <see cref="Utf8JsonWriter"/> into a reused buffer:
/// property names are pre-encoded, labels are written from the synset table's strings, so nothing is allocated.
/// Not thread-safe: one per writing thread.
/// <code>
/// {"time":"...","source":"folder:/imgs","origin":"a.jpg","sequence":7,"width":500,"height":375,
///  "top":[{"class":0,"synset":"n01440764","label":"tench, Tinca tinca","score":0.91},...],
///  "gflops":1.258,"tokens_kept":[197,...],
///  "latency_ms":{"capture":1.2,"decode":4.1,"preprocess":2.0,"infer":48.3,"total":56.0},
///  "threshold_set":{"budget":1,"gflops":1.258,"dense":true}}
/// </code>
/// </summary>
public sealed class VerdictWriter
{
    private static readonly JsonEncodedText PTime = JsonEncodedText.Encode("time"), PSource = JsonEncodedText.Encode("source"),
        POrigin = JsonEncodedText.Encode("origin"), PSequence = JsonEncodedText.Encode("sequence"), PWidth = JsonEncodedText.Encode("width"),
        PHeight = JsonEncodedText.Encode("height"), PTop = JsonEncodedText.Encode("top"), PClass = JsonEncodedText.Encode("class"),
        PSynset = JsonEncodedText.Encode("synset"), PLabel = JsonEncodedText.Encode("label"), PScore = JsonEncodedText.Encode("score"),
        PGFlops = JsonEncodedText.Encode("gflops"), PTokens = JsonEncodedText.Encode("tokens_kept"), PLatency = JsonEncodedText.Encode("latency_ms"),
        PCapture = JsonEncodedText.Encode("capture"), PDecode = JsonEncodedText.Encode("decode"), PPreprocess = JsonEncodedText.Encode("preprocess"),
        PInfer = JsonEncodedText.Encode("infer"), PTotal = JsonEncodedText.Encode("total"), PSet = JsonEncodedText.Encode("threshold_set"),
        PBudget = JsonEncodedText.Encode("budget"), PDense = JsonEncodedText.Encode("dense");

    private readonly ArrayBufferWriter<byte> _buffer = new(2048);
    private readonly Utf8JsonWriter _writer;
    private readonly SynsetTable? _synsets;

    public VerdictWriter(SynsetTable? synsets)
    {
        _synsets = synsets;
        // Labels are UTF-8 text, not HTML: keep them readable (no \u escapes for ' or non-ASCII letters).
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true });
    }

    /// <summary>Serialises <paramref name="v"/>; the result is valid until the next call.</summary>
    public ReadOnlyMemory<byte> Write(Verdict v)
    {
        _buffer.ResetWrittenCount();
        _writer.Reset(_buffer);
        var w = _writer;
        w.WriteStartObject();
        w.WriteString(PTime, v.Time);
        w.WriteString(PSource, v.Source);
        w.WriteString(POrigin, v.Origin);
        w.WriteNumber(PSequence, v.Sequence);
        w.WriteNumber(PWidth, v.Width);
        w.WriteNumber(PHeight, v.Height);
        w.WriteStartArray(PTop);
        for (int i = 0; i < v.Count; i++)
        {
            int c = v.Classes[i];
            w.WriteStartObject();
            w.WriteNumber(PClass, c);
            if (_synsets is not null && c < _synsets.Count)
            {
                w.WriteString(PSynset, _synsets[c].Id);
                w.WriteString(PLabel, _synsets[c].Words);
            }
            w.WriteNumber(PScore, Math.Round(v.Scores[i], 6));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNumber(PGFlops, Math.Round(v.GFlops, 6));
        w.WriteStartArray(PTokens);
        foreach (int t in v.TokensPerBlock) w.WriteNumberValue(t);
        w.WriteEndArray();
        w.WriteStartObject(PLatency);
        if (double.IsFinite(v.CaptureMs)) w.WriteNumber(PCapture, Math.Round(v.CaptureMs, 3));
        w.WriteNumber(PDecode, Math.Round(v.DecodeMs, 3));
        w.WriteNumber(PPreprocess, Math.Round(v.PreprocessMs, 3));
        w.WriteNumber(PInfer, Math.Round(v.InferMs, 3));
        w.WriteNumber(PTotal, Math.Round(v.TotalMs, 3));
        w.WriteEndObject();
        w.WriteStartObject(PSet);
        if (v.Set is { } set)
        {
            w.WriteNumber(PBudget, Math.Round(set.Budget, 6));
            w.WriteNumber(PGFlops, Math.Round(set.GFlops, 6));
            w.WriteBoolean(PDense, set.IsDense);
        }
        w.WriteEndObject();
        w.WriteEndObject();
        w.Flush();
        return _buffer.WrittenMemory;
    }
}
