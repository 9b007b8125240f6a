using EdgeViT.Host.Service;
using EdgeViT.Tests.Cli;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>
/// Start-up configuration: invalid values stop `edgevit run` with exactly one "edgevit: error:" line naming the key
/// (through the real CLI, in-process); layering order; reload without restart.
/// </summary>
[Collection(ServiceHostCollection.Name)]
public class ConfigurationTests
{
    private static readonly string Model = "Model=" + SharedAssets.ModelSafetensors;
    private const string LoopbackAnyPort = "Http:Urls=http://127.0.0.1:0";

    private static string OneLine(CliResult r, int exitCode, params string[] expected)
    {
        string line = CliHarness.AssertOneErrorLine(r, expected);
        Assert.Equal(exitCode, r.ExitCode);
        Assert.Equal("", r.Stdout);
        return line;
    }

    [Theory(Timeout = 60_000)]
    [InlineData("Budget:TargetP95Ms=-5", "Budget:TargetP95Ms must be > 0 (got -5)")]
    [InlineData("Budget:Target=-0.5", "Budget:Target must be > 0 (got -0.5)")]
    [InlineData("Budget:Target=1.5", "Budget:Target must be <= 1 (got 1.5)")]
    [InlineData("Budget:Mode=sometimes", "Budget:Mode must be one of flops|latency|fixed (got 'sometimes')")]
    [InlineData("Budget:Mode=7", "Budget:Mode must be one of flops|latency|fixed (got '7')")]
    [InlineData("Budget:FlopsWindow=100000000", "Budget:FlopsWindow must be <= 10000 (got 100000000)")]
    [InlineData("Input:MaxPixels=0", "Input:MaxPixels must be > 0 (got 0)")]
    [InlineData("Source:Kind=webcam", "Source:Kind must be one of v4l2|libcamera|ffmpeg|folder|synthetic|none (got 'webcam')")]
    [InlineData("Trigger:Mode=sometimes", "Trigger:Mode must be one of continuous|interval|gpio|http (got 'sometimes')")]
    [InlineData("Threads=0", "Threads must be > 0 (got 0)")]
    [InlineData("Precision=int4", "Precision must be one of fp32|int8 (got 'int4')")]
    [InlineData("Budget:Target=abc", "Budget:Target must be a number (got 'abc')")]
    [InlineData("Source:Kind=folder", "Source:Folder is required when Source:Kind is folder")]
    [InlineData("Trigger:Mode=gpio", "Trigger:Gpio:Pin is required when Trigger:Mode is gpio (got -1)")]
    [InlineData("Trigger:StandbyAfterMs=-1", "Trigger:StandbyAfterMs must be >= 0 (got -1)")]
    [InlineData("Results:Sink=file", "Results:Path is required when Results:Sink is file")]
    [InlineData("Http:Urls=ftp://x", "Http:Urls has an invalid URL (got 'ftp://x')")]
    public async Task AnInvalidValueStopsStartUpWithOneLineNamingTheKey(string setting, string expected)
    {
        await Task.Yield();
        var r = CliHarness.Run("run", Model, LoopbackAnyPort, setting);
        OneLine(r, 2, expected);
    }

