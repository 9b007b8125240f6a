using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// The int8 weights of a linear layer, B[k, n] = Weight[n, k], packed once for one <see cref="Int8Kernel"/> into
/// column panels of <see cref="PanelWidth"/>: panel p holds, for each group of <see cref="KGroup"/> k, 4 bytes per
/// column (4 int8, or 2 int16 for the vpmaddwd kernels), zero-padded past K and N, so the microkernel streams it
/// with one vector load per half panel. Per-column scale, bias and (VNNI) offset correction are padded alike.
/// </summary>
public sealed unsafe class Int8Matrix : IDisposable
{
    public int K { get; }
    public int N { get; }
    public Int8Kernel Kernel { get; }
    public int PanelWidth { get; }
    public int KGroup { get; }
    /// <summary>4-byte groups per column: ceil(K / KGroup).</summary>
    public int Groups { get; }
    public int Panels => (N + PanelWidth - 1) / PanelWidth;
    internal byte* Data => (byte*)_data.Pointer;
    internal float* Scale => _scale.Pointer;
    internal float* Bias => _bias.Pointer;
    /// <summary>Accumulator start per column: -128 * sum_k B[k, n] for the u8 x s8 kernels (activations offset to u8), else null.</summary>
    internal int* Correction => Int8Kernels.ActivationOffset(Kernel) != 0 ? (int*)_corr.Pointer : null;

    private readonly NativeBuffer _data, _scale, _bias, _corr;

    /// <summary>Vector width of the fp32 epilogue work (GELU): the engine's level, which may be wider than the kernel's (VNNI is 256-bit).</summary>
    public SimdLevel EpilogueLevel { get; }

    public Int8Matrix(QuantizedLinear layer, Int8Kernel kernel, SimdLevel? epilogueLevel = null)
    {
        EpilogueLevel = epilogueLevel ?? Int8Kernels.Level(kernel);
        SimdLevels.EnsureSupported(EpilogueLevel);
        if (!Int8Kernels.IsSupported(kernel)) throw new PlatformNotSupportedException($"int8 kernel {kernel} is not supported on this CPU");
        K = layer.In; N = layer.Out; Kernel = kernel;
        PanelWidth = Int8Kernels.PanelWidth(kernel);
        KGroup = Int8Kernels.KGroup(kernel);
        Groups = (K + KGroup - 1) / KGroup;
        int w = PanelWidth, padded = Panels * w;
        _data = new NativeBuffer((long)Panels * Groups * w); // 4 bytes per (group, column) = one float slot
        _scale = new NativeBuffer(padded);
        _bias = new NativeBuffer(padded);
        _corr = new NativeBuffer(padded);

        byte* d = Data;
        int* corr = (int*)_corr.Pointer;
        bool madd = Int8Kernels.IsMadd(kernel);
        for (int n = 0; n < N; n++)
        {
            byte* col = d + ((long)(n / w) * Groups * w + n % w) * 4;
            var row = layer.Weight.AsSpan(n * K, K);
            int sum = 0;
            for (int k = 0; k < K; k++)
            {
                sbyte q = row[k];
                // Beyond the rule vpmaddubsw would saturate silently: refuse it on every kernel, so all agree.
                if (q < -QuantizedLinear.WeightLevel || q > QuantizedLinear.WeightLevel)
                    throw new ArgumentException($"int8 weight {q} at [{n}, {k}] outside [-{QuantizedLinear.WeightLevel}, {QuantizedLinear.WeightLevel}]", nameof(layer));
                sum += q;
                byte* group = col + (long)(k / KGroup) * w * 4;
                if (madd) ((short*)group)[k % 2] = q;
                else ((sbyte*)group)[k % 4] = q;
            }
            corr[n] = -Int8Kernels.ActivationOffset(kernel) * sum;
            _scale.Pointer[n] = layer.Scale[n];
            _bias.Pointer[n] = layer.Bias[n];
        }
        // Padded columns: scale 1 so their (zero) outputs stay finite; the edge-tile path never stores them anyway.
        for (int n = N; n < padded; n++) _scale.Pointer[n] = 1f;
    }

    public void Dispose() { _data.Dispose(); _scale.Dispose(); _bias.Dispose(); _corr.Dispose(); }
}
