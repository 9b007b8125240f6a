using System.Globalization;
using System.Text;
using EdgeViT.Host.Evaluation;
using EdgeViT.Host.Output;
using ScottPlot;
using SkiaSharp;

namespace EdgeViT.Host.Compare;

/// <summary>The rows of a comparison and the files it writes: results.csv, results.md, compare.png.</summary>
public static class CompareOutputs
{
    public const int BootstrapResamples = 2000;
    public const int BootstrapSeed = 20240601;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Dense first, then each method's rows in budget order.</summary>
    public static List<CompareRow> BuildRows(RunnerOutcomes dense, IReadOnlyList<(MatchedSetting Match, RunnerOutcomes Outcomes)> runs)
    {
        double denseFlops = dense.MultiplyAdds.Average();
        var rows = new List<CompareRow> { Row(dense, dense, MethodCatalog.Dense, 1.0, "-", "reference", 1.0, denseFlops) };
        foreach (var (m, o) in runs)
            rows.Add(Row(o, dense, m.Method, m.Budget, m.Setting.Setting, m.Exact ? "exact" : "nearest", m.Setting.CalibrationFlopsFraction, denseFlops));
        return rows;
    }

    private static CompareRow Row(RunnerOutcomes o, RunnerOutcomes dense, string method, double budget, string setting, string match,
        double calibrationFraction, double denseFlops)
    {
        var r = JsonOutput.Round;
        int n = o.Top1.Length;
        var ci = PairedStatistics.BootstrapDifference(o.Top1, dense.Top1, BootstrapResamples, BootstrapSeed);
        var (b, c) = PairedStatistics.Discordant(o.Top1, dense.Top1);
        double flops = o.MultiplyAdds.Average();
        return new CompareRow(method, budget, setting, match, r(calibrationFraction, 4),
            Gflops: r(flops / 1e9, 4), FlopsFraction: r(flops / denseFlops, 4), OverheadGflops: r(o.ReductionMultiplyAdds.Average() / 1e9, 6),
            Top1: r(100.0 * o.Top1.Count(x => x) / n, 2), Top5: r(100.0 * o.Top5.Count(x => x) / n, 2), MsMedian: r(Statistics.Median(o.Ms), 3),
            Top1DiffPp: r(ci.Estimate, 2), Top1DiffCiLow: r(ci.Low, 2), Top1DiffCiHigh: r(ci.High, 2),
            McnemarB: b, McnemarC: c, McnemarP: r(PairedStatistics.McNemarExact(b, c), 4), Images: n);
    }

    public static readonly string[] CsvColumns =
    [
        "method", "budget", "setting", "budget_match", "calibration_flops_fraction", "gflops", "flops_fraction", "overhead_gflops",
        "top1", "top5", "ms_median", "top1_diff_pp", "top1_diff_ci_low", "top1_diff_ci_high", "mcnemar_b", "mcnemar_c", "mcnemar_p", "images",
    ];

    public static void WriteCsv(string path, IEnumerable<CompareRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", CsvColumns));
        foreach (var x in rows)
        {
            object[] cells = [x.Method, x.Budget, x.Setting, x.BudgetMatch, x.CalibrationFlopsFraction, x.Gflops, x.FlopsFraction, x.OverheadGflops,
                x.Top1, x.Top5, x.MsMedian, x.Top1DiffPp, x.Top1DiffCiLow, x.Top1DiffCiHigh, x.McnemarB, x.McnemarC, x.McnemarP, x.Images];
            sb.AppendLine(string.Join(",", cells.Select(Cell)));
        }
        File.WriteAllText(path, sb.ToString());
    }

