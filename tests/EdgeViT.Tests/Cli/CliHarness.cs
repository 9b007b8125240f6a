using Xunit;
using HostCli = EdgeViT.Host.Cli;

namespace EdgeViT.Tests.Cli;

/// <summary>What one in-process run of the CLI printed and returned.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
    public string[] StdoutLines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}--- stderr\n{Stderr}";
}

public static class CliHarness
{
    public const string ErrorPrefix = "edgevit: error: ";

    /// <summary>
    /// Runs the CLI in-process. `run` reads no machine state: no /etc/edgevit, and an empty environment unless
    /// <see cref="RunWithEnvironment"/> gives one.
    /// </summary>
    public static CliResult Run(params string[] args) => RunWithEnvironment(new Dictionary<string, string?>(), args);

    public static CliResult RunWithEnvironment(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var hermetic = new EdgeViT.Host.Service.ServiceHostSettings
        {
            SystemConfigDirectory = Path.Combine(Path.GetTempPath(), "edgevit-tests-no-etc"),
            Environment = environment,
        };
        int code = HostCli.Run(args, stdout, stderr, hermetic);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Non-zero exit, exactly one stderr line "edgevit: error: ..." that contains every <paramref name="mentions"/>, no stack trace, not the catch-all "unexpected".</summary>
    public static string AssertOneErrorLine(CliResult result, params string[] mentions)
    {
        Assert.True(result.ExitCode != 0, $"expected a non-zero exit code\n{result}");
        var lines = result.StderrLines;
        Assert.True(lines.Length == 1, $"expected exactly one stderr line\n{result}");
        Assert.StartsWith(ErrorPrefix, lines[0]);
        Assert.DoesNotContain("   at ", result.Stderr);
        // A handled input or usage error, not the catch-all for surprises.
        Assert.DoesNotContain("unexpected ", lines[0]);
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
        return lines[0];
    }
}

/// <summary>A temporary folder deleted after the test.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("edgevit-cli-test-").FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
