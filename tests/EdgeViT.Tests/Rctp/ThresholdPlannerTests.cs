using EdgeViT.Kernels.Rctp;
using Xunit;

namespace EdgeViT.Tests.Rctp;

public class ThresholdPlannerTests
{
    /// <summary>A random cost model: arbitrary FLOPs and losses per (block, keep, candidate), monotone keep.</summary>
    private sealed class RandomCostModel : IPruningCostModel
    {
        private readonly (int, int, double)[,,] _t;
        public RandomCostModel(Random rng, int blocks, int candidates, int keepBins, int units)
        {
            Blocks = blocks; Candidates = candidates; KeepBins = keepBins; FlopsUnits = units; FixedUnits = rng.Next(0, 5);
            _t = new (int, int, double)[blocks, keepBins + 1, candidates];
            for (int l = 0; l < blocks; l++)
                for (int k = 0; k <= keepBins; k++)
                    for (int m = 0; m < candidates; m++)
                    {
                        int ko = m == 0 ? k : rng.Next(0, k + 1);
                        _t[l, k, m] = (ko, 1 + rng.Next(0, units / blocks), m == 0 ? 0 : rng.NextDouble());
                    }
        }
        public int Blocks { get; }
        public int Candidates { get; }
        public int KeepBins { get; }
        public int FlopsUnits { get; }
        public int FixedUnits { get; }
        public (int KeepOut, int FlopsUnits, double Loss) Step(int block, int keepIn, int candidate) => _t[block, keepIn, candidate];
    }

    private static double Exhaustive(IPruningCostModel m, double budget, PlanConstraints? constraints = null)
    {
        int limit = (int)Math.Floor(budget * m.FlopsUnits + 1e-9);
        double best = double.PositiveInfinity;
        int paths = (int)Math.Pow(m.Candidates, m.Blocks);
        for (int p = 0; p < paths; p++)
        {
            int code = p, keep = m.KeepBins, flops = m.FixedUnits;
            double loss = 0;
            for (int l = 0; l < m.Blocks; l++, code /= m.Candidates)
            {
                var (ko, f, ls) = m.Step(l, keep, code % m.Candidates);
                if (constraints is { } c && !ConstrainedCostModel.Allowed(c, m.Blocks, l, keep, ko)) ls = double.PositiveInfinity;
                keep = ko; flops += f; loss += ls;
            }
            if (flops <= limit && flops <= m.FlopsUnits && loss < best) best = loss;
        }
        return best;
    }

    [Fact]
    public void ViterbiEqualsExhaustiveSearchOnRandomTables()
    {
        var rng = new Random(42);
        int checkedBudgets = 0;
        for (int trial = 0; trial < 40; trial++)
        {
            var model = new RandomCostModel(rng, blocks: rng.Next(2, 5), candidates: rng.Next(2, 5), keepBins: rng.Next(2, 9), units: rng.Next(20, 80));
            var budgets = Enumerable.Range(1, 20).Select(i => i / 20.0).ToArray();
            var plans = ThresholdPlanner.Plan(model, budgets);
            foreach (var plan in plans)
            {
                double expect = Exhaustive(model, plan.Budget);
                if (double.IsPositiveInfinity(expect)) { Assert.True(plan.FlopsUnits < 0, $"trial {trial} budget {plan.Budget}: DP found a plan exhaustive search did not"); continue; }
                Assert.Equal(expect, plan.FisherLoss, 12);
                // and the plan it returns really has that loss and fits the budget when replayed
                int keep = model.KeepBins, flops = model.FixedUnits; double loss = 0;
                for (int l = 0; l < model.Blocks; l++) { var (ko, f, ls) = model.Step(l, keep, plan.Candidate[l]); keep = ko; flops += f; loss += ls; Assert.Equal(keep, plan.KeepBin[l]); }
                Assert.Equal(plan.FlopsUnits, flops);
                Assert.True(flops <= Math.Floor(plan.Budget * model.FlopsUnits + 1e-9));
                Assert.Equal(plan.FisherLoss, loss, 12);
                checkedBudgets++;
            }
            for (int i = 1; i < plans.Count; i++) Assert.True(plans[i].FisherLoss <= plans[i - 1].FisherLoss, "more budget never costs more Fisher");
        }
        Assert.True(checkedBudgets > 200, $"only {checkedBudgets} feasible budgets were compared");
    }

