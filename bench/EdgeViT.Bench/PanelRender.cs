using System.Globalization;
using EdgeViT.Host.Output;
using ScottPlot;

namespace EdgeViT.Bench;

/// <summary>
/// Draws the dashboard's "budget and p95 latency" panel from a real run's samples (bench/service-load.sh's
/// trace.csv), for the docs: there is no Grafana here to screenshot.
/// </summary>
internal static class PanelRender
{
    public static void Run(string traceCsv, double targetMs, double loadFrom, double loadTo, string outPng)
    {
        var rows = File.ReadAllLines(traceCsv).Skip(1).Select(l => l.Split(','))
            .Where(f => f.Length >= 5 && f[4].Length > 0 && f[4] != "null")
            .Select(f => (T: Num(f[0]), Budget: Num(f[2]), P95: Num(f[4]))).ToArray();
        if (rows.Length == 0) throw new InvalidDataException($"{traceCsv}: no samples");

        string? font = PlotFonts.Register();
        var plot = new Plot();
        if (font is not null) plot.Font.Set(font);
        var load = plot.Add.HorizontalSpan(loadFrom, loadTo, Colors.Orange.WithAlpha(0.15));
        load.LegendText = "second process loading both cores";
        var p95 = plot.Add.Scatter(rows.Select(r => r.T).ToArray(), rows.Select(r => r.P95).ToArray(), Colors.SteelBlue);
        p95.LegendText = "p95 latency (ms, left)";
        p95.MarkerSize = 0;
        p95.LineWidth = 2;
        var target = plot.Add.HorizontalLine(targetMs, 1.5f, Colors.SteelBlue, LinePattern.Dashed);
        target.LegendText = $"p95 target {targetMs:0.#} ms";
        var budget = plot.Add.Scatter(rows.Select(r => r.T).ToArray(), rows.Select(r => r.Budget).ToArray(), Colors.DarkGreen);
        budget.ConnectStyle = ConnectStyle.StepHorizontal;
        budget.LegendText = "active threshold set (fraction of dense FLOPs, right)";
        budget.MarkerSize = 0;
        budget.LineWidth = 2;
        budget.Axes.YAxis = plot.Axes.Right;
        plot.Axes.Right.Label.Text = "active set (fraction of dense FLOPs)";
        plot.Axes.SetLimitsY(0, 1.05, plot.Axes.Right);
        plot.Axes.SetLimitsY(0, Math.Max(targetMs * 2, rows.Where(r => r.T > 5).Max(r => r.P95) * 1.1), plot.Axes.Left);
        plot.Title("edgevit run, Budget:Mode=latency: p95 and active set over time");
        plot.XLabel("time (s)");
        plot.YLabel("p95 latency (ms)");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(outPng, 1200, 480);
    }

    private static double Num(string s) => double.Parse(s.Trim('"'), CultureInfo.InvariantCulture);
}
