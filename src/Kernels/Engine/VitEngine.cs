using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

/// <summary>How an engine runs: thread count and SIMD level (null = best this CPU has).</summary>
public sealed record EngineOptions(int Threads = 1, SimdLevel? Simd = null);

/// <summary>What one forward pass did: multiply-adds actually executed and tokens each block kept.</summary>
public sealed class ForwardStats(int depth, int tokens)
{
    /// <summary>Multiply-accumulates of this image (the papers' "FLOPs" convention).</summary>
    public long MultiplyAdds { get; internal set; }
    public double GFlops => MultiplyAdds / 1e9;
    /// <summary>Multiply-adds a token-reduction policy spent deciding (matching, PageRank, ...), not in <see cref="MultiplyAdds"/>.</summary>
    public long ReductionMultiplyAdds { get; internal set; }
    /// <summary>Tokens (prefix included) entering each block's MLP, i.e. after that block's pruning.</summary>
    public int[] TokensPerBlock { get; } = new int[depth];
    /// <summary>[block * Tokens + i], i &lt; TokensPerBlock[block]: original index (0 = CLS) of each token the block kept.</summary>
    public int[] KeptTokenIds { get; } = new int[depth * tokens];
}

/// <summary>
/// A ViT forward pass on packed weights. Owns its workspace and worker threads, so it is single-caller:
/// make one per inference thread. Nothing is allocated per image after construction.
/// </summary>
public sealed partial class VitEngine : IDisposable
{
    public VitConfig Config { get; }
    public VitWeights Weights { get; }
    public EngineOptions Options { get; }
    public SimdLevel Simd { get; }
    /// <summary>Stats of the last <see cref="Infer"/> call (reused object).</summary>
    public ForwardStats LastStats { get; }
}

