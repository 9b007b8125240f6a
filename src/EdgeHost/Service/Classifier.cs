using System.Diagnostics;
using EdgeViT.Capture;
using EdgeViT.Host.Commands;
using EdgeViT.Host.Evaluation;
using EdgeViT.Imaging;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Imaging;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;
using Microsoft.Extensions.Logging;

namespace EdgeViT.Host.Service;

/// <summary>What the service loaded at start-up: weights, class names, threshold sets.</summary>
public sealed class LoadedModel
{
    public required VitWeights Weights { get; init; }
    public required SynsetTable? Synsets { get; init; }
    public required ThresholdCatalog Catalog { get; init; }
    public required string ModelPath { get; init; }
    /// <summary>"fp32" or "int8".</summary>
    public string Precision { get; init; } = "fp32";
    /// <summary>The int8 weights when <see cref="Precision"/> is int8.</summary>
    public Kernels.Quant.QuantizedWeights? Quantized { get; init; }
    public VitConfig Config => Weights.Config;

    /// <summary>Loads and cross-checks model, synsets and thresholds; errors are one line naming the file.</summary>
    public static LoadedModel Load(EdgeVitOptions o)
    {
        string model = o.Model ?? throw new ServiceConfigException("Model is required (path of the .safetensors or .onnx weights)");
        if (o.Thresholds is { Length: > 0 } t) Inputs.RequireFile(t, "thresholds file");
        var precision = new PrecisionOptions.Choice(o.Precision == Kernels.Engine.Precision.Int8 ? "int8" : "fp32", null);
        if (o.Quantized is { Length: > 0 } q)
        {
            if (o.Precision != Kernels.Engine.Precision.Int8) throw new ServiceConfigException("Quantized needs Precision=int8 (it holds int8 weights)");
            precision = new PrecisionOptions.Choice("int8", q);
        }
        precision.Validate();
        var synsets = o.Synsets is { Length: > 0 } s ? SynsetTable.Load(s) : null;
        var weights = Inputs.LoadModel(model);
        if (synsets is not null && synsets.Count != weights.Config.Classes)
            throw new InputException($"{o.Synsets} lists {synsets.Count} classes but the model has {weights.Config.Classes}");
        double dense = DenseGFlops(weights);
        ThresholdCatalog catalog;
        if (o.Thresholds is { Length: > 0 } path)
        {
            var file = ThresholdFile.Load(path);
            file.EnsureMatches(weights, precision.Name);
            catalog = ThresholdCatalog.FromFile(file, dense);
        }
        else catalog = ThresholdCatalog.DenseOnly(dense);
        return new LoadedModel
        {
            Weights = weights, Synsets = synsets, Catalog = catalog, ModelPath = model,
            Precision = precision.Name, Quantized = precision.Load(weights),
        };
    }

    /// <summary>Multiply-adds of the dense forward pass (what ForwardStats counts), in billions.</summary>
    public static double DenseGFlops(VitWeights w) => new FlopsModel(w.Config).Dense / 1e9;
}

/// <summary>
/// decode -> preprocess -> infer -> top-k for one frame, with the threshold set the budget controller has active.
/// Owns the engine (single-caller) and every buffer: steady-state classification of frames of a repeated size
/// allocates nothing (Skia's small per-decode handles aside; raw RGB24 frames skip the decoder). Single-caller:
/// only the <see cref="Inference.InferenceWorker"/>'s thread calls it. Images above Input:MaxPixels are refused from
/// their header; large JPEGs decode at a reduced DCT scale that keeps the shorter side at least twice the resize
/// target. Each stage is a child span of the caller's current activity and a point of edgevit.stage.duration.
/// </summary>
public sealed class Classifier : IDisposable
{
    private readonly VitEngine _engine;
    private readonly ImagePreprocessor _preprocessor;
    private readonly ReusableImageDecoder _decoder;
    private readonly float[] _chw, _logits, _probs;
    private readonly int[] _top;
    private readonly BudgetController _budget;
    private readonly ServiceInstruments _metrics;
    private long _inFlightSince;

    public LoadedModel Model { get; }
    public int TopK => _top.Length;
    public int Depth => Model.Config.Depth;
    public string Simd => _engine.Simd.ToString();
    public int Threads => _engine.Options.Threads;
    /// <summary>See <see cref="VitEngine.ParallelStalls"/>: the engine's threads were oversubscribed this many times.</summary>
    public long ParallelStalls => _engine.ParallelStalls;

