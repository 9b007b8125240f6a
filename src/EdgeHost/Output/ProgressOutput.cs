using System.Diagnostics;
using EdgeViT.Host.Evaluation;

namespace EdgeViT.Host.Output;

/// <summary>
/// Progress of the long commands: "edgevit: COMMAND: ..." lines on stderr, never stdout (so --json stays one line),
/// flushed at once, safe to call from several workers.
/// </summary>
public static class ProgressOutput
{
    /// <summary>A writer for one command's progress lines; a no-op without stderr.</summary>
    public static Action<string> For(TextWriter? stderr, string command) =>
        stderr is null ? _ => { } : line => { lock (stderr) { stderr.WriteLine($"edgevit: {command}: {line}"); stderr.Flush(); } };

    /// <summary>"N s elapsed, ETA M s" after <paramref name="done"/> of <paramref name="total"/> items since <paramref name="start"/> (a Stopwatch timestamp).</summary>
    public static string ElapsedAndEta(long start, int done, int total)
    {
        double s = Inputs.Ms(start, Stopwatch.GetTimestamp()) / 1000;
        return $"{s:F0} s elapsed, ETA {s / done * (total - done):F0} s";
    }
}
