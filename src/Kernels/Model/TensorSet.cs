namespace EdgeViT.Kernels.Model;

/// <summary>A named float32 tensor as read from a model file (row-major, shape as stored).</summary>
public sealed class NamedTensor(string name, int[] shape, float[] data)
{
    public string Name { get; } = name;
    public int[] Shape { get; } = shape;
    public float[] Data { get; } = data;
    public string ShapeText => "[" + string.Join(",", Shape) + "]";
}

/// <summary>
/// The tensors of one model file under timm's names, plus the file's string metadata.
/// Both loaders (safetensors, ONNX) produce this, so everything after loading is format-blind.
/// </summary>
public sealed class TensorSet(string source, IReadOnlyDictionary<string, NamedTensor> tensors, IReadOnlyDictionary<string, string> metadata)
{
    public string Source { get; } = source;
    public IReadOnlyDictionary<string, NamedTensor> Tensors { get; } = tensors;
    public IReadOnlyDictionary<string, string> Metadata { get; } = metadata;

    public NamedTensor Require(string name) =>
        Tensors.TryGetValue(name, out var t) ? t
        : throw new ModelFormatException($"{Path.GetFileName(Source)}: missing tensor '{name}'");

    public NamedTensor? Optional(string name) => Tensors.GetValueOrDefault(name);
}

/// <summary>A model or threshold file that cannot be used; the message is one line naming the file and the fault.</summary>
public sealed class ModelFormatException(string message) : Exception(message);