    /// <summary>Stopwatch timestamp at which the classification in progress started; 0 when idle (watchdog).</summary>
    public long InFlightSince => Interlocked.Read(ref _inFlightSince);

    private readonly TimeProvider _time;

    /// <param name="time">Wall clock of the verdicts' "time" (tests fake it); stage durations are measured with Stopwatch.</param>
    public Classifier(LoadedModel model, BudgetController budget, ServiceInstruments metrics, int threads, int topK,
        long maxPixels = DecodeLimits.DefaultMaxPixels, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        Model = model;
        _budget = budget;
        _metrics = metrics;
        _engine = new VitEngine(model.Weights, new EngineOptions(threads)
        {
            Precision = model.Quantized is null ? Precision.Fp32 : Precision.Int8,
            Quantized = model.Quantized,
        });
        var preprocess = Inputs.PreprocessFor(model.Config);
        _preprocessor = new ImagePreprocessor(preprocess);
        _decoder = new ReusableImageDecoder(new DecodeLimits(maxPixels, 2 * preprocess.ResizeShortSide));
        _chw = new float[_preprocessor.OutputLength];
        _logits = new float[model.Config.Classes];
        _probs = new float[model.Config.Classes];
        _top = new int[Math.Min(topK, model.Config.Classes)];
        metrics.SetDepth(model.Config.Depth);
    }

    public Verdict NewVerdict() => new(_top.Length, Model.Config.Depth);

    /// <summary>Classifies a captured frame (RGB24 or encoded). Throws <see cref="ImageDecodeException"/> for a frame that does not decode.</summary>
    public void Classify(Frame frame, string sourceName, Verdict v)
    {
        v.Source = sourceName;
        v.Origin = frame.Origin;
        v.Sequence = frame.Sequence;
        v.CaptureMs = frame.CaptureTime.TotalMilliseconds;
        long t0 = Stopwatch.GetTimestamp();
        Interlocked.Exchange(ref _inFlightSince, t0);
        try { ClassifyFrame(frame, t0, v); }
        finally { Interlocked.Exchange(ref _inFlightSince, 0); }
        // total: from the start of the capture to the verdict, queueing included.
        double sinceCapture = (_time.GetUtcNow() - frame.Timestamp).TotalMilliseconds + v.CaptureMs;
        v.TotalMs = Math.Max(sinceCapture, v.CaptureMs + v.ProcessingMs);
        _metrics.Stage(0, v.CaptureMs);
        _metrics.Stage(4, v.TotalMs);
    }

    private void ClassifyFrame(Frame frame, long t0, Verdict v)
    {
        if (frame.Format == FrameFormat.Encoded)
        {
            RgbFrame rgb;
            using (Span(EdgeVitMetrics.Stages.Decode))
                rgb = _decoder.Decode(frame.Data, frame.Origin);
            Run(rgb.Buffer, rgb.Width, rgb.Height, rgb.Stride, t0, v);
        }
        else
        {
            using (Span(EdgeVitMetrics.Stages.Decode))
            {
                if (frame.Width <= 0 || frame.Height <= 0 || frame.Stride < frame.Width * 3 || (long)frame.Stride * frame.Height > frame.Length)
                    throw new ImageDecodeException($"{frame.Origin}: RGB24 frame {frame.Width}x{frame.Height} stride {frame.Stride} does not fit its {frame.Length} bytes");
                if ((long)frame.Width * frame.Height > _decoder.Limits.MaxPixels)
                    throw new ImageTooLargeException($"{frame.Origin}: RGB24 frame {frame.Width}x{frame.Height} is above the limit of {_decoder.Limits.MaxPixels / 1e6:0.#} MP", frame.Width, frame.Height);
            }
            Run(frame.Buffer, frame.Width, frame.Height, frame.Stride, t0, v);
        }
    }

    /// <summary>Classifies an encoded image (HTTP body); <paramref name="what"/> names it in errors.</summary>
    public void Classify(ReadOnlySpan<byte> encoded, string what, string sourceName, long sequence, Verdict v)
    {
        long t0 = BeginRequest(what, sourceName, sequence, v);
        try
        {
            RgbFrame rgb;
            using (Span(EdgeVitMetrics.Stages.Decode))
                rgb = _decoder.Decode(encoded, what);
            Run(rgb.Buffer, rgb.Width, rgb.Height, rgb.Stride, t0, v);
        }
        finally { Interlocked.Exchange(ref _inFlightSince, 0); }
        v.TotalMs = v.ProcessingMs;
        _metrics.Stage(4, v.TotalMs);
    }

