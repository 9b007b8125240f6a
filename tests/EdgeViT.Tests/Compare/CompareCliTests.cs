using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using EdgeViT.Host.Commands;
using EdgeViT.Host.Compare;
using EdgeViT.Kernels.Rctp;
using EdgeViT.Tests.Cli;
using Xunit;

namespace EdgeViT.Tests.Compare;

/// <summary>'edgevit compare' through the in-process CLI: misuse gives one error line; a small real run gives every output.</summary>
public class CompareCliTests
{
    private static string Model => SharedAssets.ModelSafetensors;

    private static CliResult Compare(string outDir, params string[] extra) => CliHarness.Run(
        ["compare", "--model", Model, "--images", SharedAssets.ImagesDir, "--synsets", SharedAssets.Synsets, "--out", outDir, .. extra]);

    /// <summary>One CSV line (RFC 4180 quoting: "a,b" and "" inside quotes).</summary>
    private static string[] SplitCsv(string line)
    {
        var cells = new List<string>();
        var cell = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char ch = line[i];
            if (quoted)
            {
                if (ch == '"' && i + 1 < line.Length && line[i + 1] == '"') { cell.Append('"'); i++; }
                else if (ch == '"') quoted = false;
                else cell.Append(ch);
            }
            else if (ch == '"') quoted = true;
            else if (ch == ',') { cells.Add(cell.ToString()); cell.Clear(); }
            else cell.Append(ch);
        }
        cells.Add(cell.ToString());
        return [.. cells];
    }

    [Theory]
    [InlineData("unknown method 'tome2'", "--methods", "topk,tome2")]
    [InlineData("(0, 1]", "--budgets", "0.7,1.2")]
    [InlineData("(0, 1]", "--budgets", "0,0.5")]
    [InlineData("bad budget grid", "--budgets", "0.5;0.7")]
    [InlineData("--threads", "--threads", "0")]
    [InlineData("only used by the rctp method", "--methods", "topk", "--rctp-thresholds", "x.json")]
    [InlineData("--calibration-synsets needs --calibration-images", "--calibration-synsets", "x.txt")]
    public void OptionMisuseIsAUsageError(string mention, params string[] extra)
    {
        using var tmp = new TempDir();
        var r = Compare(tmp.File("out"), extra);
        CliHarness.AssertOneErrorLine(r, mention);
        Assert.Equal(ExitCodes.UsageError, r.ExitCode);
        Assert.False(Directory.Exists(tmp.File("out")), "nothing is written on a usage error");
    }

    [Fact]
    public void AnEmptySplitIsAnInputError()
    {
        using var tmp = new TempDir();
        string images = Directory.CreateDirectory(tmp.File("images")).FullName;
        File.Copy(SharedAssets.Images()[0], Path.Combine(images, Path.GetFileName(SharedAssets.Images()[0])));
        var r = CliHarness.Run("compare", "--model", Model, "--images", images, "--synsets", SharedAssets.Synsets, "--out", tmp.File("out"), "--methods", "topk");
        CliHarness.AssertOneErrorLine(r, "no images left", "--split odd");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void ThresholdsForAnotherModelAreRefused()
    {
        using var tmp = new TempDir();
        var file = new ThresholdFile
        {
            ModelFingerprint = new string('a', 64), ModelDescription = "another model", Depth = 12, DenseGFlops = 1.254, CalibrationImages = 1,
            CalibrationOptions = new Dictionary<string, string>(),
            Sets = [new ThresholdSet(0.7, Enumerable.Repeat(0.004f, 12).ToArray(), [], 0.88, 0.88, 0.1, [])],
        };
        string th = tmp.File("other.json");
        file.Save(th);
        var r = Compare(tmp.File("out"), "--methods", "rctp,topk", "--budgets", "0.7", "--limit", "2", "--rctp-thresholds", th);
        CliHarness.AssertOneErrorLine(r, "other.json", "calibrated for model aaaaaaaaaaaa");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void MissingThresholdsFileIsAnInputError()
    {
        using var tmp = new TempDir();
        var r = Compare(tmp.File("out"), "--methods", "rctp", "--rctp-thresholds", tmp.File("missing.json"));
        CliHarness.AssertOneErrorLine(r, "thresholds file not found");
        Assert.Equal(ExitCodes.InputError, r.ExitCode);
    }

    [Fact]
    public void EndToEndTopKAndEvitOnTheSharedModel()
    {
        using var tmp = new TempDir();
        string outDir = tmp.File("out");
        var r = Compare(outDir, "--limit", "8", "--budgets", "0.5,0.7", "--methods", "topk,evit", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());

        // CSV: the documented columns, dense plus one row per method and budget.
        var lines = File.ReadAllLines(Path.Combine(outDir, "results.csv"));
        Assert.Equal(string.Join(",", CompareOutputs.CsvColumns), lines[0]);
        var rows = lines.Skip(1).Select(SplitCsv).ToArray();
        Assert.All(rows, cells => Assert.Equal(CompareOutputs.CsvColumns.Length, cells.Length));
        int Col(string name) => Array.IndexOf(CompareOutputs.CsvColumns, name);
        double Num(string[] cells, string name) => double.Parse(cells[Col(name)], CultureInfo.InvariantCulture);
        Assert.Single(rows, c => c[Col("method")] == "dense");
        foreach (var method in new[] { "topk", "evit" })
        {
            var mine = rows.Where(c => c[Col("method")] == method).OrderBy(c => Num(c, "budget")).ToArray();
            Assert.Equal([0.5, 0.7], mine.Select(c => Num(c, "budget")));
            // Measured FLOPs fall with the budget, and every budget is under dense.
            Assert.True(Num(mine[0], "gflops") < Num(mine[1], "gflops"), $"{method}: FLOPs should fall with the budget");
            Assert.True(Num(mine[1], "flops_fraction") < 1);
            foreach (var c in mine)
            {
                Assert.InRange(Num(c, "flops_fraction"), Num(c, "budget") - 0.05, Num(c, "budget") + 0.05);
                Assert.Contains(c[Col("budget_match")], new[] { "exact", "nearest" });
                Assert.InRange(Num(c, "top1"), 0, 100);
                Assert.InRange(Num(c, "mcnemar_p"), 0, 1);
                Assert.True(Num(c, "top1_diff_ci_low") <= Num(c, "top1_diff_pp") && Num(c, "top1_diff_pp") <= Num(c, "top1_diff_ci_high"));
                Assert.True(Num(c, "ms_median") > 0);
                Assert.Equal(8, Num(c, "images"));
            }
        }

        // Markdown: the table and one leader line per budget.
        string md = File.ReadAllText(Path.Combine(outDir, "results.md"));
        Assert.Contains("| method | budget |", md);
        Assert.Contains("- budget 0.50: accuracy leader", md);
        Assert.Contains("- budget 0.70: accuracy leader", md);

        // PNG: signature, IHDR size, plausible byte count.
        byte[] png = File.ReadAllBytes(Path.Combine(outDir, "compare.png"));
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.Equal("IHDR", System.Text.Encoding.ASCII.GetString(png, 12, 4));
        Assert.Equal(1400, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)));
        Assert.Equal(560, BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20)));
        Assert.InRange(png.Length, 20_000, 5_000_000);

        // --json: the last stdout line is one object with the rows and the paths; progress went to stderr.
        Assert.Single(r.StdoutLines.Where(l => l.Trim().Length > 0));
        Assert.Matches(@"edgevit: compare: evaluated 8/8 images x \d+ runs, \d+ s elapsed, ETA 0 s", r.Stderr);
        using var doc = JsonDocument.Parse(r.StdoutLines[^1]);
        var root = doc.RootElement;
        Assert.Equal(5, root.GetProperty("rows").GetArrayLength());
        Assert.Equal(Path.Combine(outDir, "compare.png"), root.GetProperty("plot").GetString());
        Assert.True(root.GetProperty("wall_s").GetDouble() > 0);
        Assert.Equal(8, root.GetProperty("eval_images").GetInt32());
    }

    [Fact]
    public void EndToEndRctpCalibratesThenReusesItsThresholds()
    {
        using var tmp = new TempDir();
        string first = tmp.File("first"), second = tmp.File("second");
        var r = Compare(first, "--limit", "6", "--budgets", "0.7", "--methods", "rctp", "--threads", "2");
        Assert.True(r.ExitCode == 0, r.ToString());
        string thresholds = Path.Combine(first, "rctp-thresholds.json");
        Assert.True(File.Exists(thresholds));
        Assert.Contains("| rctp | 0.70 |", r.Stdout);

        var again = Compare(second, "--limit", "6", "--budgets", "0.7", "--methods", "rctp", "--threads", "2", "--rctp-thresholds", thresholds);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.False(File.Exists(Path.Combine(second, "rctp-thresholds.json")), "no calibration when a file is given");
        // Same thresholds, same images: the same setting and FLOPs.
        string Row(string dir) => File.ReadAllLines(Path.Combine(dir, "results.csv")).Single(l => l.StartsWith("rctp,"));
        string[] a = SplitCsv(Row(first)), b = SplitCsv(Row(second));
        Assert.Equal(a[..8], b[..8]);
    }

    [Fact]
    public void ASeparateCalibrationFolderCalibratesOnAllOfItAndEvaluatesOnAllOfImages()
    {
        using var tmp = new TempDir();
        string cal = tmp.File("cal"), eval = tmp.File("eval"), outDir = tmp.File("out");
        Directory.CreateDirectory(cal); Directory.CreateDirectory(eval);
        var all = SharedAssets.Images();
        foreach (var f in all.Take(5)) File.Copy(f, Path.Combine(cal, Path.GetFileName(f)));
        foreach (var f in all.Skip(5).Take(3)) File.Copy(f, Path.Combine(eval, Path.GetFileName(f)));
        var r = CliHarness.Run("compare", "--model", Model, "--calibration-images", cal, "--calibration-synsets", SharedAssets.Synsets,
            "--images", eval, "--synsets", SharedAssets.Synsets, "--out", outDir, "--methods", "topk", "--budgets", "0.7", "--threads", "2", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var json = System.Text.Json.JsonDocument.Parse(r.Stdout.TrimEnd().Split('\n')[^1]).RootElement;
        Assert.Equal(5, json.GetProperty("calibration_images").GetInt32());
        Assert.Equal(3, json.GetProperty("eval_images").GetInt32());
        Assert.Contains($"all 5 images of {cal}; evaluation: all 3 images of {eval}", File.ReadAllText(Path.Combine(outDir, "results.md")));
    }
}
