using System.Diagnostics;
using EdgeViT.Capture;
using EdgeViT.Host.Service.Inference;
using EdgeViT.Imaging;

namespace EdgeViT.Host.Service;

/// <summary>
/// What the live page shows, fed from the inference path: at most LiveView:Fps frames per second are copied (with the
/// verdict's top-1 and, per patch, in how many blocks it was kept), and every verdict's latency and budget goes into
/// a ring for the chart. Both copies go into preallocated buffers, so the inference path allocates nothing here.
/// Rendering (decode, draw, JPEG) happens on the viewer's request, once per kept frame, shared by all viewers.
/// </summary>
public sealed class LiveView : IFrameListener, IVerdictSink
{
    private const int HistoryCapacity = 8192;
    private readonly LoadedModel _model;
    private readonly Classifier _classifier;
    private readonly LiveOptions _o;
    private readonly long _minTicks;
    private readonly object _lock = new();

    // latest kept frame (raw), guarded by _lock
    private byte[] _frame = new byte[64 * 1024];
    private int _frameLength, _width, _height, _stride;
    private FrameFormat _format;
    private int[] _keptBlocks = [];
    private long _version, _lastCopy;
    private int _topClass = -1;
    private float _topScore;
    private double _budget = double.NaN, _latency;

    // verdict history ring: timestamp, processing ms, active budget
    private readonly long[] _at = new long[HistoryCapacity];
    private readonly double[] _ms = new double[HistoryCapacity];
    private readonly double[] _setBudget = new double[HistoryCapacity];
    private int _head, _count;
    private long _verdicts;
    private int _lastClass = -1;
    private float _lastScore;

    // rendered JPEG cache
    private readonly object _renderLock = new();
    private long _renderedVersion = -1;
    private byte[]? _rendered;

    public LiveView(EdgeVitOptions options, LoadedModel model, Classifier classifier)
    {
        _model = model;
        _classifier = classifier;
        _o = options.LiveView;
        _minTicks = (long)(Stopwatch.Frequency / _o.Fps);
    }

    public LiveOptions Options => _o;
    /// <summary>Increments with every kept frame.</summary>
    public long Version => Interlocked.Read(ref _version);

    public void OnFrame(Frame frame, Verdict verdict)
    {
        if (!_o.Enabled) return;
        long now = Stopwatch.GetTimestamp();
        if (now - Interlocked.Read(ref _lastCopy) < _minTicks) return;
        lock (_lock)
        {
            _lastCopy = now;
            if (_frame.Length < frame.Length) _frame = new byte[Math.Max(frame.Length, _frame.Length * 2)];
            frame.Data.CopyTo(_frame);
            _frameLength = frame.Length;
            _format = frame.Format;
            _width = frame.Width;
            _height = frame.Height;
            _stride = frame.Stride;
            _topClass = verdict.Count > 0 ? verdict.Classes[0] : -1;
            _topScore = verdict.Count > 0 ? verdict.Scores[0] : 0;
            _budget = verdict.Set?.Budget ?? double.NaN;
            _latency = verdict.ProcessingMs;
            if (_o.Tokens) CountKept(_classifier);
            _version++;
        }
    }

    /// <summary>Per patch, the blocks that kept it (the classifier's last pass: called on the inference thread).</summary>
    private void CountKept(Classifier classifier)
    {
        var c = classifier.Model.Config;
        var stats = classifier.LastStats;
        if (_keptBlocks.Length != c.Patches) _keptBlocks = new int[c.Patches];
        Array.Clear(_keptBlocks);
        for (int l = 0; l < c.Depth; l++)
        {
            int n = stats.TokensPerBlock[l];
            for (int i = 0; i < n; i++)
            {
                int id = stats.KeptTokenIds[l * c.Tokens + i] - c.PrefixTokens;
                if (id >= 0 && id < _keptBlocks.Length) _keptBlocks[id]++;
            }
        }
    }

