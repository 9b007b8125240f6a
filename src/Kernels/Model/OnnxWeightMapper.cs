using System.Globalization;
using System.Text.RegularExpressions;

namespace EdgeViT.Kernels.Model;

/// <summary>Which initializer becomes which timm tensor, and how to lay it out.</summary>
internal sealed class WeightAssignment(string timmName, OnnxInitializer initializer, string origin)
{
    public string TimmName { get; } = timmName;
    public OnnxInitializer Initializer { get; } = initializer;
    /// <summary>What established the mapping, for messages: "its name" or "node '/qkv_3/MatMul'".</summary>
    public string Origin { get; set; } = origin;
    /// <summary>Stored [in,out] (MatMul, Gemm without transB): transpose to timm's [out,in].</summary>
    public bool Transpose { get; set; }
    /// <summary>Biases may be stored broadcastable ([1,out]); timm's are [out].</summary>
    public bool AsVector { get; set; }
}

/// <summary>
/// Maps ONNX initializers to timm names. Named initializers map by name (<see cref="TimmNames"/>);
/// anonymous linear weights (e.g. "onnx::MatMul_1178", stored [in,out]) map through the MatMul/Gemm
/// node that consumes them, whose name gives role and block ("/qkv_3/MatMul", "/blocks.3/attn/qkv/MatMul").
/// When node names say nothing, linear nodes are taken in graph order (qkv, proj, fc1, fc2 per block,
/// then head) and checked against shapes. Every tensor reached two ways must agree.
/// </summary>
internal sealed partial class OnnxWeightMapper
{
    private readonly OnnxModel _model;
    private readonly string _file;
    private readonly Dictionary<string, OnnxInitializer> _initializers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<OnnxNode>> _consumers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, WeightAssignment> _byTimmName = new(StringComparer.Ordinal);
    private readonly Dictionary<OnnxInitializer, WeightAssignment> _byInitializer = new(ReferenceEqualityComparer.Instance);

    /// <summary>A MatMul/Gemm whose weight is an initializer, i.e. a linear layer.</summary>
    private sealed record LinearUse(OnnxNode Node, OnnxInitializer Weight, bool StoredInOut, long In, long Out, OnnxInitializer? Bias);

    private OnnxWeightMapper(OnnxModel model, string file)
    {
        _model = model;
        _file = file;
        foreach (var init in model.Initializers)
            if (!_initializers.TryAdd(init.Name, init))
                throw ModelErrors.Fail(file, $"the graph has two initializers named '{init.Name}'");
        foreach (var node in model.Nodes)
            foreach (var input in node.Inputs)
            {
                if (!_consumers.TryGetValue(input, out var list)) _consumers[input] = list = [];
                list.Add(node);
            }
    }

    public static IReadOnlyCollection<WeightAssignment> Map(OnnxModel model, string file)
    {
        var mapper = new OnnxWeightMapper(model, file);
        mapper.MapByName();
        mapper.MapPatchConv();
        mapper.MapLinears();
        return mapper._byTimmName.Values;
    }

    private void MapByName()
    {
        foreach (var init in _model.Initializers)
            if (TimmNames.Canonicalize(init.Name) is { } timm)
                Assign(timm, init, "its name", transpose: false, asVector: false);
    }

    /// <summary>A ViT has exactly one convolution, the patch embedding; its weight maps whatever its name.</summary>
    private void MapPatchConv()
    {
        var convs = _model.Nodes.Where(n => n.OpType == "Conv" && Initializer(n.Input(1)) is { Dims.Length: 4 }).ToList();
        if (convs.Count != 1) return;
        var conv = convs[0];
        string origin = $"node '{conv.Display}'";
        Assign("patch_embed.proj.weight", Initializer(conv.Input(1))!, origin, transpose: false, asVector: false);
        if (Initializer(conv.Input(2)) is { } bias) Assign("patch_embed.proj.bias", bias, origin, transpose: false, asVector: true);
    }

    private void MapLinears()
    {
        var uses = _model.Nodes.Select(AsLinear).OfType<LinearUse>().ToList();
        if (uses.Count == 0) return;
        var modules = ModulesFromNodeNames(uses) ?? ModulesFromGraphOrder(uses);
        for (int i = 0; i < uses.Count; i++)
        {
            var use = uses[i];
            string origin = $"node '{use.Node.Display}'";
            Assign(modules[i] + ".weight", use.Weight, origin, transpose: use.StoredInOut, asVector: false);
            if (use.Bias is not null) Assign(modules[i] + ".bias", use.Bias, origin, transpose: false, asVector: true);
        }
    }