    [Fact]
    public void AConfigFileIsValidatedTheSameWay()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("edgevit.json"), """{ "Budget": { "Mode": "latency", "TargetP95Ms": -5 }, "Source": { "Kind": "camera" } }""");
        var r = CliHarness.Run("run", "--config", tmp.File("edgevit.json"), Model, LoopbackAnyPort);
        string line = OneLine(r, 2, "Budget:TargetP95Ms must be > 0 (got -5)");
        Assert.Contains("Source:Kind must be one of", line); // every problem, still one line

        File.WriteAllText(tmp.File("broken.json"), """{ "Budget": { "Mode": """);
        OneLine(CliHarness.Run("run", "--config", tmp.File("broken.json")), 2, "broken.json: not valid JSON");
        OneLine(CliHarness.Run("run", "--config", tmp.File("missing.json")), 2, "--config file not found");
    }

    [Fact]
    public void EnvironmentVariablesAreValidatedToo()
    {
        var env = new Dictionary<string, string?> { ["EDGEVIT__Budget__Hysteresis"] = "2" };
        OneLine(CliHarness.RunWithEnvironment(env, "run", Model, LoopbackAnyPort), 2, "Budget:Hysteresis must be <= 0.9 (got 2)");
    }

    [Theory(Timeout = 60_000)]
    [InlineData("Http:Url=http://127.0.0.1:0", "unknown setting 'Http:Url' (did you mean 'Http:Urls'?)")]
    [InlineData("Budget:Mod=latency", "unknown setting 'Budget:Mod' (did you mean 'Budget:Mode'?)")]
    [InlineData("--urls", "unknown setting 'urls' (did you mean 'Http:Urls'?)")]
    [InlineData("--source", "unknown setting 'source' (did you mean 'Source:Kind'?)")]
    [InlineData("--folder", "unknown setting 'folder' (did you mean 'Source:Folder'?)")]
    [InlineData("Trigger:Gpio:Pinn=3", "unknown setting 'Trigger:Gpio:Pinn' (did you mean 'Trigger:Gpio:Pin'?)")]
    public async Task AnUnknownArgumentStopsStartUpNamingTheNearestKey(string setting, string expected)
    {
        await Task.Yield();
        string[] args = setting.StartsWith("--", StringComparison.Ordinal) ? ["run", Model, LoopbackAnyPort, setting, "x"] : ["run", Model, LoopbackAnyPort, setting];
        OneLine(CliHarness.Run(args), 2, expected);
    }

    [Fact]
    public void UnknownKeysInFilesAndEnvironmentAreErrorsToo()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("edgevit.json"), """{ "Http": { "Url": "http://127.0.0.1:0" } }""");
        string line = OneLine(CliHarness.Run("run", "--config", tmp.File("edgevit.json"), Model, LoopbackAnyPort), 2,
            "unknown setting 'Http:Url' (did you mean 'Http:Urls'?)");
        Assert.Contains("edgevit.json", line); // where it came from

        var env = new Dictionary<string, string?> { ["EDGEVIT__Http__Url"] = "http://127.0.0.1:0" };
        line = OneLine(CliHarness.RunWithEnvironment(env, "run", Model, LoopbackAnyPort), 2, "unknown setting 'Http:Url' (did you mean 'Http:Urls'?)");
        Assert.Contains("EDGEVIT__Http__Url", line);

        // A stray word is not silently dropped either.
        OneLine(CliHarness.Run("run", Model, LoopbackAnyPort, "latency"), 2, "stray argument 'latency'");
        // Logging levels and the process's OTEL_* variables belong to others and pass.
        Assert.Null(ConfigurationKeys.Nearest("completely-unrelated-words-here"));
    }

    [Fact]
    public void ANonLoopbackBindNeedsAnApiKey()
    {
        OneLine(CliHarness.Run("run", Model, "Http:Urls=http://0.0.0.0:0"), 2, "Http:Urls binds http://0.0.0.0:0", "set Http:ApiKey");
        OneLine(CliHarness.Run("run", Model, "Http:Urls=http://*:0"), 2, "set Http:ApiKey");
        Assert.True(HttpExposure.IsLoopback("http://127.0.0.1:8080"));
        Assert.True(HttpExposure.IsLoopback("http://[::1]:8080"));
        Assert.True(HttpExposure.IsLoopback("http://localhost:8080"));
        Assert.False(HttpExposure.IsLoopback("http://192.168.1.5:8080"));
        Assert.Null(HttpExposure.Problem(new HttpOptions { Urls = "http://0.0.0.0:80", ApiKey = "k" }));
        Assert.Null(HttpExposure.Problem(new HttpOptions { Urls = "http://0.0.0.0:80", AllowAnonymous = true }));
    }

    [Fact]
    public void MissingFilesAndBadBudgetsStopStartUpWithOneLine()
    {
        using var tmp = new TempDir();
        OneLine(CliHarness.Run("run", "Model=" + tmp.File("nope.safetensors"), LoopbackAnyPort), 1, "model file not found");
        OneLine(CliHarness.Run("run", Model, LoopbackAnyPort, "Source:Kind=folder", "Source:Folder=" + tmp.File("none")), 1, "none not found");
        string thresholds = ServiceFiles.WriteThresholds(tmp.File("t.json"));
        OneLine(CliHarness.Run("run", Model, LoopbackAnyPort, "Thresholds=" + thresholds, "Budget:Target=0.3"), 2,
            "Budget: target 0.3 is below the lowest calibrated budget 0.6");
        // Thresholds fitted on fp32 are refused by an int8 service; int8 weights need Precision=int8.
        OneLine(CliHarness.Run("run", Model, LoopbackAnyPort, "Thresholds=" + thresholds, "Precision=int8"), 1,
            "t.json: thresholds were fitted on the fp32 engine, not int8");
        OneLine(CliHarness.Run("run", Model, LoopbackAnyPort, "Quantized=" + thresholds), 2, "Quantized needs Precision=int8");
    }

    [Fact]
    public void LayersOverrideInOrder()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("appsettings.json"), """{ "Threads": 2, "TopK": 2, "Budget": { "Target": 0.5, "TargetP95Ms": 10 }, "Source": { "Fps": 1 } }""");
        Directory.CreateDirectory(tmp.File("etc"));
        File.WriteAllText(tmp.File("etc/10-site.json"), """{ "TopK": 3, "Budget": { "Target": 0.6 }, "Source": { "Fps": 2 } }""");
        File.WriteAllText(tmp.File("etc/20-board.json"), """{ "Budget": { "Target": 0.7 } }""");
        File.WriteAllText(tmp.File("override.json"), """{ "Budget": { "TargetP95Ms": 20 }, "Source": { "Fps": 3 } }""");
        var app = ServiceHost.Build(new ServiceHostSettings
        {
            BaseDirectory = tmp.Path,
            SystemConfigDirectory = tmp.File("etc"),
            ConfigFile = tmp.File("override.json"),
            CommandLine = ["--Source:Width", "160", "Http:Urls=http://127.0.0.1:0", Model],
            Environment = new Dictionary<string, string?> { ["EDGEVIT__Source__Fps"] = "4", ["EDGEVIT__Source__Width"] = "320", ["UNRELATED"] = "x" },
        });
        {
            var o = app.Services.GetRequiredService<IOptions<EdgeVitOptions>>().Value;
            Assert.Equal(2, o.Threads);           // appsettings.json
            Assert.Equal(3, o.TopK);              // /etc/edgevit/10-site.json
            Assert.Equal(0.7, o.Budget.Target);   // /etc/edgevit/20-board.json, after 10-site
            Assert.Equal(20, o.Budget.TargetP95Ms); // --config
            Assert.Equal(4, o.Source.Fps);        // EDGEVIT__ environment
            Assert.Equal(160, o.Source.Width);    // command line
            Assert.Equal(SourceKind.Synthetic, o.Source.Kind); // class default
            ((IDisposable)app).Dispose();
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task BudgetAndSourceSettingsReloadWithoutRestart()
    {
        using var tmp = new TempDir();
        string file = tmp.File("edgevit.json");
        string thresholds = ServiceFiles.WriteThresholds(tmp.File("thresholds.json"));
        string Config(string target, int width) => $$"""
            { "Budget": { "Mode": "fixed", "Target": {{target}} },
              "Source": { "Kind": "synthetic", "Width": {{width}}, "Height": 64, "Fps": 20 },
              "Trigger": { "Mode": "interval", "IntervalMs": 60000 } }
            """;
        File.WriteAllText(file, Config("1.0", 64));
        var config = TestService.BaseConfig();
        config["Thresholds"] = thresholds;
        var dir = Directory.CreateTempSubdirectory("edgevit-reload-").FullName;
        var app = ServiceHost.Build(new ServiceHostSettings
        {
            BaseDirectory = dir, SystemConfigDirectory = Path.Combine(dir, "etc"), UseEnvironment = false,
            ConfigFile = file, Overrides = config,
        });
        await app.StartAsync();
        try
        {
            var budget = app.Services.GetRequiredService<BudgetController>();
            var status = app.Services.GetRequiredService<ServiceStatus>();
            Assert.True(budget.Current.IsDense);
            Assert.Contains("64x64", status.SourceName);
            long captured = status.Captured;

            File.WriteAllText(file, Config("0.85", 96));
            await TestService.WaitUntil(() => budget.Current.Budget == 0.8, TimeSpan.FromSeconds(30), "the budget reload");
            await TestService.WaitUntil(() => status.SourceName.Contains("96x64"), TimeSpan.FromSeconds(30), "the source reload");
            await TestService.WaitUntil(() => status.Captured > captured + 2 && status.SourceOpen, TimeSpan.FromSeconds(30), "frames from the new source");

            // An invalid edit is ignored: the service keeps its settings and keeps running.
            var rejected = NextRejectedReload(status);
            File.WriteAllText(file, Config("-3", 96));
            Assert.Contains("Budget:Target must be > 0 (got -3)", await rejected.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(0.8, budget.Current.Budget);
            // So is an unknown key, named with its nearest valid one.
            rejected = NextRejectedReload(status);
            File.WriteAllText(file, Config("0.6", 96).Replace("\"Target\"", "\"Targt\""));
            Assert.Contains("unknown setting 'Budget:Targt' (did you mean 'Budget:Target'?)", await rejected.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(0.8, budget.Current.Budget);
            Assert.True(status.SourceOpen);
            File.WriteAllText(file, Config("0.6", 96));
            await TestService.WaitUntil(() => budget.Current.Budget == 0.6, TimeSpan.FromSeconds(30), "a valid edit after an invalid one");
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Completes with the reason of the next reload the service ignores.</summary>
    private static Task<string> NextRejectedReload(ServiceStatus status)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnReload(string? problem)
        {
            if (problem is null) return;
            status.Reloaded -= OnReload;
            tcs.TrySetResult(problem);
        }
        status.Reloaded += OnReload;
        return tcs.Task;
    }
}
