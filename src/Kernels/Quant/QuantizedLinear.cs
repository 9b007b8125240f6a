using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// A linear layer with int8 weights, symmetric per output channel: W[n, k] ≈ Weight[n, k] * Scale[n], with
/// Weight in [-<see cref="WeightLevel"/>, <see cref="WeightLevel"/>]. The bias stays fp32. Layout as timm's:
/// Weight [Out, In] row-major.
/// </summary>
public sealed record QuantizedLinear(int In, int Out, sbyte[] Weight, float[] Scale, float[] Bias)
{
    /// <summary>
    /// Weights use 7 bits, [-64, 64], on every ISA (one rule, so int8 logits are the same on every kernel): AVX2's
    /// vpmaddubsw adds two u8 x s8 products into a saturating int16, and with activations as u8 = q + 128 (up to 255)
    /// 2 * 255 * 64 = 32640 fits where 2 * 255 * 127 would not. Dropping the weights' bit rather than the
    /// activations' was chosen on imagenet-sample (agreement with fp32 top-1 98.5 % vs 97.3 %, KL 0.0028 vs 0.0055).
    /// </summary>
    public const int WeightLevel = 64;
    /// <summary>Activations (per token, at run time) keep 8 bits: q in [-127, 127].</summary>
    public const int ActivationLevel = 127;

    /// <summary>Symmetric per-channel quantisation: scale = max|w| / 64, q = round-half-even(w / scale).</summary>
    public static QuantizedLinear Quantize(Linear linear)
    {
        int k = linear.In, n = linear.Out;
        var q = new sbyte[k * n];
        var scale = new float[n];
        for (int o = 0; o < n; o++)
        {
            var row = linear.Weight.AsSpan(o * k, k);
            float amax = 0f;
            foreach (float w in row) amax = MathF.Max(amax, MathF.Abs(w));
            float s = amax > 0f ? amax / WeightLevel : 1f;
            scale[o] = s;
            for (int i = 0; i < k; i++)
                q[o * k + i] = (sbyte)Math.Clamp(MathF.Round(row[i] / s, MidpointRounding.ToEven), -WeightLevel, WeightLevel);
        }
        return new QuantizedLinear(k, n, q, scale, (float[])linear.Bias.Clone());
    }

    /// <summary>The fp32 weights this layer stands for (q * scale), [Out, In].</summary>
    public float[] Dequantize()
    {
        var w = new float[Weight.Length];
        for (int o = 0; o < Out; o++)
            for (int i = 0; i < In; i++) w[o * In + i] = Weight[o * In + i] * Scale[o];
        return w;
    }

    /// <summary>Checks shapes and the [-64, 64] range (a loaded file must not smuggle in a weight that saturates vpmaddubsw).</summary>
    public void Validate(string name)
    {
        if (In <= 0 || Out <= 0) throw new InvalidDataException($"{name}: bad shape [{Out},{In}]");
        if (Weight.Length != In * Out) throw new InvalidDataException($"{name}: {Weight.Length} weights, expected {Out}x{In}");
        if (Scale.Length != Out || Bias.Length != Out) throw new InvalidDataException($"{name}: {Scale.Length} scales and {Bias.Length} biases, expected {Out}");
        foreach (var s in Scale)
            if (!float.IsFinite(s) || s <= 0f) throw new InvalidDataException($"{name}: weight scale {s} is not a positive finite number");
        foreach (var b in Bias)
            if (!float.IsFinite(b)) throw new InvalidDataException($"{name}: bias {b} is not finite");
        foreach (var w in Weight)
            if (w < -WeightLevel || w > WeightLevel) throw new InvalidDataException($"{name}: weight {w} outside [-{WeightLevel}, {WeightLevel}]");
    }
}

/// <summary>The int8 layers of a ViT: per block qkv, proj, fc1, fc2. Everything else (embedding, norms, head) stays fp32.</summary>
public sealed record QuantizedBlock(QuantizedLinear Qkv, QuantizedLinear Proj, QuantizedLinear Fc1, QuantizedLinear Fc2)
{
    public IEnumerable<(string Name, QuantizedLinear Layer)> Layers(int block)
    {
        yield return ($"blocks.{block}.attn.qkv", Qkv);
        yield return ($"blocks.{block}.attn.proj", Proj);
        yield return ($"blocks.{block}.mlp.fc1", Fc1);
        yield return ($"blocks.{block}.mlp.fc2", Fc2);
    }
}

/// <summary>A model's int8 weights, bound to the fingerprint of the fp32 model they were made from.</summary>
public sealed class QuantizedWeights
{
    private readonly VitWeights? _madeFrom;
    private string? _fingerprint;

    public QuantizedWeights(string modelFingerprint, QuantizedBlock[] blocks) { _fingerprint = modelFingerprint; Blocks = blocks; }

    private QuantizedWeights(VitWeights madeFrom, QuantizedBlock[] blocks) { _madeFrom = madeFrom; Blocks = blocks; }

    public QuantizedBlock[] Blocks { get; }

    /// <summary>SHA-256 fingerprint of the fp32 model (computed only when asked: hashing needs the platform's crypto).</summary>
    public string ModelFingerprint => _fingerprint ??= _madeFrom!.Fingerprint;

    /// <summary>True when these are the weights of <paramref name="weights"/> (same object, or same fingerprint).</summary>
    public bool BelongsTo(VitWeights weights) => ReferenceEquals(_madeFrom, weights) || ModelFingerprint == weights.Fingerprint;

    public static QuantizedWeights Quantize(VitWeights weights) => new(weights,
        weights.Blocks.Select(b => new QuantizedBlock(
            QuantizedLinear.Quantize(b.Qkv), QuantizedLinear.Quantize(b.Proj),
            QuantizedLinear.Quantize(b.Fc1), QuantizedLinear.Quantize(b.Fc2))).ToArray());

    public IEnumerable<(string Name, QuantizedLinear Layer)> Layers() => Blocks.SelectMany((b, i) => b.Layers(i));
}