    private LinearUse? AsLinear(OnnxNode node)
    {
        if (node.OpType == "MatMul")
        {
            // y = x W with W stored [in,out]; the bias is a following Add.
            if (Initializer(node.Input(1)) is not { Dims.Length: 2 } w) return null;
            return new LinearUse(node, w, true, w.Dims[0], w.Dims[1], FindAddedBias(node, w.Dims[1]));
        }
        if (node.OpType == "Gemm")
        {
            if (Initializer(node.Input(1)) is not { Dims.Length: 2 } w) return null;
            // Anything but y = x W' + b would change the weights' meaning.
            if (node.IntAttributes.GetValueOrDefault("transA") != 0)
                throw Fail($"Gemm node '{node.Display}' has transA=1, which a linear layer never uses");
            foreach (var scale in new[] { "alpha", "beta" })
                if (node.FloatAttributes.TryGetValue(scale, out float v) && v != 1f)
                    throw Fail($"Gemm node '{node.Display}' has {scale}={v.ToString(CultureInfo.InvariantCulture)}; only 1 is supported");
            bool transB = node.IntAttributes.GetValueOrDefault("transB") != 0;
            long inDim = transB ? w.Dims[1] : w.Dims[0], outDim = transB ? w.Dims[0] : w.Dims[1];
            var bias = Initializer(node.Input(2));
            if (bias is not null && !IsVectorOf(bias, outDim))
                throw Fail($"Gemm node '{node.Display}' has bias '{bias.Name}' of shape {bias.ShapeText}, expected [{outDim}]");
            return new LinearUse(node, w, !transB, inDim, outDim, bias);
        }
        return null;
    }

    /// <summary>The bias initializer of "Add(MatMul(x, W), b)", if the MatMul's output feeds such an Add.</summary>
    private OnnxInitializer? FindAddedBias(OnnxNode matMul, long outDim)
    {
        if (matMul.Outputs.Count == 0 || !_consumers.TryGetValue(matMul.Outputs[0], out var consumers)) return null;
        foreach (var add in consumers.Where(n => n.OpType == "Add" && n.Inputs.Count == 2))
        {
            string other = add.Inputs[0] == matMul.Outputs[0] ? add.Inputs[1] : add.Inputs[0];
            if (Initializer(other) is { } b && IsVectorOf(b, outDim)) return b;
        }
        return null;
    }

    /// <summary>Module names from node names, or null when some linear node's name does not say its role.</summary>
    private string[]? ModulesFromNodeNames(List<LinearUse> uses)
    {
        var parsed = new (string Role, int? Block, int Suffix)[uses.Count];
        for (int i = 0; i < uses.Count; i++)
        {
            if (!TryParseLinearName(uses[i].Node.PathName, out var role, out var block, out int suffix)) return null;
            parsed[i] = (role, block, suffix);
        }

        // torch 1.13 names a module by its attribute name, numbering repeats: /qkv, /qkv_1, ... so a role's
        // k-th name (by that number) is block k. Ranking, not the raw number, survives a name taken elsewhere.
        var modules = new string[uses.Count];
        foreach (var group in Enumerable.Range(0, uses.Count)
                     .Where(i => parsed[i].Block is null && TimmNames.IsBlockRole(parsed[i].Role))
                     .GroupBy(i => parsed[i].Role))
        {
            var ordered = group.OrderBy(i => parsed[i].Suffix).ToList();
            for (int rank = 0; rank < ordered.Count; rank++)
            {
                if (rank > 0 && parsed[ordered[rank]].Suffix == parsed[ordered[rank - 1]].Suffix)
                    throw Fail($"nodes '{uses[ordered[rank - 1]].Node.Display}' and '{uses[ordered[rank]].Node.Display}' have the same module name; cannot tell their blocks apart");
                modules[ordered[rank]] = TimmNames.LinearModule(group.Key, rank);
            }
        }
        for (int i = 0; i < uses.Count; i++)
            modules[i] ??= TimmNames.LinearModule(parsed[i].Role, parsed[i].Block ?? 0);
        return modules;
    }

