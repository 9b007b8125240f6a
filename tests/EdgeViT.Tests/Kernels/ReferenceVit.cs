using EdgeViT.Kernels.Model;

namespace EdgeViT.Tests.Kernels;

/// <summary>
/// A deliberately naive ViT forward pass in double precision, straight from the timm definition, used to
/// check the engine (dense and threshold-pruned) on random models.
/// </summary>
internal static class ReferenceVit
{
    public sealed record Result(double[] Logits, int[] TokensPerBlock, long MultiplyAdds);

    /// <param name="msaMask">Optional [block, token] multiplier m (calibration's mask): on the token's MSA output, or
    /// with <paramref name="maskWholeToken"/> on its whole state after the attention sub-block.</param>
    public static Result Forward(VitWeights w, float[] img, float[]? thresholds = null, double[,]? msaMask = null, bool maskWholeToken = false)
    {
        var c = w.Config;
        int d = c.EmbedDim, p = c.PatchSize, g = c.GridSize, size = c.ImageSize;
        long macs = (long)c.Patches * c.PatchVectorLength * d;
        var x = new List<double[]>();
        for (int t = 0; t < c.Tokens; t++) x.Add(new double[d]);
        for (int i = 0; i < d; i++) x[0][i] = w.ClassToken[i];
        if (c.HasDistillationToken) for (int i = 0; i < d; i++) x[1][i] = w.DistillationToken![i];
        for (int gy = 0; gy < g; gy++)
            for (int gx = 0; gx < g; gx++)
            {
                var row = x[c.PrefixTokens + gy * g + gx];
                for (int o = 0; o < d; o++)
                {
                    double s = w.PatchEmbed.Bias[o];
                    for (int ch = 0; ch < c.InChannels; ch++)
                        for (int ky = 0; ky < p; ky++)
                            for (int kx = 0; kx < p; kx++)
                                s += (double)w.PatchEmbed.Weight[((o * c.InChannels + ch) * p + ky) * p + kx]
                                     * img[(ch * size + gy * p + ky) * size + gx * p + kx];
                    row[o] = s;
                }
            }
        for (int t = 0; t < c.Tokens; t++) for (int i = 0; i < d; i++) x[t][i] += w.PositionEmbedding[t * d + i];

        var kept = new int[c.Depth];
        for (int l = 0; l < c.Depth; l++)
        {
            var b = w.Blocks[l];
            int n = x.Count;
            var qkv = x.Select(r => Linear(LayerNorm(r, b.Norm1, c.LayerNormEps), b.Qkv)).ToList();
            var attnOut = new double[n][];
            for (int t = 0; t < n; t++) attnOut[t] = new double[d];
            var clsScore = new double[n];
            int dh = c.HeadDim;
            for (int h = 0; h < c.Heads; h++)
                for (int i = 0; i < n; i++)
                {
                    var s = new double[n];
                    for (int j = 0; j < n; j++)
                    {
                        double dot = 0;
                        for (int e = 0; e < dh; e++) dot += qkv[i][h * dh + e] * qkv[j][d + h * dh + e];
                        s[j] = dot / Math.Sqrt(dh);
                    }
                    double max = s.Max(), sum = 0;
                    for (int j = 0; j < n; j++) { s[j] = Math.Exp(s[j] - max); sum += s[j]; }
                    for (int j = 0; j < n; j++) s[j] /= sum;
                    if (i == 0) for (int j = 0; j < n; j++) clsScore[j] += s[j] / c.Heads;
                    for (int j = 0; j < n; j++)
                        for (int e = 0; e < dh; e++) attnOut[i][h * dh + e] += s[j] * qkv[j][2 * d + h * dh + e];
                }
            for (int t = 0; t < n; t++) { var pr = Linear(attnOut[t], b.Proj); double m = msaMask?[l, t] ?? 1.0; for (int i = 0; i < d; i++) x[t][i] = maskWholeToken ? m * (x[t][i] + pr[i]) : x[t][i] + m * pr[i]; }
            macs += 4L * n * d * d + 2L * n * n * d;

            if (thresholds is not null)
            {
                var survivors = new List<double[]>();
                for (int t = 0; t < n; t++)
                    if (t < c.PrefixTokens || clsScore[t] > thresholds[l]) survivors.Add(x[t]);
                x = survivors;
            }
            n = x.Count;
            kept[l] = n;
            foreach (var r in x)
            {
                var hdn = Linear(LayerNorm(r, b.Norm2, c.LayerNormEps), b.Fc1).Select(Reference.Gelu).ToArray();
                var o = Linear(hdn, b.Fc2);
                for (int i = 0; i < d; i++) r[i] += o[i];
            }
            macs += 2L * n * d * c.MlpDim;
        }
        var logits = Linear(LayerNorm(x[0], w.FinalNorm, c.LayerNormEps), w.Head);
        macs += (long)d * c.Classes;
        if (w.HeadDistillation is { } hd)
        {
            var l2 = Linear(LayerNorm(x[1], w.FinalNorm, c.LayerNormEps), hd);
            for (int i = 0; i < logits.Length; i++) logits[i] = 0.5 * (logits[i] + l2[i]);
            macs += (long)d * c.Classes;
        }
        return new Result(logits, kept, macs);
    }

    /// <summary>Cross-entropy of softmax(logits) against a label, in double.</summary>
    public static double CrossEntropy(double[] logits, int label)
    {
        double max = logits.Max();
        double lse = max + Math.Log(logits.Sum(v => Math.Exp(v - max)));
        return lse - logits[label];
    }

    private static double[] LayerNorm(double[] x, Norm n, double eps)
    {
        double mean = x.Average(), var = x.Sum(v => (v - mean) * (v - mean)) / x.Length;
        return x.Select((v, i) => (v - mean) / Math.Sqrt(var + eps) * n.Gamma[i] + n.Beta[i]).ToArray();
    }

    private static double[] Linear(double[] x, Linear l)
    {
        var y = new double[l.Out];
        for (int o = 0; o < l.Out; o++)
        {
            double s = l.Bias[o];
            for (int i = 0; i < l.In; i++) s += (double)l.Weight[o * l.In + i] * x[i];
            y[o] = s;
        }
        return y;
    }
}