    private static string Cell(object value)
    {
        // Plain decimals (no exponent: 2.2E-05 would trip simple readers); the rows are already rounded.
        string s = value is double d ? d.ToString("0.##########", Inv) : Convert.ToString(value, Inv) ?? "";
        return s.IndexOfAny([',', '"', '\n']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
    }

    /// <summary>The Markdown table and, per budget, which method leads on accuracy and which on latency.</summary>
    /// <param name="protocol">Which images calibrated and which evaluated, e.g. "Calibration: 500 even-indexed images; evaluation: 500 odd-indexed images".</param>
    public static string Markdown(IReadOnlyList<CompareRow> rows, string protocol)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{protocol}, one single-threaded round-robin pass.");
        sb.AppendLine();
        sb.AppendLine("| method | budget | setting | match | GFLOPs | of dense | overhead MFLOPs | top-1 % | top-5 % | ms median | Δ top-1 pp [95 % CI] | McNemar p |");
        sb.AppendLine("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|---:|");
        foreach (var x in rows)
        {
            string match = x.BudgetMatch == "nearest" ? $"**nearest** ({F(x.CalibrationFlopsFraction, 3)})" : x.BudgetMatch;
            string diff = x.Method == MethodCatalog.Dense ? "—" : $"{Signed(x.Top1DiffPp)} [{Signed(x.Top1DiffCiLow)}, {Signed(x.Top1DiffCiHigh)}]";
            string p = x.Method == MethodCatalog.Dense ? "—" : F(x.McnemarP, 4);
            sb.AppendLine($"| {x.Method} | {F(x.Budget, 2)} | {x.Setting.Replace("|", "\\|")} | {match} | {F(x.Gflops, 3)} | {F(x.FlopsFraction, 3)} | " +
                $"{F(x.OverheadGflops * 1000, 3)} | {F(x.Top1, 2)} | {F(x.Top5, 2)} | {F(x.MsMedian, 2)} | {diff} | {p} |");
        }
        sb.AppendLine();
        sb.AppendLine("match: *exact* = FLOPs on the calibration subset within 1 % of dense of the budget; **nearest** = the method's nearest setting (its calibration FLOPs fraction in brackets).");
        sb.AppendLine();
        foreach (var line in LeaderLines(rows)) sb.AppendLine("- " + line);
        return sb.ToString();
    }

    public static IEnumerable<string> LeaderLines(IReadOnlyList<CompareRow> rows)
    {
        foreach (var group in rows.Where(r => r.Method != MethodCatalog.Dense).GroupBy(r => r.Budget).OrderBy(g => g.Key))
        {
            double bestTop1 = group.Max(r => r.Top1), bestMs = group.Min(r => r.MsMedian);
            string acc = string.Join(" = ", group.Where(r => r.Top1 == bestTop1).Select(r => r.Method));
            string lat = string.Join(" = ", group.Where(r => r.MsMedian == bestMs).Select(r => r.Method));
            yield return $"budget {F(group.Key, 2)}: accuracy leader {acc} (top-1 {F(bestTop1, 2)} %), latency leader {lat} ({F(bestMs, 2)} ms median)";
        }
    }

    private static string F(double v, int digits) => v.ToString("F" + digits, Inv);
    private static string Signed(double v) => (v > 0 ? "+" : "") + F(v, 2);

    // ---- compare.png ----

    private static SKSurface NewSurface(int width, int height) =>
        SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul))
        ?? throw new InvalidOperationException($"cannot create a {width}x{height} drawing surface");

    /// <summary>Two panels: top-1 against measured GFLOPs and ms per image against GFLOPs; a line per method, dense a star.</summary>
    public static void Plot(string path, IReadOnlyList<CompareRow> rows, int width = 1400, int height = 560)
    {
        string? font = PlotFonts.Register();
        var dense = rows.First(r => r.Method == MethodCatalog.Dense);
        var methods = rows.Where(r => r.Method != MethodCatalog.Dense).GroupBy(r => r.Method).ToList();
        var palette = new ScottPlot.Palettes.Category10();

        Plot Panel(string title, string yLabel, Func<CompareRow, double> y)
        {
            var plot = new Plot();
            if (font is not null) plot.Font.Set(font);
            for (int i = 0; i < methods.Count; i++)
            {
                var pts = methods[i].OrderBy(r => r.Gflops).ToArray();
                var s = plot.Add.Scatter(pts.Select(r => r.Gflops).ToArray(), pts.Select(y).ToArray(), palette.GetColor(i));
                s.LegendText = methods[i].Key;
                s.LineWidth = 2;
                s.MarkerSize = 8;
            }
            var d = plot.Add.Marker(dense.Gflops, y(dense), MarkerShape.FilledDiamond, 14, Colors.Black);
            d.LegendText = "dense";
            plot.Title(title);
            plot.XLabel("measured GFLOPs (multiply-adds) per image");
            plot.YLabel(yLabel);
            plot.ShowLegend(Alignment.LowerRight);
            return plot;
        }

        var accuracy = Panel("Top-1 accuracy vs FLOPs", "top-1 (%)", r => r.Top1);
        var latency = Panel("Latency vs FLOPs (1 thread)", "median ms per image", r => r.MsMedian);
        latency.ShowLegend(Alignment.UpperLeft);

        // Each panel on its own surface (a plot clears the canvas it renders on), then side by side.
        int half = width / 2;
        using var surface = NewSurface(width, height);
        surface.Canvas.Clear(SKColors.White);
        foreach (var (plot, x) in new[] { (accuracy, 0), (latency, half) })
        {
            using var panel = NewSurface(half, height);
            plot.Render(panel.Canvas, half, height);
            using var snapshot = panel.Snapshot();
            surface.Canvas.DrawImage(snapshot, x, 0);
        }
        using var image = surface.Snapshot();
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        data.SaveTo(file);
    }
}
