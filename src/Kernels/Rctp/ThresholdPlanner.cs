namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// One step of a pruning plan: entering block l with keep bin k (fraction k/KeepBins of the patch tokens
/// still alive), choosing candidate m yields a keep bin, the block's FLOPs (in integer budget units, rounded
/// up so plans never under-count) and the Fisher lost.
/// </summary>
public interface IPruningCostModel
{
    int Blocks { get; }
    int Candidates { get; }
    int KeepBins { get; }
    /// <summary>Budget units for the whole dense model (FLOPs are counted in units of Dense / this).</summary>
    int FlopsUnits { get; }
    /// <summary>Units paid whatever is pruned (patch embedding, head).</summary>
    int FixedUnits { get; }
    (int KeepOut, int FlopsUnits, double Loss) Step(int block, int keepIn, int candidate);
}

/// <summary>A plan for one budget: a candidate and resulting keep bin per block, its FLOPs and Fisher loss.</summary>
public sealed record PruningPlan(double Budget, int[] Candidate, int[] KeepBin, int FlopsUnits, double FisherLoss);

/// <summary>
/// RCTP's modified Viterbi: a dynamic programme over blocks whose state is (fraction of patch tokens still
/// alive, FLOPs spent so far). Carrying the alive fraction is what accounts for tokens dropped early: they
/// shrink every later block's cost, and a later block can only lose Fisher from tokens that are still there.
/// Carrying FLOPs makes one pass answer every budget: the last layer holds, per FLOPs total, the least
/// Fisher loss, and each budget backtracks from the best state at or under it.
/// </summary>
public static class ThresholdPlanner
{
    public static IReadOnlyList<PruningPlan> Plan(IPruningCostModel model, IReadOnlyList<double> budgets)
    {
        int L = model.Blocks, K = model.KeepBins, F = model.FlopsUnits, M = model.Candidates;
        int states = (K + 1) * (F + 1);
        // back[l][state] = (candidate, previous state) of the best way into state after block l.
        var back = new int[L][];
        var cur = new double[states];
        var next = new double[states];
        Array.Fill(cur, double.PositiveInfinity);
        if (model.FixedUnits > F) throw new ArgumentException("fixed FLOPs exceed the dense total");
        cur[K * (F + 1) + model.FixedUnits] = 0; // everything alive, fixed costs paid

        var step = new (int KeepOut, int Flops, double Loss)[K + 1, M];
        for (int l = 0; l < L; l++)
        {
            for (int k = 0; k <= K; k++)
                for (int m = 0; m < M; m++)
                {
                    var (ko, fl, loss) = model.Step(l, k, m);
                    if (ko < 0 || ko > k) throw new InvalidOperationException($"cost model: block {l} keep {k} candidate {m} -> keep {ko}");
                    step[k, m] = (ko, fl, loss);
                }
            Array.Fill(next, double.PositiveInfinity);
            var bl = back[l] = new int[states];
            for (int k = 0; k <= K; k++)
                for (int f = 0; f <= F; f++)
                {
                    int s = k * (F + 1) + f;
                    double v = cur[s];
                    if (double.IsPositiveInfinity(v)) continue;
                    for (int m = 0; m < M; m++)
                    {
                        var (ko, fl, loss) = step[k, m];
                        int f2 = f + fl;
                        if (f2 > F) continue; // beyond the dense cost: never useful
                        int s2 = ko * (F + 1) + f2;
                        double v2 = v + loss;
                        if (v2 < next[s2]) { next[s2] = v2; bl[s2] = (m << 24) | s; }
                    }
                }
            (cur, next) = (next, cur);
        }

        var plans = new List<PruningPlan>(budgets.Count);
        foreach (double budget in budgets)
        {
            int limit = (int)Math.Floor(budget * F + 1e-9);
            int best = -1;
            for (int s = 0; s < states; s++)
            {
                int f = s % (F + 1);
                if (f > limit || double.IsPositiveInfinity(cur[s])) continue;
                // least loss; among equal losses the cheaper plan
                if (best < 0 || cur[s] < cur[best] || (cur[s] == cur[best] && f < best % (F + 1))) best = s;
            }
            if (best < 0) { plans.Add(new PruningPlan(budget, [], [], -1, double.PositiveInfinity)); continue; }
            var cand = new int[L];
            var keep = new int[L];
            int st = best;
            for (int l = L - 1; l >= 0; l--)
            {
                keep[l] = st / (F + 1);
                int packed = back[l][st];
                cand[l] = packed >> 24;
                st = packed & 0xFFFFFF;
            }
            plans.Add(new PruningPlan(budget, cand, keep, best % (F + 1), cur[best]));
        }
        return plans;
    }
}

/// <summary>
/// RCTP's cost model on calibration statistics. Entering block l, the alive tokens are taken to be the
/// highest-attention fraction k (class attention is strongly rank-correlated across blocks), so candidate m
/// (drop m/M of them) removes the attention band [1-k, 1-k(1-m/M)] of block l and loses its Fisher.
/// </summary>
public sealed class RctpCostModel : IPruningCostModel
{
    private readonly CalibrationStatistics _stats;
    private readonly FlopsModel _flops;
    private readonly double[] _blockWeight;

