using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace EdgeViT.Host.Service;

/// <summary>
/// The service's telemetry names, in one place so dashboards and their tests can be checked against them.
/// Metric names follow OpenTelemetry conventions (dotted, unit in <c>Unit</c>, not in the name); Prometheus
/// renders them as e.g. <c>edgevit_stage_duration_milliseconds_bucket{stage="infer"}</c>.
/// </summary>
public static class EdgeVitMetrics
{
    public const string MeterName = "EdgeViT";
    public const string ActivitySourceName = "EdgeViT";

    // Histograms
    public const string StageDuration = "edgevit.stage.duration";
    public const string StageDurationUnit = "ms";
    public const string FrameGFlops = "edgevit.frame.gflops";
    public const string FrameGFlopsUnit = "{GFLOP}";
    public const string TokensKept = "edgevit.tokens.kept";
    public const string TokensKeptUnit = "{token}";

    // Gauges
    public const string BudgetTarget = "edgevit.budget.target";
    public const string BudgetTargetUnit = "1";
    public const string BudgetTargetP95 = "edgevit.budget.target_p95";
    public const string BudgetTargetP95Unit = "ms";
    public const string ThresholdSetBudget = "edgevit.threshold_set.budget";
    public const string ThresholdSetBudgetUnit = "1";
    public const string SocTemperature = "edgevit.soc.temperature";
    public const string SocTemperatureUnit = "Cel";
    public const string SocThrottled = "edgevit.soc.throttled";
    public const string SocThrottledUnit = "{flag}";

    // Counters
    public const string FramesCaptured = "edgevit.frames.captured";
    public const string FramesDropped = "edgevit.frames.dropped";
    public const string FramesClassified = "edgevit.frames.classified";
    public const string FramesUnit = "{frame}";
    public const string Errors = "edgevit.errors";
    public const string ErrorsUnit = "{error}";

    // Attributes
    public const string StageAttribute = "stage";
    public const string BlockAttribute = "block";
    public const string KindAttribute = "kind";
    public const string ZoneAttribute = "zone";

    /// <summary>Values of <see cref="StageAttribute"/>, also the span names of a frame's trace.</summary>
    public static class Stages
    {
        public const string Capture = "capture";
        public const string Decode = "decode";
        public const string Preprocess = "preprocess";
        public const string Infer = "infer";
        public const string Total = "total";
        public static readonly string[] All = [Capture, Decode, Preprocess, Infer, Total];
    }

    /// <summary>Values of <see cref="KindAttribute"/> on <see cref="Errors"/>.</summary>
    public static class ErrorKinds
    {
        public const string Source = "source";
        public const string Decode = "decode";
        public const string Inference = "inference";
        public const string Results = "results";
        public const string Http = "http";
    }

    /// <summary>Name of the root span of one frame's trace (children: one span per stage).</summary>
    public const string FrameSpan = "frame";
    /// <summary>Name of the root span of an HTTP-posted image.</summary>
    public const string ClassifySpan = "classify";

    /// <summary>Every metric name with its unit (for dashboards and their tests).</summary>
    public static readonly IReadOnlyDictionary<string, string> Units = new Dictionary<string, string>
    {
        [StageDuration] = StageDurationUnit,
        [FrameGFlops] = FrameGFlopsUnit,
        [TokensKept] = TokensKeptUnit,
        [BudgetTarget] = BudgetTargetUnit,
        [BudgetTargetP95] = BudgetTargetP95Unit,
        [ThresholdSetBudget] = ThresholdSetBudgetUnit,
        [SocTemperature] = SocTemperatureUnit,
        [SocThrottled] = SocThrottledUnit,
        [FramesCaptured] = FramesUnit,
        [FramesDropped] = FramesUnit,
        [FramesClassified] = FramesUnit,
        [Errors] = ErrorsUnit,
    };
}

/// <summary>
/// The instruments, created on one Meter. Recording never allocates: tags are pre-built key/value pairs
/// (block indices boxed once).
/// </summary>
public sealed class ServiceInstruments : IDisposable
{
    public Meter Meter { get; }
    public static readonly ActivitySource ActivitySource = new(EdgeVitMetrics.ActivitySourceName);

    private readonly Histogram<double> _stage;
    private readonly Histogram<double> _gflops;
    private readonly Histogram<int> _tokens;
    private readonly Counter<long> _classified, _errors;
    private readonly KeyValuePair<string, object?>[] _stageTags;
    private KeyValuePair<string, object?>[] _blockTags = [];
    private readonly Dictionary<string, KeyValuePair<string, object?>> _errorTags = new(StringComparer.Ordinal);

