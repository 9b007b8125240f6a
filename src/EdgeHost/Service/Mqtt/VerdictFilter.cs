namespace EdgeViT.Host.Service;

/// <summary>
/// Which verdicts go to &lt;base&gt;/verdict (Mqtt:Publish): <c>all</c>; <c>change</c>, when the top-1 class differs
/// from the previous verdict's; <c>match</c>, when the top-1 class is one of Mqtt:MatchClasses with a score of at
/// least Mqtt:MinScore. Thread-safe (the frame loop and HTTP both emit), allocation-free.
/// </summary>
public sealed class VerdictFilter
{
    public enum Mode { All, Change, Match }

    private readonly HashSet<int> _classes;
    private readonly double _minScore;
    private int _lastTop = -1;

    public Mode Kind { get; }

    public VerdictFilter(Mode mode, IEnumerable<int>? classes = null, double minScore = 0)
    {
        Kind = mode;
        _classes = [.. classes ?? []];
        _minScore = minScore;
    }

    /// <summary>Builds the filter from Mqtt:*; class names are synset ids of the loaded synsets or indices.</summary>
    public static VerdictFilter From(MqttOptions o, int classCount, Evaluation.SynsetTable? synsets)
    {
        var mode = o.Publish switch { MqttPublish.Change => Mode.Change, MqttPublish.Match => Mode.Match, _ => Mode.All };
        var classes = new List<int>();
        if (mode == Mode.Match)
            foreach (var raw in (o.MatchClasses ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (int.TryParse(raw, out int i) && i >= 0 && i < classCount) classes.Add(i);
                else if (synsets?.IndexOf(raw) is int s) classes.Add(s);
                else throw new ServiceConfigException($"Mqtt:MatchClasses: '{raw}' is neither a class index 0..{classCount - 1} nor a synset id of the Synsets file");
            }
        return new VerdictFilter(mode, classes, o.MinScore);
    }

    public bool ShouldPublish(Verdict v)
    {
        if (v.Count == 0) return false;
        int top = v.Classes[0];
        return Kind switch
        {
            Mode.Change => Interlocked.Exchange(ref _lastTop, top) != top,
            Mode.Match => _classes.Contains(top) && v.Scores[0] >= _minScore,
            _ => true,
        };
    }
}
