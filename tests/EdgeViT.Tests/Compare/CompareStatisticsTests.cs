using System.Numerics;
using EdgeViT.Host.Compare;
using EdgeViT.Host.Output;
using EdgeViT.Kernels.Rctp;
using Xunit;

namespace EdgeViT.Tests.Compare;

/// <summary>Paired statistics of 'edgevit compare' against hand-computed cases.</summary>
public class CompareStatisticsTests
{
    // Exact two-sided McNemar p from the binomial, with big integers: 2 * sum_{i <= min(b,c)} C(n, i) / 2^n.
    private static double BinomialP(int b, int c)
    {
        int n = b + c, k = Math.Min(b, c);
        BigInteger sum = 0, term = 1; // C(n, 0)
        for (int i = 0; i <= k; i++)
        {
            if (i > 0) term = term * (n - i + 1) / i;
            sum += term;
        }
        double p = 2 * Math.Exp(BigInteger.Log(sum) - n * Math.Log(2));
        return Math.Min(1, p);
    }

    [Fact]
    public void McNemarExactMatchesTheHandComputedCase()
    {
        // b = 10, c = 2: n = 12, P(X <= 2) = (1 + 12 + 66) / 4096, two-sided p = 79 / 2048.
        double p = PairedStatistics.McNemarExact(10, 2);
        Assert.Equal(79.0 / 2048.0, p, 12);
        Assert.Equal(0.0386, p, 4);
        Assert.Equal(BinomialP(10, 2), p, 12);
        Assert.Equal(p, PairedStatistics.McNemarExact(2, 10), 15); // symmetric
    }

    [Theory]
    [InlineData(0, 5)]
    [InlineData(3, 3)]
    [InlineData(7, 1)]
    [InlineData(20, 40)]
    [InlineData(250, 300)]
    public void McNemarExactMatchesTheBinomial(int b, int c) =>
        Assert.Equal(BinomialP(b, c), PairedStatistics.McNemarExact(b, c), 10);

    [Fact]
    public void McNemarEdgeCases()
    {
        Assert.Equal(1.0, PairedStatistics.McNemarExact(0, 0));
        Assert.Equal(1.0, PairedStatistics.McNemarExact(4, 4)); // capped at 1
        Assert.Equal(2.0 / 32, PairedStatistics.McNemarExact(0, 5), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => PairedStatistics.McNemarExact(-1, 2));
    }

    [Fact]
    public void DiscordantPairsAreCountedBothWays()
    {
        bool[] dense = [true, true, false, false, true];
        bool[] method = [true, false, true, false, false];
        Assert.Equal((2, 1), PairedStatistics.Discordant(method, dense));
    }

    [Fact]
    public void BootstrapOfIdenticalOutcomesIsZero()
    {
        var x = Enumerable.Range(0, 50).Select(i => i % 3 == 0).ToArray();
        var ci = PairedStatistics.BootstrapDifference(x, x);
        Assert.Equal(new Interval(0, 0, 0), ci);
    }

    [Fact]
    public void BootstrapIsPairedSeededAndBoundedByTheData()
    {
        // Method right on all 10, dense wrong on 2: the difference is +20 pp, every resample is >= 0, and the
        // resampled count of dense's misses is Binomial(10, 0.2): its 2.5 % quantile is 0, its 97.5 % is 4 or 5.
        var method = Enumerable.Repeat(true, 10).ToArray();
        var dense = Enumerable.Range(0, 10).Select(i => i >= 2).ToArray();
        var ci = PairedStatistics.BootstrapDifference(method, dense, 2000, seed: 7);
        Assert.Equal(20, ci.Estimate, 12);
        Assert.Equal(0, ci.Low, 12);
        Assert.InRange(ci.High, 40, 50);
        Assert.Equal(ci, PairedStatistics.BootstrapDifference(method, dense, 2000, seed: 7)); // reproducible
    }

    [Fact]
    public void BootstrapIntervalMatchesTheNormalApproximationOnALargeSample()
    {
        // 400 images: the method gains 40, loses 20 -> +5 pp; per-image difference variance 60/400 - 0.05^2,
        // standard error sqrt(0.1475 / 400) = 1.92 pp, so the 95 % interval is about 5 -/+ 3.76.
        var dense = new bool[400];
        var method = new bool[400];
        for (int i = 0; i < 400; i++)
        {
            dense[i] = method[i] = i % 2 == 0;
            if (i < 80 && i % 2 == 1) method[i] = true;   // 40 gains
            if (i >= 100 && i < 140 && i % 2 == 0) method[i] = false; // 20 losses
        }
        var ci = PairedStatistics.BootstrapDifference(method, dense, 4000, seed: 11);
        Assert.Equal(5, ci.Estimate, 12);
        double se = Math.Sqrt((60.0 / 400 - 0.0025) / 400) * 100;
        Assert.InRange(ci.Low, 5 - 1.96 * se - 0.6, 5 - 1.96 * se + 0.6);
        Assert.InRange(ci.High, 5 + 1.96 * se - 0.6, 5 + 1.96 * se + 0.6);
    }

