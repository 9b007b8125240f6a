using EdgeViT.Tests.Cli;
using EdgeViT.Tests.Service;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>The integrations' keys fail start-up the way every key does: one line naming the key and the value.</summary>
public class IntegrationSettingsTests
{
    private static readonly string Model = "Model=" + SharedAssets.ModelSafetensors;

    [Theory(Timeout = 60_000)]
    [InlineData(2, "Mqtt:Publish=sometimes", "Mqtt:Publish must be one of all|change|match (got 'sometimes')")]
    [InlineData(2, "Mqtt:Servr=x", "unknown setting 'Mqtt:Servr' (did you mean 'Mqtt:Server'?)")]
    [InlineData(2, "Mqtt:Server=x Mqtt:Publish=match", "Mqtt:MatchClasses is required when Mqtt:Publish is match")]
    [InlineData(2, "Mqtt:Server=x Mqtt:Publish=match Mqtt:MatchClasses=n99999999", "Mqtt:MatchClasses: 'n99999999' is neither a class index 0..999 nor a synset id")]
    [InlineData(2, "Mqtt:Server=x Mqtt:BaseTopic=edgevit/#", "Mqtt:BaseTopic must be a topic without wildcards")]
    [InlineData(2, "Source:Kind=libcamera Source:Rotation=90", "Source:Rotation must be 0 or 180 (got 90)")]
    [InlineData(2, "Source:Codec=h264", "Source:Codec must be one of mjpeg|yuv420 (got 'h264')")]
    [InlineData(2, "Budget:ThrottleCelsius=-1", "Budget:ThrottleCelsius must be >= 0 (got -1)")]
    [InlineData(2, "LiveView:Fps=0", "LiveView:Fps must be >= 0.1 (got 0)")]
    [InlineData(1, "Source:Kind=libcamera Source:Camera=0", "libcamera camera 0: none of rpicam-vid, libcamera-vid found on PATH")]
    public async Task BadSettingsAreOneLine(int exitCode, string settings, string expected)
    {
        await Task.Yield();
        var r = CliHarness.Run(["run", Model, "Http:Urls=http://127.0.0.1:0", "--system-config", Path.Combine(Path.GetTempPath(), "edgevit-no-etc"), .. settings.Split(' ')]);
        string[] lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{r.Stderr}");
        Assert.StartsWith("edgevit: error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.Equal(exitCode, r.ExitCode);
    }
}
