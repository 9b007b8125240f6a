using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Parallel;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

/// <summary>Arithmetic of the engine's block linear layers (qkv, proj, fc1, fc2).</summary>
public enum Precision { Fp32, Int8 }

/// <summary>
/// One block linear layer as the forward pass sees it: C (=/+=) A * W + b, optionally GELU, either on fp32
/// packed panels (<see cref="Gemm"/>) or on int8 panels with per-token activation quantisation
/// (<see cref="Int8Gemm"/>). The only place the engine's arithmetic depends on <see cref="Precision"/>.
/// </summary>
internal sealed unsafe class LinearLayer : IDisposable
{
    private readonly PackedMatrix? _fp32;
    private readonly Int8Matrix? _int8;
    private readonly Int8Activations? _activations;

    public LinearLayer(Linear weights, SimdLevel level)
    {
        _fp32 = PackedMatrix.FromLinear(weights.Weight, weights.In, weights.Out, weights.Bias, level);
    }

    /// <param name="activations">scratch shared by the engine's int8 layers (one forward pass at a time).</param>
    public LinearLayer(QuantizedLinear weights, Int8Kernel kernel, SimdLevel level, Int8Activations activations)
    {
        _int8 = new Int8Matrix(weights, kernel, level);
        _activations = activations;
    }

    /// <summary>The fp32 panels (the calibration backward pass needs them); null for an int8 layer.</summary>
    public PackedMatrix? Fp32 => _fp32;

    /// <param name="norm">when set, a's rows are written first as the LayerNorm of its source rows (<see cref="RowNorm"/>).</param>
    public void Apply(float* a, int lda, int m, float* c, int ldc, bool accumulate = false,
        GemmEpilogue epilogue = GemmEpilogue.None, WorkerPool? pool = null, RowNorm norm = default)
    {
        if (_int8 is not null) Int8Gemm.Multiply(a, lda, m, _int8, c, ldc, _activations!, accumulate, epilogue, pool, norm);
        else Gemm.Multiply(a, lda, m, _fp32!, c, ldc, accumulate, epilogue, pool, norm);
    }

    public void Dispose() { _fp32?.Dispose(); _int8?.Dispose(); }
}
