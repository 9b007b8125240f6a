using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace EdgeViT.Kernels.Model;

/// <summary>A linear layer in timm's layout: weight [Out, In] row-major, bias [Out].</summary>
public sealed record Linear(int In, int Out, float[] Weight, float[] Bias);

/// <summary>LayerNorm affine parameters.</summary>
public sealed record Norm(float[] Gamma, float[] Beta);

public sealed record VitBlockWeights(Norm Norm1, Linear Qkv, Linear Proj, Norm Norm2, Linear Fc1, Linear Fc2);

/// <summary>
/// The validated weights of a ViT/DeiT: every shape checked against one inferred <see cref="VitConfig"/>.
/// Format-blind: built from a <see cref="TensorSet"/> with timm names.
/// </summary>
public sealed class VitWeights
{
    public required VitConfig Config { get; init; }
    /// <summary>Patch projection as a linear layer: [EmbedDim, C*P*P] with the (c, y, x) order of the conv kernel.</summary>
    public required Linear PatchEmbed { get; init; }
    public required float[] ClassToken { get; init; }
    public float[]? DistillationToken { get; init; }
    /// <summary>[Tokens, EmbedDim].</summary>
    public required float[] PositionEmbedding { get; init; }
    public required VitBlockWeights[] Blocks { get; init; }
    public required Norm FinalNorm { get; init; }
    public required Linear Head { get; init; }
    public Linear? HeadDistillation { get; init; }
    /// <summary>Where the weights came from (a path, or "random(seed)").</summary>
    public string Source { get; init; } = "";

    private string? _fingerprint;

    /// <summary>
    /// SHA-256 over the canonical weights (names, shapes and float data in a fixed order), so the same
    /// model reads the same from .safetensors and .onnx. Threshold files are bound to it.
    /// </summary>
    public string Fingerprint => _fingerprint ??= ComputeFingerprint();

    public static VitWeights FromTensors(TensorSet set)
    {
        string file = Path.GetFileName(set.Source);
        var patch = set.Require("patch_embed.proj.weight");
        if (patch.Shape.Length != 4 || patch.Shape[2] != patch.Shape[3])
            throw new ModelFormatException($"{file}: patch_embed.proj.weight has shape {patch.ShapeText}, expected [D,C,P,P]");
        int d = patch.Shape[0], inCh = patch.Shape[1], p = patch.Shape[3];

        int depth = 0;
        while (set.Tensors.ContainsKey($"blocks.{depth}.attn.qkv.weight")) depth++;
        if (depth == 0) throw new ModelFormatException($"{file}: missing tensor 'blocks.0.attn.qkv.weight'");

        var pos = set.Require("pos_embed");
        bool hasDist = set.Optional("dist_token") is not null;
        int prefix = hasDist ? 2 : 1;
        if (pos.Shape.Length != 3 || pos.Shape[0] != 1 || pos.Shape[2] != d)
            throw new ModelFormatException($"{file}: pos_embed has shape {pos.ShapeText}, expected [1,T,{d}]");
        int patches = pos.Shape[1] - prefix;
        int grid = (int)Math.Round(Math.Sqrt(patches));
        if (patches <= 0 || grid * grid != patches)
            throw new ModelFormatException($"{file}: pos_embed has {pos.Shape[1]} tokens, not {prefix} + a square number of patches");
        int imageSize = grid * p;
        if (set.Metadata.TryGetValue("img_size", out var imgText) && int.TryParse(imgText, NumberStyles.Integer, CultureInfo.InvariantCulture, out int metaImg) && metaImg != imageSize)
            throw new ModelFormatException($"{file}: metadata img_size={metaImg} disagrees with pos_embed ({grid}x{grid} patches of {p} = {imageSize})");

        var head = set.Require("head.weight");
        if (head.Shape.Length != 2 || head.Shape[1] != d)
            throw new ModelFormatException($"{file}: head.weight has shape {head.ShapeText}, expected [classes,{d}]");
        int classes = head.Shape[0];

        var fc1 = set.Require("blocks.0.mlp.fc1.weight");
        if (fc1.Shape.Length != 2) throw new ModelFormatException($"{file}: blocks.0.mlp.fc1.weight has shape {fc1.ShapeText}, expected [mlp,{d}]");
        int mlp = fc1.Shape[0];

        int heads = InferHeads(set, d, file);
        float eps = 1e-6f;
        if (set.Metadata.TryGetValue("layer_norm_eps", out var epsText) && float.TryParse(epsText, NumberStyles.Float, CultureInfo.InvariantCulture, out float e))
            eps = e;

        var config = new VitConfig(d, depth, heads, p, imageSize, classes, mlp, hasDist, eps, inCh);
        var reader = new ShapeChecker(set, file);

        var blocks = new VitBlockWeights[depth];
        for (int i = 0; i < depth; i++)
        {
            string b = $"blocks.{i}.";
            blocks[i] = new VitBlockWeights(
                reader.Norm(b + "norm1", d),
                reader.Linear(b + "attn.qkv", d, 3 * d),
                reader.Linear(b + "attn.proj", d, d),
                reader.Norm(b + "norm2", d),
                reader.Linear(b + "mlp.fc1", d, mlp),
                reader.Linear(b + "mlp.fc2", mlp, d));
        }

        return new VitWeights
        {
            Config = config,
            PatchEmbed = new Linear(inCh * p * p, d, patch.Data, reader.Vector("patch_embed.proj.bias", d)),
            ClassToken = reader.Exact("cls_token", [1, 1, d]),
            DistillationToken = hasDist ? reader.Exact("dist_token", [1, 1, d]) : null,
            PositionEmbedding = pos.Data,
            Blocks = blocks,
            FinalNorm = reader.Norm("norm", d),
            Head = reader.Linear("head", d, classes),
            HeadDistillation = hasDist && set.Optional("head_dist.weight") is not null ? reader.Linear("head_dist", d, classes) : null,
            Source = set.Source,
        };
    }

