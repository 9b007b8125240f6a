using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// Class attention and Fisher of every patch token of every block over the calibration set D, pooled.
/// Fisher is normalised per block (its scale falls off exponentially with depth) so that each block's
/// Fisher over D sums to 1. Per block, tokens are sorted by class attention, which gives the two curves
/// the planner needs: the score quantile (threshold for dropping the lowest fraction q of tokens) and the
/// cumulative Fisher lost by dropping that fraction. With <see cref="ScoreScale.RelativeToMean"/> each image's
/// scores of a block are first divided by their mean over its patches, as the runtime rule does.
/// </summary>
public sealed unsafe class CalibrationStatistics
{
    private readonly float[][] _sortedScores;   // [block][token over D], ascending class attention
    private readonly double[][] _fisherPrefix;  // [block][i] = normalised Fisher of the i lowest-score tokens

    public VitConfig Config { get; }
    public int Images { get; }
    public int TokensPerBlock => Images * Config.Patches;
    /// <summary>Mean raw (unnormalised) token Fisher per block: shows the fall-off normalisation removes.</summary>
    public double[] RawFisherMean { get; }

    public CalibrationStatistics(VitConfig config, IReadOnlyList<TokenStatistics> images, ScoreScale scale = ScoreScale.Raw)
    {
        if (images.Count == 0) throw new ArgumentException("calibration needs at least one image");
        Config = config;
        Images = images.Count;
        int p = config.Patches, total = Images * p;
        _sortedScores = new float[config.Depth][];
        _fisherPrefix = new double[config.Depth][];
        RawFisherMean = new double[config.Depth];
        var scores = new float[total];
        var fisher = new double[total];
        for (int l = 0; l < config.Depth; l++)
        {
            double sum = 0;
            for (int i = 0; i < Images; i++)
            {
                float unit = 1f;
                if (scale == ScoreScale.RelativeToMean)
                    fixed (float* row = &images[i].Scores[l * p]) unit = TokenReductionContext.MeanPatchScore(row, 0, p);
                for (int t = 0; t < p; t++)
                {
                    scores[i * p + t] = images[i].Scores[l * p + t] / unit;
                    fisher[i * p + t] = images[i].Fisher[l * p + t];
                    sum += images[i].Fisher[l * p + t];
                }
            }
            RawFisherMean[l] = sum / total;
            var order = Enumerable.Range(0, total).ToArray();
            var keys = (float[])scores.Clone();
            Array.Sort(keys, order);
            _sortedScores[l] = keys;
            var prefix = new double[total + 1];
            double norm = sum > 0 ? 1 / sum : 0;
            for (int i = 0; i < total; i++) prefix[i + 1] = prefix[i] + fisher[order[i]] * norm;
            _fisherPrefix[l] = prefix;
        }
    }

    /// <summary>Normalised Fisher lost by dropping the fraction q (0..1) of block l's tokens with the lowest class attention.</summary>
    public double FisherBelow(int block, double q)
    {
        var prefix = _fisherPrefix[block];
        double pos = Math.Clamp(q, 0, 1) * (prefix.Length - 1);
        int i = (int)Math.Floor(pos);
        if (i >= prefix.Length - 1) return prefix[^1];
        return prefix[i] + (prefix[i + 1] - prefix[i]) * (pos - i);
    }

    /// <summary>
    /// The class-attention threshold that drops the fraction q of block l's tokens on D (dense scores):
    /// midway between the last dropped and the first kept score; -inf for q = 0.
    /// </summary>
    public float ScoreQuantile(int block, double q)
    {
        var s = _sortedScores[block];
        int drop = (int)Math.Round(Math.Clamp(q, 0, 1) * s.Length);
        if (drop <= 0) return float.NegativeInfinity;
        if (drop >= s.Length) return s[^1];
        return 0.5f * (s[drop - 1] + s[drop]);
    }

    /// <summary>
    /// RCTP's L x M candidate table on the dense model: candidate m of block l drops the fraction m/M of the
    /// tokens reaching it, which cuts the FLOPs of every block from there on by about m/M; with its threshold,
    /// that block's FLOPs, and the Fisher it throws away (the FLOPs-Fisher table).
    /// </summary>
    public CandidateTable Candidates(int m)
    {
        var flops = new FlopsModel(Config);
        var rows = new CandidateTable.Entry[Config.Depth, m];
        for (int l = 0; l < Config.Depth; l++)
            for (int j = 0; j < m; j++)
            {
                double q = (double)j / m;
                double nOut = flops.Tokens(1 - q);
                rows[l, j] = new CandidateTable.Entry(ScoreQuantile(l, q), q, flops.Block(Config.Tokens, nOut), FisherBelow(l, q));
            }
        return new CandidateTable(rows);
    }
}

/// <summary>The L x M threshold candidates with their FLOPs and Fisher loss (dense model, block in isolation).</summary>
public sealed class CandidateTable(CandidateTable.Entry[,] entries)
{
    public readonly record struct Entry(float Threshold, double DropFraction, double BlockFlops, double FisherLoss);
    public int Blocks => entries.GetLength(0);
    public int Candidates => entries.GetLength(1);
    public Entry this[int block, int candidate] => entries[block, candidate];
}
