namespace EdgeViT.Kernels.Reduction;

/// <summary>
/// RCTP as a reducer: keep a patch token iff its head-averaged class attention is above block l's threshold.
/// The same rule as <c>VitEngine.Infer(image, logits, thresholds)</c> (the production path), here so that the
/// comparison runs every method through the same reducer hook.
/// </summary>
public sealed class ThresholdPruning : ITokenReducer
{
    private readonly float[] _thresholds;

    public ThresholdPruning(EdgeViT.Kernels.Model.VitConfig config, ReadOnlySpan<float> thresholds, string? name = null, ThresholdRule rule = default)
    {
        Rule = rule;
        if (thresholds.Length != config.Depth) throw new ArgumentException($"{thresholds.Length} thresholds for {config.Depth} blocks");
        _thresholds = thresholds.ToArray();
        Name = name ?? "rctp";
    }

    public string Name { get; }
    public ThresholdRule Rule { get; }
    public ThresholdRule AttentionRule => Rule;
    public ReductionNeeds Needs => Rule.FuseDropped ? ReductionNeeds.ProportionalAttention : ReductionNeeds.None;

    public int Reduce(int block, TokenReductionContext context)
    {
        float tau = _thresholds[block];
        if (float.IsNaN(tau) || float.IsNegativeInfinity(tau)) return context.Count;
        return context.KeepAbove(tau, Rule);
    }
}
