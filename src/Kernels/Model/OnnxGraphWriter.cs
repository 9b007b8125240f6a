using System.Runtime.InteropServices;
using EdgeViT.Kernels.Quant;

namespace EdgeViT.Kernels.Model;

/// <summary>
/// Writes a ViT/DeiT as an ONNX graph (opset 17, batch 1: input [1,3,H,W] "input", output [1,classes] "logits")
/// for ONNX Runtime. With int8 weights, every block linear layer is what onnxruntime's
/// <c>quantize_dynamic(per_channel=True)</c> writes: DynamicQuantizeLinear (per-tensor u8 activations) ->
/// MatMulInteger with int8 weights and per-column zero points -> Cast -> Mul by activation scale x per-channel
/// weight scale -> Add bias. Everything else (embedding, LayerNorm, attention, GELU, head) stays fp32, as in
/// EdgeViT's int8 engine.
/// </summary>
public sealed class OnnxGraphWriter
{
    private const int Float = 1, Int8 = 3, Int64 = 7; // TensorProto.DataType
    private readonly List<ProtoWriter> _nodes = [];
    private readonly List<ProtoWriter> _initializers = [];
    private int _next;

    /// <summary>Writes the model; <paramref name="quantized"/> null writes the plain fp32 graph.</summary>
    public static void Write(string path, VitWeights weights, QuantizedWeights? quantized)
    {
        if (quantized is not null && !quantized.BelongsTo(weights)) throw new ArgumentException("quantised weights belong to another model");
        var bytes = new OnnxGraphWriter().Build(weights, quantized);
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private byte[] Build(VitWeights w, QuantizedWeights? q)
    {
        var c = w.Config;
        int d = c.EmbedDim, t = c.Tokens, h = c.Heads, dh = c.HeadDim;

        // Patch embedding: Conv stride P, then [D, patches] -> [patches, D]; prefix tokens; position embedding.
        string conv = Node("Conv", ["input", Init("patch_w", [d, c.InChannels, c.PatchSize, c.PatchSize], w.PatchEmbed.Weight), Init("patch_b", [d], w.PatchEmbed.Bias)],
            a => a.Ints("kernel_shape", c.PatchSize, c.PatchSize).Ints("strides", c.PatchSize, c.PatchSize));
        string patches = Node("Transpose", [Node("Reshape", [conv, Shape(d, c.Patches)])], a => a.Ints("perm", 1, 0));
        var prefix = new List<string> { Init("cls_token", [1, d], w.ClassToken) };
        if (w.DistillationToken is { } dist) prefix.Add(Init("dist_token", [1, d], dist));
        string x = Node("Concat", [.. prefix, patches], a => a.Int("axis", 0));
        x = Node("Add", [x, Init("pos_embed", [t, d], w.PositionEmbedding)]);

        for (int l = 0; l < c.Depth; l++)
        {
            var b = w.Blocks[l];
            var qb = q?.Blocks[l];
            string p = $"blocks.{l}.";
            string n1 = LayerNorm(x, b.Norm1, p + "norm1", c.LayerNormEps);
            string qkv = Linear(n1, b.Qkv, qb?.Qkv, p + "qkv");
            // [T, 3D] -> [3, H, T, dh]
            string heads = Node("Transpose", [Node("Reshape", [qkv, Shape(t, 3, h, dh)])], a => a.Ints("perm", 1, 2, 0, 3));
            string qh = Node("Gather", [heads, Scalar64(p + "i0", 0)], a => a.Int("axis", 0));
            string kh = Node("Gather", [heads, Scalar64(p + "i1", 1)], a => a.Int("axis", 0));
            string vh = Node("Gather", [heads, Scalar64(p + "i2", 2)], a => a.Int("axis", 0));
            string scores = Node("Mul", [Node("MatMul", [qh, Node("Transpose", [kh], a => a.Ints("perm", 0, 2, 1))]), Init(p + "scale", [], [1f / MathF.Sqrt(dh)])]);
            string probs = Node("Softmax", [scores], a => a.Int("axis", -1));
            string attn = Node("Reshape", [Node("Transpose", [Node("MatMul", [probs, vh])], a => a.Ints("perm", 1, 0, 2)), Shape(t, d)]);
            x = Node("Add", [x, Linear(attn, b.Proj, qb?.Proj, p + "proj")]);

            string n2 = LayerNorm(x, b.Norm2, p + "norm2", c.LayerNormEps);
            string f1 = Linear(n2, b.Fc1, qb?.Fc1, p + "fc1");
            // Exact GELU: 0.5 x (1 + erf(x / sqrt 2))
            string erf = Node("Erf", [Node("Mul", [f1, Init(p + "rsqrt2", [], [1f / MathF.Sqrt(2f)])])]);
            string gelu = Node("Mul", [Node("Mul", [f1, Init(p + "half", [], [0.5f])]), Node("Add", [erf, Init(p + "one", [], [1f])])]);
            x = Node("Add", [x, Linear(gelu, b.Fc2, qb?.Fc2, p + "fc2")]);
        }

        string final = LayerNorm(x, w.FinalNorm, "norm", c.LayerNormEps);
        string cls = Node("Slice", [final, Vector64("cls_start", 0), Vector64("cls_end", 1), Vector64("cls_axes", 0)]);
        string logits = Linear(cls, w.Head, null, "head");
        if (w.HeadDistillation is { } hd)
        {
            string distRow = Node("Slice", [final, Vector64("dist_start", 1), Vector64("dist_end", 2), Vector64("dist_axes", 0)]);
            logits = Node("Mul", [Node("Add", [logits, Linear(distRow, hd, null, "head_dist")]), Init("half", [], [0.5f])]);
        }
        Node("Identity", [logits], output: "logits");

        var graph = new ProtoWriter();
        foreach (var n in _nodes) graph.Message(1, n);
        graph.String(2, q is null ? "edgevit-fp32" : "edgevit-int8-dynamic");
        foreach (var i in _initializers) graph.Message(5, i);
        graph.Message(11, ValueInfo("input", [1, c.InChannels, c.ImageSize, c.ImageSize]));
        graph.Message(12, ValueInfo("logits", [1, c.Classes]));

        var model = new ProtoWriter()
            .Int(1, 8) // ir_version 8 (ONNX 1.10+)
            .String(2, "edgevit")
            .Message(7, graph)
            .Message(8, new ProtoWriter().String(1, "").Int(2, 17));
        return model.ToArray();
    }

    private string LayerNorm(string x, Norm norm, string name, float eps) =>
        Node("LayerNormalization", [x, Init(name + ".g", [norm.Gamma.Length], norm.Gamma), Init(name + ".b", [norm.Beta.Length], norm.Beta)],
            a => a.Int("axis", -1).Float("epsilon", eps));

    /// <summary>y = x W^T + b: fp32 MatMul, or quantize_dynamic's int8 pattern.</summary>
    private string Linear(string x, Linear fp32, QuantizedLinear? int8, string name)
    {
        int k = fp32.In, n = fp32.Out;
        if (int8 is null)
        {
            var wt = new float[k * n];
            for (int o = 0; o < n; o++)
                for (int i = 0; i < k; i++) wt[i * n + o] = fp32.Weight[o * k + i];
            return Node("Add", [Node("MatMul", [x, Init(name + ".w", [k, n], wt)]), Init(name + ".bias", [n], fp32.Bias)]);
        }
        var qt = new byte[k * n];
        for (int o = 0; o < n; o++)
            for (int i = 0; i < k; i++) qt[i * n + o] = (byte)int8.Weight[o * k + i];
        string xq = Fresh(), xs = Fresh(), xz = Fresh();
        Node("DynamicQuantizeLinear", [x], outputs: [xq, xs, xz]);
        string wq = Init(name + ".w_quantized", [k, n], Int8, qt);
        string wz = Init(name + ".w_zero_point", [n], Int8, new byte[n]);
        string acc = Node("MatMulInteger", [xq, wq, xz, wz]);
        string f = Node("Cast", [acc], a => a.Int("to", Float));
        string scale = Node("Mul", [xs, Init(name + ".w_scale", [n], int8.Scale)]);
        return Node("Add", [Node("Mul", [f, scale]), Init(name + ".bias", [n], int8.Bias)]);
    }

    // ---- graph building ----------------------------------------------------------------------------------------

    private string Fresh() => $"t{_next++}";

    private string Node(string op, string[] inputs, Action<Attributes>? attributes = null, string? output = null, string[]? outputs = null)
    {
        outputs ??= [output ?? Fresh()];
        var node = new ProtoWriter();
        foreach (var i in inputs) node.String(1, i);
        foreach (var o in outputs) node.String(2, o);
        node.String(3, $"{op}_{_nodes.Count}");
        node.String(4, op);
        if (attributes is not null) attributes(new Attributes(node));
        _nodes.Add(node);
        return outputs[0];
    }

    private string Init(string name, int[] dims, float[] data) => Init(name, dims, Float, MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    private string Init(string name, int[] dims, int type, byte[] raw)
    {
        var tensor = new ProtoWriter();
        if (dims.Length > 0) tensor.PackedInts(1, dims.Select(x => (long)x));
        tensor.Int(2, type).String(8, name).Bytes(9, raw);
        _initializers.Add(tensor);
        return name;
    }

    private string Shape(params long[] dims) => Init($"shape_{_initializers.Count}", [dims.Length], Int64, MemoryMarshal.AsBytes(dims.AsSpan()).ToArray());
    private string Vector64(string name, long value) => Init(name, [1], Int64, BitConverter.GetBytes(value));
    private string Scalar64(string name, long value) => Init(name, [], Int64, BitConverter.GetBytes(value));

    private static ProtoWriter ValueInfo(string name, int[] dims)
    {
        var shape = new ProtoWriter();
        foreach (var dim in dims) shape.Message(1, new ProtoWriter().Int(1, dim));
        var tensorType = new ProtoWriter().Int(1, Float).Message(2, shape);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }

    private readonly struct Attributes(ProtoWriter node)
    {
        // AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7).
        public Attributes Int(string name, long value) { node.Message(5, new ProtoWriter().String(1, name).Int(3, value).Int(20, 2)); return this; }
        public Attributes Float(string name, float value) { node.Message(5, new ProtoWriter().String(1, name).Float(2, value).Int(20, 1)); return this; }
        public Attributes Ints(string name, params long[] values)
        {
            var a = new ProtoWriter().String(1, name);
            foreach (var v in values) a.Int(8, v); // unpacked: what the ONNX reference writers emit
            node.Message(5, a.Int(20, 7));
            return this;
        }
    }
}