    [Fact]
    public void ConstrainedViterbiEqualsExhaustiveSearchUnderTheSameConstraints()
    {
        var rng = new Random(7);
        int checkedBudgets = 0, changed = 0;
        for (int trial = 0; trial < 60; trial++)
        {
            var model = new RandomCostModel(rng, blocks: rng.Next(2, 5), candidates: rng.Next(2, 5), keepBins: rng.Next(2, 9), units: rng.Next(20, 80));
            var constraints = new PlanConstraints(rng.Next(0, 3), rng.Next(1, 5) / 4.0);
            var budgets = Enumerable.Range(1, 20).Select(i => i / 20.0).ToArray();
            var free = ThresholdPlanner.Plan(model, budgets);
            var plans = ThresholdPlanner.Plan(new ConstrainedCostModel(model, constraints), budgets);
            for (int b = 0; b < plans.Count; b++)
            {
                var plan = plans[b];
                double expect = Exhaustive(model, plan.Budget, constraints);
                if (double.IsPositiveInfinity(expect)) { Assert.True(plan.FlopsUnits < 0, $"trial {trial} budget {plan.Budget}: DP found a plan exhaustive search did not"); continue; }
                Assert.Equal(expect, plan.FisherLoss, 12);
                int keep = model.KeepBins;
                for (int l = 0; l < model.Blocks; l++)
                {
                    int ko = plan.KeepBin[l];
                    Assert.True(ConstrainedCostModel.Allowed(constraints, model.Blocks, l, keep, ko), $"trial {trial}: block {l} {keep} -> {ko} breaks {constraints}");
                    keep = ko;
                }
                Assert.True(plan.FisherLoss >= free[b].FisherLoss - 1e-12, "a constraint never lowers the optimum");
                if (plan.FisherLoss > free[b].FisherLoss + 1e-12) changed++;
                checkedBudgets++;
            }
        }
        Assert.True(checkedBudgets > 200, $"only {checkedBudgets} feasible budgets were compared");
        Assert.True(changed > 20, $"constraints changed only {changed} optima: the test would not notice them ignored");
    }

    [Fact]
    public void ConstraintsForbidEarlyBlocksAndCapDropsButNotTheLastBlock()
    {
        var c = new PlanConstraints(FirstPruneBlock: 3, MaxDrop: 0.25);
        Assert.False(ConstrainedCostModel.Allowed(c, 12, 2, 200, 199));
        Assert.True(ConstrainedCostModel.Allowed(c, 12, 2, 200, 200));
        Assert.True(ConstrainedCostModel.Allowed(c, 12, 3, 200, 150));
        Assert.False(ConstrainedCostModel.Allowed(c, 12, 3, 200, 149));
        Assert.True(ConstrainedCostModel.Allowed(c, 12, 11, 200, 2)); // the last block's patch outputs are unused
        Assert.True(PlanConstraints.None.IsNone);
    }

    [Fact]
    public void BudgetGridParsesInclusiveRangesAndRejectsNonsense()
    {
        Assert.Equal(61, ThresholdFile.ParseBudgets("0.40:1.00:0.01").Length);
        Assert.Equal([0.5, 0.7], ThresholdFile.ParseBudgets("0.5,0.7"));
        Assert.Throws<ArgumentException>(() => ThresholdFile.ParseBudgets("0.4:1.2:0.1"));
        Assert.Throws<ArgumentException>(() => ThresholdFile.ParseBudgets("a:b"));
        Assert.Throws<ArgumentException>(() => ThresholdFile.ParseBudgets("0"));
    }
}
