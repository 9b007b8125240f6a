namespace EdgeViT.Tests;

/// <summary>
/// Locates the shared model and images: $EDGEVIT_SHARED, else the first "shared" folder beside an ancestor
/// of the test binaries (the repo sits beside shared/). Tests fail, not skip, when it is absent.
/// </summary>
public static class SharedAssets
{
    public static string Root { get; } = Find();

    public static string ModelSafetensors => Path.Combine(Root, "models", "deit_tiny_patch16_224.safetensors");
    public static string ModelOnnx => Path.Combine(Root, "models", "deit_tiny_patch16_224.onnx");
    public static string ImagesDir => Path.Combine(Root, "data", "imagenet-sample", "images");
    public static string Synsets => Path.Combine(Root, "data", "imagenet-sample", "synsets.txt");

    /// <summary>The shared images sorted by file name (the order the even/odd split uses).</summary>
    public static string[] Images() => Directory.GetFiles(ImagesDir).Order(StringComparer.Ordinal).ToArray();

    private static string Find()
    {
        var env = Environment.GetEnvironmentVariable("EDGEVIT_SHARED");
        if (!string.IsNullOrEmpty(env))
            return Directory.Exists(env) ? Path.GetFullPath(env) : throw new DirectoryNotFoundException($"EDGEVIT_SHARED={env} does not exist");
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(Path.Combine(candidate, "models"))) return candidate;
        }
        throw new DirectoryNotFoundException("shared assets not found: set EDGEVIT_SHARED or place the repo beside shared/");
    }
}
