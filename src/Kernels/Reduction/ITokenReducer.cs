namespace EdgeViT.Kernels.Reduction;

/// <summary>What a reducer needs the engine to keep from a block's attention (extra work is done only when asked).</summary>
[Flags]
public enum ReductionNeeds
{
    /// <summary>Class attention per head and head-averaged (always available; free).</summary>
    None = 0,
    /// <summary>Every head's full attention probabilities [head][query][key] (Zero-TPrune's PageRank, LTMP's importance).</summary>
    AttentionProbabilities = 1,
    /// <summary>Token sizes enter attention as log(size) on the logits (ToMe's proportional attention).</summary>
    ProportionalAttention = 2,
}

/// <summary>
/// A token-reduction policy (RCTP thresholds, top-k/EViT, ATS, ToMe, Zero-TPrune, TPS, LTMP). The engine calls
/// <see cref="Reduce"/> after every block's attention residual and before its MLP, the point where all of these
/// methods act, so they share one forward pass, one FLOPs counter and one clock. A reducer is single-caller
/// (like the engine) and allocates nothing per image: size scratch buffers from the config in its constructor.
/// </summary>
public interface ITokenReducer
{
    /// <summary>Short name used in reports, e.g. "tome(r=8)".</summary>
    string Name { get; }

    ReductionNeeds Needs { get; }

    /// <summary>How the engine pools the heads into <see cref="TokenReductionContext.ClassScore"/> and caps the size proportional attention sees (RCTP's rule; the default for every other method).</summary>
    ThresholdRule AttentionRule => default;

    /// <summary>Called once per image after patch embedding (reset per-image state).</summary>
    void BeginImage(TokenReductionContext context) { }

    /// <summary>
    /// Reduces the <see cref="TokenReductionContext.Count"/> tokens of block <paramref name="block"/> in place
    /// (rows of <see cref="TokenReductionContext.X"/>, with their ids and sizes) and returns the new count.
    /// Prefix tokens (CLS, distillation) must stay first and untouched.
    /// </summary>
    int Reduce(int block, TokenReductionContext context);
}
