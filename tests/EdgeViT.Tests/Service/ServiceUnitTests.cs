using EdgeViT.Tests.Support;
using System.Diagnostics.Metrics;
using System.Text.Json;
using EdgeViT.Capture;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Service;
using EdgeViT.Imaging;
using EdgeViT.Tests.Cli;
using Xunit;

namespace EdgeViT.Tests.Service;

/// <summary>The service's parts on their own: verdict JSON and the allocation-free hot path, sinks, SoC sensors.</summary>
public class ServiceUnitTests
{
    [Fact]
    public void ClassifyingRgbFramesAllocatesNothingPerFrame()
    {
        var options = new EdgeVitOptions { Model = SharedAssets.ModelSafetensors, Synsets = SharedAssets.Synsets, TopK = 5 };
        var model = LoadedModel.Load(options);
        var budget = new BudgetController(model.Catalog, new BudgetSettings(), TimeProvider.System);
        using var metrics = new ServiceInstruments();
        using var classifier = new Classifier(model, budget, metrics, threads: 1, topK: 5);
        var decoded = ImageDecoder.Decode(SharedAssets.Images()[0]);
        var frame = new Frame(decoded.Pixels.Length)
        {
            Format = FrameFormat.Rgb24, Width = decoded.Width, Height = decoded.Height, Stride = decoded.Stride,
            Length = decoded.Pixels.Length, Origin = "test", Timestamp = DateTimeOffset.UtcNow, Sequence = 1,
        };
        decoded.Pixels.CopyTo(frame.Buffer, 0);
        var verdict = classifier.NewVerdict();
        var writer = new VerdictWriter(model.Synsets);
        var sink = new StreamSink(Stream.Null);
        void Once()
        {
            classifier.Classify(frame, "test:rgb", verdict);
            sink.WriteLine(writer.Write(verdict).Span);
        }
        Once(); // warm: buffers sized, plans cached
        long allocated = SteadyAllocation.Bytes(Once);
        Assert.True(allocated == 0, $"{allocated} bytes allocated per frame once warm");

        // And the verdict says what it should.
        using var doc = JsonDocument.Parse(writer.Write(verdict));
        var v = doc.RootElement;
        Assert.Equal("n01440764", v.GetProperty("top")[0].GetProperty("synset").GetString());
        Assert.Equal("tench, Tinca tinca", v.GetProperty("top")[0].GetProperty("label").GetString());
        Assert.Equal(5, v.GetProperty("top").GetArrayLength());
        Assert.Equal(decoded.Width, v.GetProperty("width").GetInt32());
        Assert.True(v.GetProperty("threshold_set").GetProperty("dense").GetBoolean());
    }

    [Fact]
    public void TheFileSinkRotatesBySizeAndKeepsMaxFiles()
    {
        using var tmp = new TempDir();
        string path = tmp.File("logs/verdicts.jsonl");
        using (var sink = new RotatingFileSink(path, maxBytes: 1000, maxFiles: 2))
        {
            var line = new byte[99];
            for (int i = 0; i < 45; i++)
            {
                Array.Fill(line, (byte)('a' + i % 26));
                sink.WriteLine(line);
            }
        }
        // 100-byte lines, 10 per 1000-byte file: 45 lines = 4 full files + 5 lines; only 2 rotated ones are kept.
        Assert.Equal(500, new FileInfo(path).Length);
        Assert.Equal(1000, new FileInfo(path + ".1").Length);
        Assert.Equal(1000, new FileInfo(path + ".2").Length);
        Assert.False(File.Exists(path + ".3"));
        Assert.All(File.ReadAllLines(path + ".1"), l => Assert.Equal(99, l.Length)); // never a split line
        Assert.Equal(new string((char)('a' + 44 % 26), 99), File.ReadAllLines(path)[^1]);
        Assert.Equal(new string((char)('a' + 30 % 26), 99), File.ReadAllLines(path + ".1")[0]);
    }

    [Fact]
    public void SocSensorsReadThermalZonesAndThrottlingWhereTheyExist()
    {
        using var tmp = new TempDir();
        string zone0 = Directory.CreateDirectory(tmp.File("class/thermal/thermal_zone0")).FullName;
        File.WriteAllText(Path.Combine(zone0, "temp"), "48312\n");
        File.WriteAllText(Path.Combine(zone0, "type"), "cpu-thermal\n");
        Directory.CreateDirectory(tmp.File("class/thermal/cooling_device0"));
        string firmware = Directory.CreateDirectory(tmp.File("devices/platform/soc/soc:firmware")).FullName;
        File.WriteAllText(Path.Combine(firmware, "get_throttled"), "50005\n");

        using var meter = new Meter("EdgeViT.SocTest." + Guid.NewGuid());
        var created = SocSensors.Register(meter, tmp.Path);
        Assert.Equal([EdgeVitMetrics.SocTemperature, EdgeVitMetrics.SocThrottled], created);

        var seen = new Dictionary<string, (double Value, string? Zone, string? Unit)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter == meter) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => seen[i.Name] = (v, tags.Length > 0 ? tags[0].Value as string : null, i.Unit));
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => seen[i.Name] = (v, null, i.Unit));
        listener.Start();
        listener.RecordObservableInstruments();
        Assert.Equal(48.312, seen[EdgeVitMetrics.SocTemperature].Value, 6);
        Assert.Equal("thermal_zone0:cpu-thermal", seen[EdgeVitMetrics.SocTemperature].Zone);
        Assert.Equal("Cel", seen[EdgeVitMetrics.SocTemperature].Unit);
        Assert.Equal(0x50005, seen[EdgeVitMetrics.SocThrottled].Value);

        // No sysfs files: no instruments.
        using var empty = new TempDir();
        using var meter2 = new Meter("EdgeViT.SocTest." + Guid.NewGuid());
        Assert.Empty(SocSensors.Register(meter2, empty.Path));
    }

    [Fact]
    public void EveryMetricNameIsDottedLowercaseWithAUnit()
    {
        foreach (var (name, unit) in EdgeVitMetrics.Units)
        {
            Assert.Matches("^edgevit(\\.[a-z0-9_]+)+$", name);
            Assert.False(string.IsNullOrEmpty(unit), name);
        }
        Assert.Equal(["capture", "decode", "preprocess", "infer", "total"], EdgeVitMetrics.Stages.All);
    }
}
