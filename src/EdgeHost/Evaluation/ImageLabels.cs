namespace EdgeViT.Host.Evaluation;

/// <summary>Labels of the ImageNet-sample images, whose file names are "&lt;synset&gt;_&lt;words&gt;.JPEG".</summary>
public static class ImageLabels
{
    /// <summary>"n" followed by exactly 8 digits.</summary>
    public static bool IsSynsetId(ReadOnlySpan<char> text)
    {
        if (text.Length != 9 || text[0] != 'n') return false;
        foreach (char c in text[1..]) if (c is < '0' or > '9') return false;
        return true;
    }

    /// <summary>The synset id a file name starts with ("n01440764_tench.JPEG" -> "n01440764"), or null.</summary>
    public static string? SynsetOf(string pathOrFileName)
    {
        string name = Path.GetFileNameWithoutExtension(pathOrFileName);
        int underscore = name.IndexOf('_');
        string prefix = underscore < 0 ? name : name[..underscore];
        return IsSynsetId(prefix) ? prefix : null;
    }

    /// <summary>The class index of an image from its file name, or an <see cref="Commands.InputException"/> naming the file.</summary>
    public static int ClassOf(string path, SynsetTable synsets)
    {
        string file = Path.GetFileName(path);
        string synset = SynsetOf(path)
            ?? throw new Commands.InputException($"{file}: file name does not start with a synset id (expected nXXXXXXXX_words.JPEG)");
        return synsets.IndexOf(synset)
            ?? throw new Commands.InputException($"{file}: synset {synset} is not in {synsets.Source}");
    }
}
