using EdgeViT.Kernels.Rctp;

namespace EdgeViT.Kernels.Reduction.Ltmp;

/// <summary>
/// LTMP's training objective for a batch, given each image's <see cref="LtmpTrace"/> at the current thresholds:
/// task loss + lambda (target - FLOPs)^2, and its gradient with respect to the 2L thresholds.
/// <para>
/// Masks (the paper's learned threshold masking, straight-through): a prune entry has
/// m = sigmoid((importance - prune_l)/tau), a merged source m = 1 - sigmoid((similarity - merge_l)/tau). Forward
/// values are the hard decisions (the trace is the real reduced forward); gradients are the sigmoid's.
/// </para>
/// <para>
/// FLOPs (FlopsModel accounting, as a fraction of dense, patch embedding and head included): block l costs
/// Attention(n_{l-1}) + Mlp(n_l) with n_l the batch-mean tokens after block l's reduction. As in the official code,
/// n_l counts each token by its current mask: a token still alive after block l by its block-l mask, a token
/// removed at an earlier block j by the (zero-valued) mask that removed it, so a threshold acts on every later
/// block through the tokens it removed. With <c>hardValues: false</c> the values are the soft sigmoids too: a smooth
/// surrogate whose gradient is the same formula, which the tests check against finite differences.
/// </para>
/// <para>
/// Task loss: dL/dm for each mask is the dense-point gradient of the loss with respect to a mask on the token's
/// state after block l's attention (FisherProbe's signed g.a, looked up by the token's original id), see
/// <see cref="LtmpMethod"/> for what that approximates.
/// </para>
/// </summary>
public static class LtmpObjective
{
    public static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));

    /// <summary>The mask of entry i of block l and its derivative with respect to that entry's threshold.</summary>
    public static (double Soft, double Hard, double DThreshold) Mask(LtmpTrace t, int l, int i, double merge, double prune, double tau)
    {
        if (t.IsMerge[l][i])
        {
            double s = Sigmoid((t.Value[l][i] - merge) / tau);
            return (1 - s, 0, s * (1 - s) / tau);
        }
        double p = Sigmoid((t.Value[l][i] - prune) / tau);
        return (p, t.Kept[l][i] ? 1 : 0, -p * (1 - p) / tau);
    }

    /// <summary>
    /// lambda (F - target)^2 with F the FLOPs fraction of the batch-mean token counts; adds its gradient to
    /// <paramref name="gradMerge"/> and <paramref name="gradPrune"/>. Returns (loss, F).
    /// </summary>
    public static (double Loss, double Fraction) FlopsTerm(FlopsModel fm, IReadOnlyList<LtmpTrace> batch, ReadOnlySpan<double> merge,
        ReadOnlySpan<double> prune, double tau, double target, double lambda, bool hardValues, Span<double> gradMerge, Span<double> gradPrune)
    {
        var c = fm.Config;
        int depth = c.Depth, prefix = c.PrefixTokens, images = batch.Count;
        var n = new double[depth];
        // Per block j: batch sums of d(mask)/d(threshold_j) over all entries, and over the removed entries only.
        var allM = new double[depth]; var allP = new double[depth]; var remM = new double[depth]; var remP = new double[depth];
        foreach (var t in batch)
        {
            double removedValue = 0; // values of masks that removed tokens at earlier blocks
            for (int l = 0; l < depth; l++)
            {
                double alive = t.Count[l] == 0 ? t.TokensIn[l] : prefix, removedHere = 0;
                for (int i = 0; i < t.Count[l]; i++)
                {
                    var (soft, hard, dm) = Mask(t, l, i, merge[l], prune[l], tau);
                    double v = hardValues ? hard : soft;
                    bool removed = t.IsMerge[l][i] || !t.Kept[l][i];
                    alive += v;
                    if (removed) removedHere += v;
                    if (t.IsMerge[l][i]) { allM[l] += dm; if (removed) remM[l] += dm; }
                    else { allP[l] += dm; if (removed) remP[l] += dm; }
                }
                n[l] += alive + removedValue;
                removedValue += removedHere;
            }
        }
        for (int l = 0; l < depth; l++) n[l] /= images;

        double total = fm.Total(n), dense = fm.Dense, f = total / dense;
        double loss = lambda * (f - target) * (f - target);
        double dLdF = 2 * lambda * (f - target) / dense;
        // dTotal/dn_l: the MLP of block l and the attention of block l + 1 run on n_l tokens.
        var cl = new double[depth];
        for (int l = 0; l < depth; l++)
        {
            double dTotal = 2.0 * c.EmbedDim * c.MlpDim;
            if (l + 1 < depth) dTotal += 4.0 * c.EmbedDim * c.EmbedDim + 4.0 * n[l] * c.EmbedDim;
            cl[l] = dLdF * dTotal;
        }
        double later = 0; // sum of c_l over l > j
        for (int j = depth - 1; j >= 0; j--)
        {
            gradMerge[j] += (cl[j] * allM[j] + later * remM[j]) / images;
            gradPrune[j] += (cl[j] * allP[j] + later * remP[j]) / images;
            later += cl[j];
        }
        return (loss, f);
    }

    /// <summary>
    /// Adds the task-loss gradient (batch mean) sum over masks of dL/dm x dm/dthreshold, dL/dm from
    /// <paramref name="maskGradients"/> [image][block * Patches + patch] (FisherProbe's signed g.a).
    /// </summary>
    public static void TaskGradient(Model.VitConfig c, IReadOnlyList<LtmpTrace> batch, IReadOnlyList<float[]> maskGradients,
        ReadOnlySpan<double> merge, ReadOnlySpan<double> prune, double tau, Span<double> gradMerge, Span<double> gradPrune)
    {
        int prefix = c.PrefixTokens, patches = c.Patches;
        for (int b = 0; b < batch.Count; b++)
        {
            var t = batch[b];
            var g = maskGradients[b];
            for (int l = 0; l < c.Depth; l++)
                for (int i = 0; i < t.Count[l]; i++)
                {
                    int id = t.Id[l][i];
                    if (id < prefix) continue; // never happens with LTMP (no created tokens); kept safe
                    var (_, _, dm) = Mask(t, l, i, merge[l], prune[l], tau);
                    double contribution = g[l * patches + id - prefix] * dm / batch.Count;
                    if (t.IsMerge[l][i]) gradMerge[l] += contribution; else gradPrune[l] += contribution;
                }
        }
    }
}