    /// <summary>
    /// Role and block from a node path: "/qkv_3/MatMul" (role qkv, suffix 3), "/blocks.3/attn/qkv/MatMul"
    /// or "/blocks/blocks.3/attn/qkv/MatMul" (block 3), "/head/Gemm".
    /// </summary>
    internal static bool TryParseLinearName(string path, out string role, out int? block, out int suffix)
    {
        role = ""; block = null; suffix = 0;
        var tokens = path.Split(['/', '.', ':'], StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i + 1 < tokens.Length; i++)
            if (tokens[i] == "blocks" && int.TryParse(tokens[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out int b))
                block = b;
        for (int i = tokens.Length - 1; i >= 0; i--)
        {
            var m = RoleToken().Match(tokens[i]);
            if (!m.Success) continue;
            role = m.Groups[1].Value;
            if (m.Groups[2].Success && !int.TryParse(m.Groups[2].Value, NumberStyles.None, CultureInfo.InvariantCulture, out suffix)) return false;
            return true;
        }
        return false;
    }

    [GeneratedRegex(@"^(qkv|proj|fc1|fc2|head_dist|head)(?:_(\d+))?$", RegexOptions.CultureInvariant)]
    private static partial Regex RoleToken();

    /// <summary>Without usable names: qkv, proj, fc1, fc2 per block, then head (and head_dist), by shape.</summary>
    private string[] ModulesFromGraphOrder(List<LinearUse> uses)
    {
        int heads = uses.Count % 4;
        if (heads is not (1 or 2) || uses.Count < 5)
            throw Fail($"node names do not identify the linear layers, and the graph's {uses.Count} MatMul/Gemm weights are not 4 per block plus 1 or 2 heads");
        long d = uses[0].In, mlp = uses[2].Out;
        var modules = new string[uses.Count];
        int depth = (uses.Count - heads) / 4;
        for (int b = 0; b < depth; b++)
        {
            modules[4 * b] = ExpectShape(uses[4 * b], "qkv", b, d, 3 * d);
            modules[4 * b + 1] = ExpectShape(uses[4 * b + 1], "proj", b, d, d);
            modules[4 * b + 2] = ExpectShape(uses[4 * b + 2], "fc1", b, d, mlp);
            modules[4 * b + 3] = ExpectShape(uses[4 * b + 3], "fc2", b, mlp, d);
        }
        long classes = uses[4 * depth].Out;
        modules[4 * depth] = ExpectShape(uses[4 * depth], "head", 0, d, classes);
        if (heads == 2) modules[4 * depth + 1] = ExpectShape(uses[4 * depth + 1], "head_dist", 0, d, classes);
        return modules;
    }

    private string ExpectShape(LinearUse use, string role, int block, long inDim, long outDim)
    {
        string module = TimmNames.LinearModule(role, block);
        if (use.In != inDim || use.Out != outDim)
            throw Fail($"mapping linear layers by graph order, node '{use.Node.Display}' (weight '{use.Weight.Name}' {use.Weight.ShapeText}) " +
                       $"should be {module} with {inDim} inputs and {outDim} outputs but has {use.In} and {use.Out}");
        return module;
    }

    private void Assign(string timmName, OnnxInitializer init, string origin, bool transpose, bool asVector)
    {
        if (_byInitializer.TryGetValue(init, out var existing))
        {
            if (existing.TimmName != timmName)
                throw Fail($"initializer '{init.Name}' is '{existing.TimmName}' by {existing.Origin} but '{timmName}' by {origin}");
            // The name gave the identity; the consuming node knows the layout.
            existing.Transpose |= transpose;
            existing.AsVector |= asVector;
            existing.Origin = $"{existing.Origin} and {origin}";
            return;
        }
        if (_byTimmName.TryGetValue(timmName, out var other))
            throw Fail($"'{timmName}' is given twice: by initializer '{other.Initializer.Name}' ({other.Origin}) and by initializer '{init.Name}' ({origin})");
        var assignment = new WeightAssignment(timmName, init, origin) { Transpose = transpose, AsVector = asVector };
        _byTimmName[timmName] = assignment;
        _byInitializer[init] = assignment;
    }

    private OnnxInitializer? Initializer(string? name) => name is not null ? _initializers.GetValueOrDefault(name) : null;

    /// <summary>[n], or a broadcastable [1,..,1,n].</summary>
    private static bool IsVectorOf(OnnxInitializer t, long n) =>
        t.Dims.Length >= 1 && t.Dims[^1] == n && t.Dims[..^1].All(x => x == 1);

    private ModelFormatException Fail(string fault) => ModelErrors.Fail(_file, fault);
}
