namespace EdgeViT.Kernels.Simd;

/// <summary>
/// The right-hand matrix B [K x N] of a GEMM (a layer's weights), packed once into column panels of
/// <see cref="PanelWidth"/> (two vectors of the chosen level): panel p holds B[0..K, p*W..p*W+W) as K
/// contiguous rows of W floats, zero-padded past N, so the microkernel streams it with aligned loads.
/// The bias is padded to the panel grid the same way (zeros when the layer has none).
/// </summary>
public sealed unsafe class PackedMatrix : IDisposable
{
    public int K { get; }
    public int N { get; }
    public int PanelWidth { get; }
    public int Panels => (N + PanelWidth - 1) / PanelWidth;
    public SimdLevel Level { get; }
    internal NativeBuffer Data { get; }
    internal NativeBuffer Bias { get; }

    private PackedMatrix(int k, int n, SimdLevel level)
    {
        K = k; N = n; Level = level; PanelWidth = Gemm.PanelWidth(level);
        Data = new NativeBuffer((long)Panels * PanelWidth * k);
        Bias = new NativeBuffer((long)Panels * PanelWidth);
    }

    /// <summary>Packs a linear layer stored as timm does, weight [out, in]: B[k, n] = weight[n, k].</summary>
    public static PackedMatrix FromLinear(ReadOnlySpan<float> weightOutIn, int inDim, int outDim, ReadOnlySpan<float> bias, SimdLevel level)
    {
        if (weightOutIn.Length != inDim * outDim) throw new ArgumentException($"weight has {weightOutIn.Length} values, expected {outDim}x{inDim}");
        var p = new PackedMatrix(inDim, outDim, level);
        int w = p.PanelWidth;
        float* d = p.Data.Pointer;
        for (int n = 0; n < outDim; n++)
        {
            float* panel = d + (long)(n / w) * w * inDim + n % w;
            var row = weightOutIn.Slice(n * inDim, inDim);
            for (int k = 0; k < inDim; k++) panel[(long)k * w] = row[k];
        }
        p.SetBias(bias);
        return p;
    }

    /// <summary>Packs a row-major B [k, n] (weights already in input-major order).</summary>
    public static PackedMatrix FromRowMajor(ReadOnlySpan<float> b, int k, int n, ReadOnlySpan<float> bias, SimdLevel level)
    {
        if (b.Length != k * n) throw new ArgumentException($"matrix has {b.Length} values, expected {k}x{n}");
        var p = new PackedMatrix(k, n, level);
        fixed (float* src = b) Gemm.PackRowMajor(src, n, k, n, p.PanelWidth, p.Data.Pointer);
        p.SetBias(bias);
        return p;
    }

    private void SetBias(ReadOnlySpan<float> bias)
    {
        if (bias.IsEmpty) return;
        if (bias.Length != N) throw new ArgumentException($"bias has {bias.Length} values, expected {N}");
        bias.CopyTo(Bias.Span);
    }

    public void Dispose() { Data.Dispose(); Bias.Dispose(); }
}