    public double DepthWeight { get; }

    /// <param name="fusedToken">dropped tokens live on as one extra token (its cost counted from the first drop on; its Fisher is still counted as lost).</param>
    /// <param name="depthWeight">Block l's Fisher counts depthWeight^(l/(L-1)) times (1: every block's Fisher over D weighs the same; above 1 late blocks weigh more, so plans prune earlier).</param>
    public RctpCostModel(CalibrationStatistics stats, int candidates, int keepBins = 200, int flopsUnits = 4000, bool fusedToken = false, double depthWeight = 1)
    {
        if (!(depthWeight > 0) || double.IsInfinity(depthWeight)) throw new ArgumentOutOfRangeException(nameof(depthWeight), depthWeight, "depth weight must be positive");
        int depth = stats.Config.Depth;
        _blockWeight = Enumerable.Range(0, depth).Select(l => depth > 1 ? Math.Pow(depthWeight, (double)l / (depth - 1)) : 1).ToArray();
        DepthWeight = depthWeight;
        if (candidates < 2) throw new ArgumentOutOfRangeException(nameof(candidates), candidates, "need at least 2 candidates per block");
        if (keepBins < 2 || keepBins > 255) throw new ArgumentOutOfRangeException(nameof(keepBins), keepBins, "keep bins must be in 2..255");
        _stats = stats;
        _flops = new FlopsModel(stats.Config, fusedToken);
        Candidates = candidates;
        KeepBins = keepBins;
        FlopsUnits = flopsUnits;
        FixedUnits = (int)Math.Ceiling(_flops.Fixed / _flops.Dense * flopsUnits);
    }

    public int Blocks => _stats.Config.Depth;
    public int Candidates { get; }
    public int KeepBins { get; }
    public int FlopsUnits { get; }
    public int FixedUnits { get; }
    public FlopsModel Flops => _flops;

    public (int KeepOut, int FlopsUnits, double Loss) Step(int block, int keepIn, int candidate)
    {
        double k = (double)keepIn / KeepBins;
        int keepOut = (int)Math.Round(keepIn * (1 - (double)candidate / Candidates));
        double ko = (double)keepOut / KeepBins;
        double flops = _flops.Block(_flops.Tokens(k), _flops.Tokens(ko));
        int units = (int)Math.Ceiling(flops / _flops.Dense * FlopsUnits - 1e-9);
        double loss = _stats.FisherBelow(block, 1 - ko) - _stats.FisherBelow(block, 1 - k);
        return (keepOut, units, Math.Max(0, loss) * _blockWeight[block]);
    }

    /// <summary>Predicted multiply-adds of a plan (unrounded), from its keep fractions.</summary>
    public double PredictedFlops(PruningPlan plan) =>
        _flops.Total(plan.KeepBin.Select(k => _flops.Tokens((double)k / KeepBins)).ToArray());
}

/// <summary>
/// Limits on where a plan may prune: no block before <see cref="FirstPruneBlock"/> drops tokens, and no block
/// drops more than <see cref="MaxDrop"/> of the tokens reaching it. The last block is exempt from the cap: its
/// patch outputs never reach the class head, so dropping them there is exact.
/// </summary>
public readonly record struct PlanConstraints(int FirstPruneBlock = 0, double MaxDrop = 1)
{
    public static PlanConstraints None => new(0, 1);
    public bool IsNone => FirstPruneBlock <= 0 && MaxDrop >= 1;
    public override string ToString() => IsNone ? "none" : $"first prune block {FirstPruneBlock}, max drop {MaxDrop:0.###} per block";
}

/// <summary>
/// A cost model with <see cref="PlanConstraints"/>: forbidden steps cost infinite loss, which the planner never
/// takes (keeping every token, candidate 0, is always allowed, so every budget the constraints can reach is planned).
/// </summary>
public sealed class ConstrainedCostModel(IPruningCostModel inner, PlanConstraints constraints) : IPruningCostModel
{
    public int Blocks => inner.Blocks;
    public int Candidates => inner.Candidates;
    public int KeepBins => inner.KeepBins;
    public int FlopsUnits => inner.FlopsUnits;
    public int FixedUnits => inner.FixedUnits;

    public (int KeepOut, int FlopsUnits, double Loss) Step(int block, int keepIn, int candidate)
    {
        var (ko, fl, loss) = inner.Step(block, keepIn, candidate);
        if (ko < keepIn && !Allowed(constraints, Blocks, block, keepIn, ko)) return (ko, fl, double.PositiveInfinity);
        return (ko, fl, loss);
    }

    /// <summary>Whether going from keepIn to keepOut bins in this block respects the constraints.</summary>
    public static bool Allowed(PlanConstraints c, int blocks, int block, int keepIn, int keepOut)
    {
        if (keepOut >= keepIn) return true;
        if (block < c.FirstPruneBlock) return false;
        if (block == blocks - 1) return true;
        return keepIn - keepOut <= c.MaxDrop * keepIn + 1e-9;
    }
}
