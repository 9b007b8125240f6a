using System.Diagnostics;

namespace EdgeViT.Kernels.Engine;

/// <summary>The stages of a forward pass that <see cref="StageProfile"/> times separately.</summary>
public enum ForwardStage
{
    /// <summary>im2col and the patch-embedding GEMM.</summary>
    Embed,
    /// <summary>LN1 and the qkv projection GEMM (the norm runs in the GEMM's row tasks, <see cref="Simd.RowNorm"/>).</summary>
    Qkv,
    /// <summary>Packing K^T and V, Q K^T, softmax, S V, and the head-averaged class attention.</summary>
    Attention,
    /// <summary>The attention output projection (onto the residual stream).</summary>
    Proj,
    /// <summary>Token pruning or a reducer's rewrite of the token rows.</summary>
    Reduce,
    /// <summary>LN2 and the first MLP GEMM with its GELU epilogue (the norm in its row tasks).</summary>
    Fc1Gelu,
    /// <summary>The second MLP GEMM (onto the residual stream).</summary>
    Fc2,
    /// <summary>Final LayerNorm and the classifier head.</summary>
    Head,
}

/// <summary>
/// Wall time per <see cref="ForwardStage"/>, summed over the passes run while it is attached to an engine
/// (<see cref="VitEngine.Profile"/>). Two timestamps per stage and block; nothing is allocated.
/// </summary>
public sealed class StageProfile
{
    public static readonly ForwardStage[] Stages = Enum.GetValues<ForwardStage>();
    private readonly long[] _ticks = new long[Stages.Length];

    /// <summary>Forward passes recorded.</summary>
    public int Passes { get; internal set; }

    public void Reset() { Array.Clear(_ticks); Passes = 0; }

    internal void Add(ForwardStage stage, long ticks) => _ticks[(int)stage] += ticks;

    /// <summary>Mean milliseconds per pass spent in <paramref name="stage"/>.</summary>
    public double MeanMs(ForwardStage stage) => Passes == 0 ? 0 : _ticks[(int)stage] * 1000.0 / Stopwatch.Frequency / Passes;

    /// <summary>Mean milliseconds per pass over all stages.</summary>
    public double TotalMeanMs => Stages.Sum(MeanMs);
}
