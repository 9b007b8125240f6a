using EdgeViT.Host.Commands;

namespace EdgeViT.Host.Evaluation;

/// <summary>One class: its WordNet id and its words ("n01440764", "tench, Tinca tinca").</summary>
public sealed record Synset(string Id, string Words);

/// <summary>
/// The class list of a synsets file: line i (0-based) is "nXXXXXXXX words" for class i, the ImageNet-1k order
/// used by timm and torchvision. Blank lines are only allowed at the end.
/// </summary>
public sealed class SynsetTable
{
    private readonly Dictionary<string, int> _index;

    public IReadOnlyList<Synset> Classes { get; }
    public string Source { get; }
    public int Count => Classes.Count;

    private SynsetTable(string source, List<Synset> classes)
    {
        Source = source;
        Classes = classes;
        _index = new Dictionary<string, int>(classes.Count, StringComparer.Ordinal);
        for (int i = 0; i < classes.Count; i++)
            if (!_index.TryAdd(classes[i].Id, i))
                throw new InputException($"{source}: synset {classes[i].Id} appears twice (lines {_index[classes[i].Id] + 1} and {i + 1})");
    }

    public Synset this[int classIndex] => Classes[classIndex];

    /// <summary>The class index of a synset id, or null when the file does not list it.</summary>
    public int? IndexOf(string synsetId) => _index.TryGetValue(synsetId, out int i) ? i : null;

    public static SynsetTable Load(string path)
    {
        if (Directory.Exists(path)) throw new InputException($"synsets file is a directory: {path}");
        if (!File.Exists(path)) throw new InputException($"synsets file not found: {path}");
        string[] lines;
        try { lines = File.ReadAllLines(path); }
        catch (IOException ex) { throw new InputException($"cannot read synsets file {path}: {ex.Message}", ex); }
        return Parse(lines, path);
    }

    /// <summary>Parses synsets lines; <paramref name="source"/> names the file in error messages.</summary>
    public static SynsetTable Parse(IReadOnlyList<string> lines, string source)
    {
        int count = lines.Count;
        while (count > 0 && string.IsNullOrWhiteSpace(lines[count - 1])) count--;
        if (count == 0) throw new InputException($"{source}: no synsets (empty file)");

        var classes = new List<Synset>(count);
        for (int i = 0; i < count; i++)
        {
            string line = lines[i].Trim();
            int space = line.IndexOfAny([' ', '\t']);
            string id = space < 0 ? line : line[..space];
            string words = space < 0 ? "" : line[(space + 1)..].Trim();
            if (!ImageLabels.IsSynsetId(id))
                throw new InputException($"{source}:{i + 1}: expected 'nXXXXXXXX words', got '{Truncate(line)}'");
            classes.Add(new Synset(id, words.Length == 0 ? id : words));
        }
        return new SynsetTable(source, classes);
    }

    private static string Truncate(string s) => s.Length <= 60 ? s : s[..57] + "...";
}