    [Fact]
    public void BootstrapRefusesMismatchedOrEmptyInput()
    {
        Assert.Throws<ArgumentException>(() => PairedStatistics.BootstrapDifference([true], [true, false]));
        Assert.Throws<ArgumentException>(() => PairedStatistics.BootstrapDifference([], []));
    }

    [Fact]
    public void CatalogParsesNamesAndRefusesUnknownOnes()
    {
        Assert.Equal(["topk", "evit"], MethodCatalog.Parse("topk, EVIT,dense,topk"));
        Assert.Contains("rctp", MethodCatalog.Names);
        var ex = Assert.Throws<EdgeViT.Host.Commands.UsageException>(() => MethodCatalog.Parse("topk,tome2"));
        Assert.Contains("unknown method 'tome2'", ex.Message);
    }

    [Fact]
    public void RctpGridSurroundsEveryBudgetAndMeasureSubsetIsEvenlySpread()
    {
        Assert.Equal([0.48, 0.49, 0.5, 0.51, 0.52, 0.68, 0.69, 0.7, 0.71, 0.72], MethodCatalog.RctpGrid([0.5, 0.7]));
        Assert.Equal([0.98, 0.99, 1.0], MethodCatalog.RctpGrid([1.0]));
        var subset = BudgetMatcher.MeasureSubset(500);
        Assert.Equal(BudgetMatcher.MeasureImages, subset.Length);
        Assert.Equal(0, subset[0]);
        Assert.Equal(subset.Length, subset.Distinct().Count());
        Assert.True(subset[^1] >= 490);
        Assert.Equal([0, 1, 2], BudgetMatcher.MeasureSubset(3));
    }

    [Fact]
    public void RctpMethodTakesTheSetWithNearestMeasuredFlops()
    {
        var config = EdgeViT.Kernels.Model.ModelLoader.Load(SharedAssets.ModelSafetensors).Config;
        ThresholdSet Set(double budget, double measuredGFlops) =>
            new(budget, Enumerable.Repeat(0.001f * (float)budget, config.Depth).ToArray(), [], measuredGFlops, measuredGFlops, 0, []);
        var file = new ThresholdFile
        {
            ModelFingerprint = "x", ModelDescription = "test", Depth = config.Depth, DenseGFlops = 1.0, CalibrationImages = 1,
            CalibrationOptions = new Dictionary<string, string>(),
            // Nominal budgets and measured FLOPs disagree on purpose: the measured value decides.
            Sets = [Set(0.60, 0.66), Set(0.70, 0.69), Set(0.80, 0.79)],
        };
        var method = new EdgeViT.Kernels.Reduction.RctpMethod(config, file);
        Assert.Equal("rctp", method.Name);
        var setting = method.ForBudget(0.67, _ => 0.5);
        Assert.Equal("set 0.60 (calibrated 0.660)", setting.Setting);
        Assert.Equal(0.5, setting.CalibrationFlopsFraction); // what the comparison's measure said, not the file
        Assert.Equal("set 0.70 (calibrated 0.690)", method.ForBudget(0.685, _ => 0.5).Setting);
        Assert.Equal("set 0.80 (calibrated 0.790)", method.ForBudget(0.95, _ => 0.5).Setting);
    }

    [Fact]
    public void LeaderLinesNameTheBestMethodPerBudget()
    {
        CompareRow Row(string m, double budget, double top1, double ms) =>
            new(m, budget, "-", "exact", budget, 1, budget, 0, top1, 90, ms, 0, 0, 0, 0, 0, 1, 100);
        var rows = new[] { Row("dense", 1, 80, 20), Row("rctp", 0.7, 79, 15), Row("topk", 0.7, 78, 14), Row("evit", 0.7, 79, 16), Row("rctp", 0.5, 75, 10) };
        var lines = CompareOutputs.LeaderLines(rows).ToArray();
        Assert.Equal(2, lines.Length);
        Assert.Equal("budget 0.50: accuracy leader rctp (top-1 75.00 %), latency leader rctp (10.00 ms median)", lines[0]);
        Assert.Equal("budget 0.70: accuracy leader rctp = evit (top-1 79.00 %), latency leader topk (14.00 ms median)", lines[1]);
    }
}