    /// <summary>A request's verdict header (no capture stage) and its in-flight mark; returns its start timestamp.</summary>
    private long BeginRequest(string what, string sourceName, long sequence, Verdict v)
    {
        v.Source = sourceName;
        v.Origin = what;
        v.Sequence = sequence;
        v.CaptureMs = double.NaN;
        long t0 = Stopwatch.GetTimestamp();
        Interlocked.Exchange(ref _inFlightSince, t0);
        return t0;
    }

    private void Run(byte[] pixels, int width, int height, int stride, long t0, Verdict v)
    {
        long t1 = Stopwatch.GetTimestamp();
        using (Span(EdgeVitMetrics.Stages.Preprocess))
        {
            try { _preprocessor.Process(pixels.AsSpan(0, stride * (height - 1) + width * 3), width, height, stride, _chw); }
            catch (ArgumentException ex) { throw new ImageDecodeException($"{v.Origin}: cannot preprocess a {width}x{height} image: {ex.Message}"); }
        }
        Infer(t0, t1, width, height, v);
    }

    /// <summary>Values per input tensor: channels x size x size (the preprocessed, normalised image).</summary>
    public int TensorLength => _chw.Length;

    /// <summary>
    /// Classifies an already preprocessed CHW tensor (Open Inference Protocol FP32 input); the caller checked its
    /// length against <see cref="TensorLength"/>.
    /// </summary>
    public void ClassifyTensor(ReadOnlySpan<float> chw, string what, string sourceName, long sequence, Verdict v)
    {
        if (chw.Length != _chw.Length) throw new ArgumentException($"tensor has {chw.Length} values, the model takes {_chw.Length}");
        long t0 = BeginRequest(what, sourceName, sequence, v);
        try
        {
            chw.CopyTo(_chw);
            Infer(t0, t0, Model.Config.ImageSize, Model.Config.ImageSize, v);
        }
        finally { Interlocked.Exchange(ref _inFlightSince, 0); }
        v.TotalMs = v.ProcessingMs;
        _metrics.Stage(4, v.TotalMs);
    }

    /// <summary>The logits of the last classification (on the inference thread, before the next one).</summary>
    public ReadOnlySpan<float> LastLogits => _logits;

    /// <summary>Token statistics of the last pass (kept token ids per block); on the inference thread.</summary>
    public EdgeViT.Kernels.Engine.ForwardStats LastStats => _engine.LastStats;

    private void Infer(long t0, long t1, int width, int height, Verdict v)
    {
        long t2 = Stopwatch.GetTimestamp();
        var set = _budget.Current; // read once: a swap lands between frames
        ForwardStats stats;
        using (Span(EdgeVitMetrics.Stages.Infer))
            stats = _engine.Infer(_chw, _logits, set.Thresholds, set.Rule);
        Ranking.Softmax(_logits, _probs);
        int n = Ranking.TopK(_logits, _top);
        long t3 = Stopwatch.GetTimestamp();

        v.Time = _time.GetUtcNow();
        v.Width = width;
        v.Height = height;
        v.Count = n;
        for (int i = 0; i < n; i++) { v.Classes[i] = _top[i]; v.Scores[i] = _probs[_top[i]]; }
        v.GFlops = stats.GFlops;
        stats.TokensPerBlock.AsSpan().CopyTo(v.TokensPerBlock);
        v.DecodeMs = Inputs.Ms(t0, t1);
        v.PreprocessMs = Inputs.Ms(t1, t2);
        v.InferMs = Inputs.Ms(t2, t3);
        v.Set = set;

        _metrics.Stage(1, v.DecodeMs);
        _metrics.Stage(2, v.PreprocessMs);
        _metrics.Stage(3, v.InferMs);
        _metrics.Frame(v.GFlops, v.TokensPerBlock);
        _budget.Observe(v.GFlops, v.ProcessingMs);
    }

    /// <summary>A child span of the frame's trace, tagged with its stage; null (no cost) without a listener.</summary>
    private static Activity? Span(string stage)
    {
        var a = ServiceInstruments.ActivitySource.StartActivity(stage);
        a?.SetTag(EdgeVitMetrics.StageAttribute, stage);
        return a;
    }

    public void Dispose()
    {
        _engine.Dispose();
    }
}