    public ServiceInstruments(IMeterFactory? factory = null)
    {
        Meter = factory?.Create(EdgeVitMetrics.MeterName) ?? new Meter(EdgeVitMetrics.MeterName);
        _stage = Meter.CreateHistogram(EdgeVitMetrics.StageDuration, EdgeVitMetrics.StageDurationUnit,
            "Time of one pipeline stage of one frame.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.5, 1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000] });
        _gflops = Meter.CreateHistogram(EdgeVitMetrics.FrameGFlops, EdgeVitMetrics.FrameGFlopsUnit,
            "Multiply-adds executed for one frame, in billions.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 2, 3, 5, 10, 20] });
        _tokens = Meter.CreateHistogram<int>(EdgeVitMetrics.TokensKept, EdgeVitMetrics.TokensKeptUnit,
            "Tokens (class token included) a block kept after RCTP pruning.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [10, 25, 50, 75, 100, 125, 150, 175, 197, 257, 577] });
        _classified = Meter.CreateCounter<long>(EdgeVitMetrics.FramesClassified, EdgeVitMetrics.FramesUnit, "Frames (and posted images) classified.");
        _errors = Meter.CreateCounter<long>(EdgeVitMetrics.Errors, EdgeVitMetrics.ErrorsUnit, "Failures by kind: source, decode, inference, results, http.");
        _stageTags = EdgeVitMetrics.Stages.All.Select(s => new KeyValuePair<string, object?>(EdgeVitMetrics.StageAttribute, s)).ToArray();
        foreach (var kind in new[] { EdgeVitMetrics.ErrorKinds.Source, EdgeVitMetrics.ErrorKinds.Decode, EdgeVitMetrics.ErrorKinds.Inference, EdgeVitMetrics.ErrorKinds.Results, EdgeVitMetrics.ErrorKinds.Http })
            _errorTags[kind] = new(EdgeVitMetrics.KindAttribute, kind);
    }

    /// <summary>Boxes the block indices once for the model's depth.</summary>
    public void SetDepth(int depth) =>
        _blockTags = Enumerable.Range(0, depth).Select(b => new KeyValuePair<string, object?>(EdgeVitMetrics.BlockAttribute, b)).ToArray();

    /// <summary>stage: index into <see cref="EdgeVitMetrics.Stages.All"/> (capture, decode, preprocess, infer, total).</summary>
    public void Stage(int stage, double ms) => _stage.Record(ms, _stageTags[stage]);

    public void Frame(double gflops, ReadOnlySpan<int> tokensPerBlock)
    {
        _gflops.Record(gflops);
        if (_tokens.Enabled)
            for (int b = 0; b < tokensPerBlock.Length && b < _blockTags.Length; b++) _tokens.Record(tokensPerBlock[b], _blockTags[b]);
        _classified.Add(1);
    }

    /// <summary>
    /// Captured and dropped frames are counted by the capture loop and the latest-frame queue (EdgeViT.Capture);
    /// they are exported as observable counters reading those totals.
    /// </summary>
    public void ObserveCapture(Func<long> captured, Func<long> dropped)
    {
        Meter.CreateObservableCounter(EdgeVitMetrics.FramesCaptured, captured, EdgeVitMetrics.FramesUnit, "Frames the source delivered.");
        Meter.CreateObservableCounter(EdgeVitMetrics.FramesDropped, dropped, EdgeVitMetrics.FramesUnit,
            "Frames replaced in the latest-frame queue before being classified.");
    }

    public void Error(string kind, long count = 1) =>
        _errors.Add(count, _errorTags.TryGetValue(kind, out var tag) ? tag : new(EdgeVitMetrics.KindAttribute, kind));

    public void Dispose() => Meter.Dispose();
}

/// <summary>The budget gauges (edgevit.budget.target, .target_p95, edgevit.threshold_set.budget), read from the controller.</summary>
public static class ServiceGauges
{
    public static void Register(Meter meter, BudgetController budget)
    {
        meter.CreateObservableGauge(EdgeVitMetrics.BudgetTarget, () =>
        {
            double f = budget.TargetFraction;
            return double.IsFinite(f) ? [new Measurement<double>(f)] : Array.Empty<Measurement<double>>();
        }, EdgeVitMetrics.BudgetTargetUnit, "FLOPs budget target as a fraction of the dense model (flops and fixed modes).");
        meter.CreateObservableGauge(EdgeVitMetrics.BudgetTargetP95, () =>
            budget.Settings.Mode == BudgetMode.Latency ? [new Measurement<double>(budget.Settings.TargetP95Ms)] : Array.Empty<Measurement<double>>(),
            EdgeVitMetrics.BudgetTargetP95Unit, "Latency budget: the p95 target (latency mode).");
        meter.CreateObservableGauge(EdgeVitMetrics.ThresholdSetBudget, () => budget.Current.Budget,
            EdgeVitMetrics.ThresholdSetBudgetUnit, "Calibrated budget of the active threshold set (1 = dense).");
    }
}
