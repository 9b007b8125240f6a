using System.Diagnostics;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Kernels.Reduction.Ltmp;

/// <summary>
/// LTMP training settings. Defaults follow the official code (github mxbonn/ltmp, tools/train.py and
/// ltmp/timm/lt_mergeprune.py) where it applies: lambda = 10, tau = 0.5 (train.py's --tau, which the README's
/// reproduction command leaves at its default and passes to the model), plain SGD (momentum 0, no weight decay)
/// with a constant learning rate over the one epoch (timm's cosine schedule steps per epoch), prune lr 5e-6 and
/// merge lr 5e-3, thresholds clamped to [0, 1] after every step, merge thresholds start at 0.9 and prune at 0.
/// The official epoch is ~9,800 steps of 128 ImageNet images; one pass over a few hundred calibration images is
/// far fewer steps, so the learning rates are multiplied by <see cref="ReferenceSteps"/> / max(steps,
/// <see cref="MinScaledSteps"/>): the official epoch's total movement per unit gradient, spread over at least 32
/// steps (fewer, larger steps overshoot: with 8 steps a 0.5 target landed at 0.31 on DeiT-Tiny). That rescaling,
/// the batch of 16 (official: 128) and the cap are ours, not the paper's; they were chosen on the shared images.
/// <see cref="Precision"/> is the engine the training forward runs on (int8: thresholds learnt on the engine they
/// will run on, as RCTP's are); the mask-gradient probe stays fp32, like RCTP's Fisher probe.
/// </summary>
public sealed record LtmpOptions(
    double Temperature = 0.5,
    double Lambda = 10,
    int BatchSize = 16,
    double PruneLearningRate = 5e-6,
    double MergeLearningRate = 5e-3,
    double ReferenceSteps = 9800,
    int MinScaledSteps = 32,
    float InitialMerge = 0.9f,
    float InitialPrune = 0f,
    int Workers = 2,
    int Passes = 1,
    double LearningRateScale = 1,
    bool TaskGradient = true,
    Simd.SimdLevel? Simd = null,
    Precision Precision = Precision.Fp32);

/// <summary>One budget's training: thresholds, the FLOPs fraction of the last steps, time.</summary>
public sealed record LtmpTraining(float[] Merge, float[] Prune, double Budget, IReadOnlyList<double> StepFlops, TimeSpan Time);

/// <summary>
/// LTMP as a comparison method: the constructor probes every calibration image once with RCTP's
/// <see cref="FisherProbe"/> (dense forward + backward: dL/dm per block and token, budget-independent);
/// <see cref="ForBudget"/> then trains only the 2L thresholds, backbone frozen, one pass over the images in
/// batches: each step runs the real LTMP forward at the current thresholds (hard masks = actual merging and
/// pruning, parallel over workers), then takes an SGD step on task loss + lambda (F - target)^2
/// (<see cref="LtmpObjective"/>).
/// <para>
/// Deviation from the paper (there is no masked-attention backward in this engine): in the paper the
/// straight-through masks stay in the network (masked softmax in later blocks) and dL/dm is backpropagated
/// through the masked model. Here dL/dm is FisherProbe's dense-point gradient: the gradient of the
/// cross-entropy (no label smoothing) with respect to a mask multiplying the token's whole state after block
/// l's attention, evaluated in the unreduced model, looked up by the token's original id (a merged token by
/// its destination's id). So the task gradient ignores how earlier merging/pruning changed the network, treats
/// removal as zeroing the token's state (not masking it as a key) and gives a merged source the gradient of
/// dropping it. The masks' own values, the scores and similarities they threshold, and the FLOPs term are
/// exact: they come from the real reduced forward.
/// </para>
/// </summary>
public sealed class LtmpMethod : IReductionMethod
{
    private readonly VitWeights _weights;
    private readonly VitConfig _c;
    private readonly int _images;
    private readonly Action<int, Span<float>> _loadImage;
    private readonly float[][] _maskGradients;
    private readonly Action<string>? _progress;
    private Quant.QuantizedWeights? _quantized;

    /// <summary>Training settings; may be changed between budgets (the probe used only Workers and Simd).</summary>
    public LtmpOptions Options { get; set; }
    public TimeSpan ProbeTime { get; }
    /// <summary>The last <see cref="Train"/>'s result.</summary>
    public LtmpTraining? LastTraining { get; private set; }

    /// <param name="loadImage">Writes image i's normalised CHW input (called from worker threads, once per pass).</param>
    /// <param name="labels">Label per image, or -1 for the model's own top-1.</param>
    public LtmpMethod(VitWeights weights, int images, Action<int, Span<float>> loadImage, IReadOnlyList<int> labels,
        LtmpOptions? options = null, Action<string>? progress = null)
    {
        if (images <= 0) throw new ArgumentException("LTMP needs at least one calibration image");
        if (labels.Count != images) throw new ArgumentException($"{labels.Count} labels for {images} images");
        _weights = weights;
        _c = weights.Config;
        _images = images;
        _loadImage = loadImage;
        _progress = progress;
        Options = options ?? new LtmpOptions();
        if (Options.BatchSize < 1 || Options.Passes < 1) throw new ArgumentException("batch size and passes must be at least 1");

        var clock = Stopwatch.StartNew();
        _maskGradients = new float[images][];
        // The budget-independent part: RCTP's probe gives every token's signed dL/dm once, reused by every budget's training.
        FisherProbe.MeasureAll(weights, images, loadImage, labels, Options.Workers, Options.Simd, FisherSite.TokenState,
            (_, i, _, s) => _maskGradients[i] = s.MaskGradient, progress, "ltmp: ");
        ProbeTime = clock.Elapsed;
    }

