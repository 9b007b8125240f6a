using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

/// <summary>How an engine runs: thread count and SIMD level (null = best this CPU has).</summary>
public sealed record EngineOptions(int Threads = 1, SimdLevel? Simd = null)
{
    /// <summary>Int8: qkv, proj, fc1 and fc2 run on int8 weights (per output channel) and activations (per token).</summary>
    public Precision Precision { get; init; } = Precision.Fp32;
    /// <summary>With <see cref="Precision.Int8"/>: weights already quantised (e.g. read from an <c>edgevit quantize</c> file); null quantises at load.</summary>
    public QuantizedWeights? Quantized { get; init; }
    /// <summary>With <see cref="Precision.Int8"/>: the inner loop (tests pin each one); null = the one for <see cref="Simd"/>.</summary>
    public Int8Kernel? Int8Kernel { get; init; }
}

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
    public Precision Precision => Options.Precision;

    /// <summary>
    /// Parallel steps whose caller waited past <see cref="Parallel.WorkerPool.StallMicroseconds"/> for a worker that lost
    /// its CPU mid-task (each makes the next steps run on one thread for a while): non-zero on an oversubscribed machine.
    /// </summary>
    public long ParallelStalls => _pool.Stalls;
    /// <summary>The int8 inner loop of an int8 engine, else null.</summary>
    public Int8Kernel? Int8Kernel { get; }
    /// <summary>Stats of the last <see cref="Infer"/> call (reused object).</summary>
    public ForwardStats LastStats { get; }
}