    private static int InferHeads(TensorSet set, int d, string file)
    {
        if (set.Metadata.TryGetValue("num_heads", out var text) && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int h))
        {
            if (h <= 0 || d % h != 0) throw new ModelFormatException($"{file}: metadata num_heads={h} does not divide embed dim {d}");
            return h;
        }
        // Shapes alone cannot tell the head count; timm's ViT/DeiT use 64-wide heads.
        if (d % 64 == 0) return d / 64;
        throw new ModelFormatException($"{file}: cannot infer the number of heads for embed dim {d}; add num_heads to the metadata");
    }

    private readonly struct ShapeChecker(TensorSet set, string file)
    {
        public float[] Exact(string name, int[] shape)
        {
            var t = set.Require(name);
            if (!t.Shape.AsSpan().SequenceEqual(shape))
                throw new ModelFormatException($"{file}: {name} has shape {t.ShapeText}, expected [{string.Join(",", shape)}]");
            return t.Data;
        }
        public float[] Vector(string name, int n) => Exact(name, [n]);
        public Norm Norm(string prefix, int d) => new(Vector(prefix + ".weight", d), Vector(prefix + ".bias", d));
        public Linear Linear(string prefix, int inDim, int outDim) =>
            new(inDim, outDim, Exact(prefix + ".weight", [outDim, inDim]), Vector(prefix + ".bias", outDim));
    }

    /// <summary>Canonical (name, tensor) pairs in a fixed order; used by the fingerprint and by writers.</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> CanonicalTensors()
    {
        var c = Config;
        yield return ("patch_embed.proj.weight", [c.EmbedDim, c.InChannels, c.PatchSize, c.PatchSize], PatchEmbed.Weight);
        yield return ("patch_embed.proj.bias", [c.EmbedDim], PatchEmbed.Bias);
        yield return ("cls_token", [1, 1, c.EmbedDim], ClassToken);
        if (DistillationToken is not null) yield return ("dist_token", [1, 1, c.EmbedDim], DistillationToken);
        yield return ("pos_embed", [1, c.Tokens, c.EmbedDim], PositionEmbedding);
        for (int i = 0; i < Blocks.Length; i++)
        {
            var b = Blocks[i];
            string p = $"blocks.{i}.";
            foreach (var (n, norm) in new[] { ("norm1", b.Norm1), ("norm2", b.Norm2) })
            {
                yield return (p + n + ".weight", [c.EmbedDim], norm.Gamma);
                yield return (p + n + ".bias", [c.EmbedDim], norm.Beta);
            }
            foreach (var (n, lin) in new[] { ("attn.qkv", b.Qkv), ("attn.proj", b.Proj), ("mlp.fc1", b.Fc1), ("mlp.fc2", b.Fc2) })
            {
                yield return (p + n + ".weight", [lin.Out, lin.In], lin.Weight);
                yield return (p + n + ".bias", [lin.Out], lin.Bias);
            }
        }
        yield return ("norm.weight", [c.EmbedDim], FinalNorm.Gamma);
        yield return ("norm.bias", [c.EmbedDim], FinalNorm.Beta);
        yield return ("head.weight", [Head.Out, Head.In], Head.Weight);
        yield return ("head.bias", [Head.Out], Head.Bias);
        if (HeadDistillation is not null)
        {
            yield return ("head_dist.weight", [HeadDistillation.Out, HeadDistillation.In], HeadDistillation.Weight);
            yield return ("head_dist.bias", [HeadDistillation.Out], HeadDistillation.Bias);
        }
    }

    private string ComputeFingerprint()
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, shape, data) in CanonicalTensors())
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name + "[" + string.Join(",", shape) + "]"));
            sha.AppendData(MemoryMarshal.AsBytes(data.AsSpan()));
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>Random weights of a given shape (timm-like init scales), for benchmarks and tests.</summary>
    public static VitWeights Random(VitConfig c, int seed)
    {
        var rng = new Random(seed);
        float[] Rand(int n, float std) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(NextGaussian(rng) * std); return a; }
        Linear Lin(int i, int o) => new(i, o, Rand(i * o, 0.02f * 2.5f), Rand(o, 0.02f));
        Norm Nrm(int d) => new(Rand(d, 0.1f).Select(x => 1f + x).ToArray(), Rand(d, 0.05f));
        var blocks = Enumerable.Range(0, c.Depth).Select(_ => new VitBlockWeights(
            Nrm(c.EmbedDim), Lin(c.EmbedDim, 3 * c.EmbedDim), Lin(c.EmbedDim, c.EmbedDim),
            Nrm(c.EmbedDim), Lin(c.EmbedDim, c.MlpDim), Lin(c.MlpDim, c.EmbedDim))).ToArray();
        return new VitWeights
        {
            Config = c,
            PatchEmbed = Lin(c.PatchVectorLength, c.EmbedDim),
            ClassToken = Rand(c.EmbedDim, 0.5f),
            DistillationToken = c.HasDistillationToken ? Rand(c.EmbedDim, 0.5f) : null,
            PositionEmbedding = Rand(c.Tokens * c.EmbedDim, 0.1f),
            Blocks = blocks,
            FinalNorm = Nrm(c.EmbedDim),
            Head = Lin(c.EmbedDim, c.Classes),
            HeadDistillation = c.HasDistillationToken ? Lin(c.EmbedDim, c.Classes) : null,
            Source = $"random({seed})",
        };
    }

    private static double NextGaussian(Random rng)
    {
        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