    public string Name => "ltmp";

    public MethodSetting ForBudget(double budget, Func<ITokenReducer, double> measure)
    {
        var t = Train(budget);
        var reducer = new LearnedThresholds(_c, t.Merge, t.Prune);
        return new MethodSetting(reducer, Describe(t), measure(reducer));
    }

    public static string Describe(LtmpTraining t) =>
        $"merge=[{string.Join(",", t.Merge.Select(v => v.ToString("0.###")))}] prune=[{string.Join(",", t.Prune.Select(v => v.ToString("0.####")))}]";

    /// <summary>Trains the 2L thresholds for a FLOPs target (fraction of dense).</summary>
    public LtmpTraining Train(double budget)
    {
        var o = Options;
        var clock = Stopwatch.StartNew();
        int depth = _c.Depth, workers = Math.Max(1, Math.Min(o.Workers, o.BatchSize));
        var merge = Enumerable.Repeat((double)o.InitialMerge, depth).ToArray();
        var prune = Enumerable.Repeat((double)o.InitialPrune, depth).ToArray();
        var fm = new FlopsModel(_c);
        int batches = (_images + o.BatchSize - 1) / o.BatchSize, steps = batches * o.Passes;
        double scale = Math.Max(1, o.ReferenceSteps / Math.Max(steps, o.MinScaledSteps)) * o.LearningRateScale;
        double lrPrune = o.PruneLearningRate * scale, lrMerge = o.MergeLearningRate * scale;

        // int8: quantise once for all workers (an engine given no weights would quantise its own copy).
        var quantized = o.Precision == Precision.Int8 ? (_quantized ??= Quant.QuantizedWeights.Quantize(_weights)) : null;
        var engines = Enumerable.Range(0, workers)
            .Select(_ => new VitEngine(_weights, new EngineOptions(1, o.Simd) { Precision = o.Precision, Quantized = quantized })).ToArray();
        var reducers = Enumerable.Range(0, workers).Select(_ => new LearnedThresholds(_c, new float[depth], new float[depth])).ToArray();
        var traces = Enumerable.Range(0, o.BatchSize).Select(_ => new LtmpTrace(depth, _c.Tokens)).ToArray();
        var inputs = Enumerable.Range(0, workers).Select(_ => new float[_c.InChannels * _c.ImageSize * _c.ImageSize]).ToArray();
        var logits = Enumerable.Range(0, workers).Select(_ => new float[_c.Classes]).ToArray();
        var stepFlops = new List<double>();
        var gradM = new double[depth];
        var gradP = new double[depth];
        // A fixed shuffle (the official loader shuffles): neighbouring calibration images are often one class.
        var order = Enumerable.Range(0, _images).ToArray();
        new Random(2023).Shuffle(order);
        try
        {
            for (int pass = 0; pass < o.Passes; pass++)
                for (int b = 0; b < batches; b++)
                {
                    int first = b * o.BatchSize, count = Math.Min(o.BatchSize, _images - first);
                    foreach (var r in reducers) r.SetThresholds(merge, prune);
                    System.Threading.Tasks.Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
                    {
                        for (int k = w; k < count; k += workers)
                        {
                            _loadImage(order[first + k], inputs[w]);
                            reducers[w].Trace = traces[k];
                            engines[w].Infer(inputs[w], logits[w], reducers[w]);
                            reducers[w].Trace = null;
                        }
                    });
                    var batch = traces.Take(count).ToArray();
                    var g = Enumerable.Range(first, count).Select(i => _maskGradients[order[i]]).ToArray();
                    Array.Clear(gradM); Array.Clear(gradP);
                    var (_, f) = LtmpObjective.FlopsTerm(fm, batch, merge, prune, o.Temperature, budget, o.Lambda, hardValues: true, gradM, gradP);
                    if (o.TaskGradient) LtmpObjective.TaskGradient(_c, batch, g, merge, prune, o.Temperature, gradM, gradP);
                    stepFlops.Add(f);
                    for (int l = 0; l < depth; l++)
                    {
                        merge[l] = Math.Clamp(merge[l] - lrMerge * gradM[l], 0, 1);
                        prune[l] = Math.Clamp(prune[l] - lrPrune * gradP[l], 0, 1);
                    }
                    if (_progress is not null && (b % 10 == 0 || b == batches - 1))
                        _progress($"ltmp budget {budget:0.###}: step {pass * batches + b + 1}/{steps} batch FLOPs {f:0.####}");
                }
        }
        finally { foreach (var e in engines) e.Dispose(); }
        var result = new LtmpTraining(merge.Select(v => (float)v).ToArray(), prune.Select(v => (float)v).ToArray(), budget, stepFlops, clock.Elapsed);
        LastTraining = result;
        return result;
    }
}
