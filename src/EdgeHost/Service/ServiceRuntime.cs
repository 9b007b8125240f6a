using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace EdgeViT.Host.Service;

/// <summary>
/// What the running service shares between the frame loop and the HTTP API: the start-up options, counters,
/// instruments, and — once <see cref="Load"/> ran (in the pipeline's start-up, before systemd is told READY) —
/// the model, the budget controller, the classifier and the verdict sink.
/// </summary>
public sealed class ServiceRuntime : IDisposable
{
    private readonly ILogger _log;

    public EdgeVitOptions Options { get; }
    public ServiceStatus Status { get; } = new();
    public ServiceInstruments Metrics { get; }
    public TimeProvider Time { get; }
    public FrameSourceFactory Sources { get; }

    public LoadedModel? Model { get; private set; }
    public BudgetController? Budget { get; private set; }
    public Classifier? Classifier { get; private set; }
    public ResultSink? Sink { get; private set; }
    /// <summary>The frame loop, for HTTP requests that want a frame from the source (Trigger:Mode http).</summary>
    public FramePipeline? Pipeline { get; internal set; }
    public IReadOnlyList<string> SocInstruments { get; private set; } = [];

    public ServiceRuntime(IOptions<EdgeVitOptions> options, ServiceInstruments metrics, TimeProvider time, FrameSourceFactory sources, ILogger<ServiceRuntime> log)
    {
        Options = options.Value;
        Metrics = metrics;
        Time = time;
        Sources = sources;
        _log = log;
    }

    /// <summary>Loads model, thresholds and synsets and builds the classifier; errors are one line naming the file.</summary>
    public void Load()
    {
        var o = Options;
        var model = LoadedModel.Load(o);
        var settings = BudgetSettings.From(o.Budget);
        var budget = new BudgetController(model.Catalog, BudgetSettings.From(new BudgetOptions()) with { Mode = BudgetMode.Fixed, Target = 1 }, Time);
        if (model.Catalog.HasThresholds)
        {
            try { budget.Apply(settings); }
            catch (ArgumentException ex) { throw new Commands.UsageException($"Budget: {ex.Message} ({Path.GetFileName(model.Catalog.Source)} covers budgets {model.Catalog.MinBudget:0.###}..1)"); }
        }
        else if (settings.Mode != BudgetMode.Fixed || settings.Target < 1 || settings.TargetGFlops is not null)
            _log.LogWarning("no Thresholds file configured: the model runs dense and Budget:{Mode} is inactive", settings.ModeName);
        // flops mode alternates between neighbouring sets frame by frame: those switches are debug noise.
        budget.Switched += (from, to, why) =>
        {
            var level = budget.Settings.Mode == BudgetMode.Flops ? LogLevel.Debug : LogLevel.Information;
            if (_log.IsEnabled(level)) _log.Log(level, "threshold set {From} -> {To}: {Reason}", from, to, why);
        };

        Sink = ResultSink.Create(o.Results);
        Model = model;
        Budget = budget;
        Classifier = new Classifier(model, budget, Metrics, o.Threads, o.TopK);
        RegisterGauges(Metrics.Meter, budget);
        Metrics.ObserveCapture(() => Status.Captured, () => Status.Dropped);
        SocInstruments = SocSensors.Register(Metrics.Meter, o.Telemetry.SysfsRoot);
        Status.ModelLoaded = true;
    }

    /// <summary>Logs what was loaded (after the source opened too, so a failed start-up prints only its error line).</summary>
    public void LogLoaded()
    {
        if (Model is not { } model || Budget is not { } budget || Classifier is null) return;
        _log.LogInformation("model {Model} ({Description}), simd {Simd}, threads {Threads}; thresholds: {Sets}",
            model.ModelPath, model.Config.Describe(), Classifier.Simd, Options.Threads,
            model.Catalog.HasThresholds ? $"{model.Catalog.Sets.Count - 1} sets from {model.Catalog.Source}, {budget.Settings.ModeName} mode, active {budget.Current}" : "none (dense)");
    }

    private static void RegisterGauges(Meter meter, BudgetController budget)
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

    public void Dispose()
    {
        Classifier?.Dispose();
        Sink?.Dispose();
    }
}