    public void Write(Verdict verdict, ReadOnlySpan<byte> json)
    {
        if (!_o.Enabled) return;
        lock (_lock)
        {
            if (_count == HistoryCapacity) { _head = (_head + 1) % HistoryCapacity; _count--; }
            int slot = (_head + _count) % HistoryCapacity;
            _at[slot] = Stopwatch.GetTimestamp();
            _ms[slot] = verdict.ProcessingMs;
            _setBudget[slot] = verdict.Set?.Budget ?? 1;
            _count++;
            _verdicts++;
            _lastClass = verdict.Count > 0 ? verdict.Classes[0] : -1;
            _lastScore = verdict.Count > 0 ? verdict.Scores[0] : 0;
        }
    }

    /// <summary>The class label for display: the synset's first name, or "class N".</summary>
    public string Label(int cls)
    {
        if (cls < 0) return "—";
        if (_model.Synsets is { } s && cls < s.Count) return s[cls].Words.Split(',')[0].Trim();
        return $"class {cls}";
    }

    /// <summary>The latest kept frame drawn with its label (JPEG), or null when no frame was kept yet.</summary>
    public byte[]? Snapshot()
    {
        byte[] raw;
        int length, width, height, stride, cls;
        FrameFormat format;
        int[]? kept;
        float score;
        double budget, latency;
        long version;
        lock (_lock)
        {
            if (_version == 0) return null;
            lock (_renderLock)
                if (_renderedVersion == _version) return _rendered;
            raw = _frame.AsSpan(0, _frameLength).ToArray();
            (length, width, height, stride, format, cls, score, budget, latency, version) =
                (_frameLength, _width, _height, _stride, _format, _topClass, _topScore, _budget, _latency, _version);
            kept = _o.Tokens && _keptBlocks.Length > 0 ? (int[])_keptBlocks.Clone() : null;
        }
        var c = _model.Config;
        var overlay = new LiveOverlay($"{Label(cls)}  {score:0.00}",
            $"budget {(double.IsFinite(budget) ? budget.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) : "dense")} · {latency:0.0} ms · {DateTime.UtcNow:HH:mm:ss} UTC")
        {
            KeptBlocks = kept,
            Depth = c.Depth,
            CropSize = c.ImageSize,
            ResizeShortSide = (int)Math.Round(c.ImageSize * 256.0 / 224.0),
        };
        byte[]? jpeg = format == FrameFormat.Rgb24
            ? LiveFrameRenderer.RenderRgb(raw.AsSpan(0, length), width, height, stride, overlay, _o.JpegQuality)
            : LiveFrameRenderer.RenderEncoded(raw.AsSpan(0, length), overlay, _o.JpegQuality);
        if (jpeg is null) return null;
        lock (_renderLock)
        {
            if (version > _renderedVersion) { _renderedVersion = version; _rendered = jpeg; }
        }
        return jpeg;
    }

    /// <summary>The latest verdict's top-1 (any origin), verdict count.</summary>
    public (int Class, float Score, long Verdicts) Latest()
    {
        lock (_lock) return (_lastClass, _lastScore, _verdicts);
    }

    /// <summary>p95 processing latency and last active budget per bucket over LiveView:HistorySeconds (oldest first).</summary>
    public List<(double SecondsAgo, double P95Ms, double Budget, int Count)> History(int buckets = 60)
    {
        long now = Stopwatch.GetTimestamp();
        double span = _o.HistorySeconds, width = span / buckets;
        var lists = new List<double>[buckets];
        var budgets = new double[buckets];
        lock (_lock)
        {
            for (int i = 0; i < _count; i++)
            {
                int slot = (_head + i) % HistoryCapacity;
                double ago = (now - _at[slot]) / (double)Stopwatch.Frequency;
                if (ago > span) continue;
                int b = Math.Clamp(buckets - 1 - (int)(ago / width), 0, buckets - 1);
                (lists[b] ??= []).Add(_ms[slot]);
                budgets[b] = _setBudget[slot];
            }
        }
        var points = new List<(double, double, double, int)>();
        for (int b = 0; b < buckets; b++)
        {
            if (lists[b] is not { Count: > 0 } l) continue;
            l.Sort();
            double p95 = l[Math.Clamp((int)Math.Ceiling(0.95 * l.Count) - 1, 0, l.Count - 1)];
            points.Add((Math.Round((buckets - 1 - b) * width, 1), Math.Round(p95, 2), budgets[b], l.Count));
        }
        return points;
    }
}
