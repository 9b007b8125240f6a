using Xunit;
using System.Diagnostics;

namespace EdgeViT.Tests.Cli;

/// <summary>The real binary: exit code of the process and a clean stderr (no unhandled-exception dump).</summary>
public class CliProcessTests
{
    /// <summary>edgevit.dll as built beside the tests (the test project references EdgeHost).</summary>
    public static string EdgevitDll
    {
        get
        {
            string beside = Path.Combine(AppContext.BaseDirectory, "edgevit.dll");
            if (File.Exists(beside)) return beside;
            throw new FileNotFoundException("edgevit.dll is not beside the test binaries; build the solution first", beside);
        }
    }

    public static (int ExitCode, string Stdout, string Stderr) RunProcess(params string[] args)
    {
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(EdgevitDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("EDGEVIT_DEBUG");
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("edgevit did not exit within 2 minutes");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void MissingModel_ExitCodeAndOneCleanStderrLine()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = RunProcess("predict", "--model", tmp.File("absent.safetensors"), SharedAssets.Images()[0], "--json");
        Assert.Equal(1, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"stderr:\n{stderr}");
        Assert.StartsWith(CliHarness.ErrorPrefix, lines[0]);
        Assert.Contains("absent.safetensors", lines[0]);
        Assert.DoesNotContain("Unhandled exception", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void UsageError_ExitCode2()
    {
        var (code, _, stderr) = RunProcess("predict", "--model", SharedAssets.ModelSafetensors, SharedAssets.Images()[0], "--threads", "0");
        Assert.Equal(2, code);
        Assert.StartsWith(CliHarness.ErrorPrefix, stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
