using EdgeViT.Host.Commands;

namespace EdgeViT.Host.Evaluation;

/// <summary>The images of a folder, by extension, sorted by file name (ordinal).</summary>
public static class ImageFolder
{
    public static readonly string[] Extensions = [".jpeg", ".jpg", ".png", ".bmp", ".webp"];

    public static bool IsImageFile(string path) =>
        Extensions.Contains(Path.GetExtension(path), StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Lists the images (not recursing) in file-name order; <paramref name="split"/> keeps the even- or
    /// odd-indexed ones (RCTP calibrates on even, evaluates on odd); <paramref name="limit"/> then keeps the
    /// first N. Empty -> <see cref="InputException"/>.
    /// </summary>
    public static IReadOnlyList<string> List(string dir, int? limit = null, string split = "all")
    {
        if (File.Exists(dir)) throw new InputException($"images path is a file, not a directory: {dir}");
        if (!Directory.Exists(dir)) throw new InputException($"images directory not found: {dir}");
        var files = Directory.EnumerateFiles(dir)
            .Where(f => IsImageFile(f) && !Path.GetFileName(f).StartsWith('.'))
            .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new InputException($"no images ({string.Join(", ", Extensions)}) in directory {dir}");
        files = split switch
        {
            "all" => files,
            "even" => files.Where((_, i) => i % 2 == 0).ToList(),
            "odd" => files.Where((_, i) => i % 2 == 1).ToList(),
            _ => throw new UsageException($"--split must be all, even or odd (got '{split}')"),
        };
        if (files.Count == 0) throw new InputException($"no images left in {dir} after --split {split}");
        return limit is int n && n < files.Count ? files.GetRange(0, n) : files;
    }
}
