namespace EdgeViT.Kernels.Model;

/// <summary>Loads a ViT/DeiT from .safetensors or .onnx (chosen by content, not only by extension).</summary>
public static class ModelLoader
{
    // CONTRACT STUB: throws FileNotFoundException (missing path) or ModelFormatException (one-line reason).
    public static VitWeights Load(string path) => throw new NotImplementedException();
}
