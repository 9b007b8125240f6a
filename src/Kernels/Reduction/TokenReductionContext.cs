using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Reduction;

/// <summary>What an RCTP threshold is compared with.</summary>
public enum ScoreScale
{
    /// <summary>The head-averaged class attention itself (thresholds files of version 1).</summary>
    Raw,
    /// <summary>Class attention divided by its mean over the patch tokens still alive in this image.</summary>
    RelativeToMean,
}

/// <summary>How the per-head class attention of a token becomes the one score a threshold is compared with.</summary>
public enum HeadPooling
{
    /// <summary>The mean over heads (versions 1 and 2 of the thresholds file).</summary>
    Mean,
    /// <summary>The largest over heads: a token that one head attends to strongly is kept.</summary>
    Max,
    /// <summary>The mean over heads of each head's attention renormalised without the prefix (a / (1 - a_prefix)): a head whose CLS mostly attends to itself counts as much as the others.</summary>
    MeanWithoutPrefix,
    /// <summary>
    /// The mean over heads of each head's class attention times the token's value norm in that head, renormalised over
    /// the tokens (ATS's significance score): head h's CLS output is the sum of a_ht v_ht, so a_ht |v_ht| is the size of
    /// token t's part in it, where attention alone ignores that some tokens' values are near zero.
    /// </summary>
    ValueWeighted,
}

/// <summary>
/// RCTP's threshold rule as a thresholds file states it: what the thresholds compare with (scale and head pooling),
/// and whether dropped tokens are fused. <paramref name="FusedSizeCap"/> &gt; 0 caps the size the fused token's
/// proportional attention sees (log(min(size, cap)) is added to its logit; 0 = uncapped, log(size)).
/// </summary>
/// <paramref name="ScoreMemory"/> m in [0, 1): the score at block l is the running mean s_l = m s_(l-1) + (1 - m) a_l of the
/// token's class attention over the blocks so far (s_0 = a_0), so one block's noisy attention alone does not drop a token; 0 = a_l.
public readonly record struct ThresholdRule(ScoreScale Scale = ScoreScale.Raw, bool FuseDropped = false, HeadPooling Heads = HeadPooling.Mean, float FusedSizeCap = 0, float ScoreMemory = 0)
{
    /// <summary>Version-1 files: raw class attention, dropped tokens are gone.</summary>
    public static ThresholdRule Raw => default;

    /// <summary>
    /// What calibration uses unless told otherwise: the value-weighted class score (<see cref="HeadPooling.ValueWeighted"/>)
    /// with the dropped tokens fused into one token whose proportional size is capped at <see cref="FusedSizeCapDefault"/>.
    /// Chosen on the two halves of imagenet-sample over the raw head-averaged attention (the rule before 2026-12-04, still
    /// <see cref="Raw"/>) and over either change alone; confirmed once on imagenet-val: +1.84 points [+0.61, +3.07] at
    /// 0.50 of dense FLOPs, +0.40 at 0.60 and 0.70, -0.48 [-1.01, 0.00] at 0.80 (bench/RESULTS.md §18).
    /// </summary>
    public static ThresholdRule Default => new(FuseDropped: true, Heads: HeadPooling.ValueWeighted, FusedSizeCap: FusedSizeCapDefault);

    /// <summary>The fused token's proportional-attention size cap when fusing is asked for without one (chosen on imagenet-sample).</summary>
    public const float FusedSizeCapDefault = 8;

    /// <summary>True when the rule needs version 3 of the thresholds file (head pooling or a size cap).</summary>
    public bool NeedsVersion3 => Heads != HeadPooling.Mean || (FuseDropped && FusedSizeCap > 0) || ScoreMemory > 0;

    /// <summary>The log-size proportional attention adds to a token's logit under this rule.</summary>
    public float ProportionalSize(float size) => FusedSizeCap > 0 ? MathF.Min(size, FusedSizeCap) : size;

    public override string ToString() =>
        $"{(Scale == ScoreScale.Raw ? "raw" : "relative")} {Heads switch { HeadPooling.Max => "max-over-heads ", HeadPooling.MeanWithoutPrefix => "prefix-excluded ", HeadPooling.ValueWeighted => "value-weighted ", _ => "" }}class attention" +
        (ScoreMemory > 0 ? $", running mean over blocks (memory {ScoreMemory:0.###})" : "") +
        (FuseDropped ? ", dropped tokens fused" + (FusedSizeCap > 0 ? $" (proportional size capped at {FusedSizeCap:0.###})" : "") : "");
}

/// <summary>
/// What a reducer sees at a block's reduction point: the residual stream after attention and what attention
/// computed on the way. Owned by the engine and reused for every block and image (views of its workspace).
/// Rows are tokens; row 0.. PrefixTokens-1 are CLS (and distillation).
/// </summary>
public sealed unsafe class TokenReductionContext
{
    internal TokenReductionContext(VitConfig config, SimdLevel simd, float* x, float* qkv, float* classScore,
        float* classAttentionPerHead, float* sizes, int* tokenIds, float* runningScore)
    {
        Config = config;
        Simd = simd;
        X = x; Qkv = qkv; ClassScore = classScore; ClassAttentionPerHead = classAttentionPerHead; Sizes = sizes; TokenIds = tokenIds;
        RunningScore = runningScore;
        _fuseAcc = new double[2 * config.EmbedDim];
    }

    public VitConfig Config { get; }
    public SimdLevel Simd { get; }
    public int Dim => Config.EmbedDim;
    public int Heads => Config.Heads;
    public int HeadDim => Config.HeadDim;
    public int PrefixTokens => Config.PrefixTokens;
    /// <summary>Row stride of per-head arrays indexed by token (the dense token count).</summary>
    public int MaxTokens => Config.Tokens;

    /// <summary>Block being reduced.</summary>
    public int Block { get; internal set; }
    /// <summary>Tokens entering this reduction (rows of X).</summary>
    public int Count { get; internal set; }

    /// <summary>[Count x Dim] residual stream x + MSA(LN1(x)): reduce it in place.</summary>
    public readonly float* X;
    /// <summary>[Count x 3 Dim] this block's q, k, v rows (head h's k at column Dim + h*HeadDim, v at 2 Dim + h*HeadDim).</summary>
    public readonly float* Qkv;
    /// <summary>[Count] class attention (CLS query row) averaged over heads.</summary>
    public readonly float* ClassScore;
    /// <summary>[Heads x MaxTokens] class attention per head.</summary>
    public readonly float* ClassAttentionPerHead;
    /// <summary>[Count] how many original patches each token stands for (1 until something merges).</summary>
    public readonly float* Sizes;
    /// <summary>[Count] original index of each token (0 = CLS; a merged token keeps its destination's id; -1: a token a policy created).</summary>
    public readonly int* TokenIds;
    /// <summary>[Count] each token's running-mean class score (<see cref="ThresholdRule.ScoreMemory"/>), moved with the token.</summary>
    internal readonly float* RunningScore;

    /// <summary>[Heads x MaxTokens x ProbabilityStride] softmax rows of every head; only with <see cref="ReductionNeeds.AttentionProbabilities"/>.</summary>
    public float* AttentionProbabilities { get; internal set; }
    public int ProbabilityStride { get; internal set; }

    /// <summary>Multiply-adds the reducer spent on this image (matching, PageRank, ...); reset per image by the engine.</summary>
    public long OverheadMultiplyAdds { get; set; }

    public Span<float> Row(int token) => new(X + (long)token * Dim, Dim);

    /// <summary>Attention probability of query i on key j in head h (needs <see cref="ReductionNeeds.AttentionProbabilities"/>).</summary>
    public float Probability(int head, int query, int key) =>
        AttentionProbabilities[((long)head * MaxTokens + query) * ProbabilityStride + key];

    /// <summary>
    /// Keeps the tokens whose flag is set (prefix tokens always), moving rows, ids and sizes up in order;
    /// returns the new count. In place: the write index never passes the read index.
    /// </summary>
    public int Compact(ReadOnlySpan<bool> keep)
    {
        int kept = PrefixTokens;
        for (int t = PrefixTokens; t < Count; t++)
            if (keep[t]) MoveUp(t, kept++);
        return kept;
    }

    /// <summary>
    /// RCTP's rule: keeps the prefix and every token whose class score (pooled over heads as the rule says) is above
    /// <paramref name="threshold"/> (a NaN score is not), compacted in order like <see cref="Compact"/>.
    /// With <see cref="ScoreScale.RelativeToMean"/> the threshold is in units of the mean score over the patch
    /// tokens still alive (1 = uniform attention), so images whose class attention is flatter or sharper overall
    /// are cut at the same relative level: one O(n) pass for the mean, no sort.
    /// With <see cref="ThresholdRule.FuseDropped"/> the dropped tokens are not lost but averaged, weighted by their
    /// class score (EViT), into one extra last token (id -1) whose size is the patches it stands for; a fused
    /// token from an earlier block is folded into the new one, so there is never more than one. Same pass, O(n d).
    /// </summary>
    public int KeepAbove(float threshold, ThresholdRule rule = default)
    {
        bool fuse = rule.FuseDropped;
        int end = Count;
        bool hadFused = fuse && end > PrefixTokens && TokenIds[end - 1] == FusedId;
        if (hadFused) end--; // the fused token is neither counted in the mean nor judged: it joins the new one
        float cut = threshold;
        if (rule.Scale == ScoreScale.RelativeToMean) cut = threshold * MeanPatchScore(ClassScore, PrefixTokens, end);
        int kept = PrefixTokens, d = Dim;
        double weight = 0, size = 0;
        if (fuse) _fuseAcc.AsSpan().Clear();
        for (int t = PrefixTokens; t < end; t++)
        {
            if (ClassScore[t] > cut) { MoveUp(t, kept++); continue; }
            if (fuse) Accumulate(t, ref weight, ref size);
        }
        if (!fuse) return kept;
        if (size == 0) // nothing dropped: an earlier fused token stays as it is, last
        {
            if (hadFused) MoveUp(end, kept++);
            return kept;
        }
        if (hadFused) Accumulate(end, ref weight, ref size);
        float* row = X + (long)kept * d;
        // Class attention is a softmax output, so weights are >= 0; all-zero weights (underflow) fall back to sizes.
        if (weight > 0) for (int j = 0; j < d; j++) row[j] = (float)(_fuseAcc[j] / weight);
        else for (int j = 0; j < d; j++) row[j] = (float)(_fuseAcc[d + j] / size);
        TokenIds[kept] = FusedId;
        Sizes[kept] = (float)size;
        RunningScore[kept] = 0; // never judged, so its running score is never read
        return kept + 1;
    }

    /// <summary>Token id of RCTP's fused token.</summary>
    public const int FusedId = -1;

    // [0, d): sum of score-weighted rows; [d, 2d): sum of size-weighted rows (the fallback)
    private readonly double[] _fuseAcc;

    private void Accumulate(int t, ref double weight, ref double size)
    {
        float* r = X + (long)t * Dim;
        double w = ClassScore[t], s = Sizes[t];
        if (!(w >= 0)) w = 0; // NaN never weighs
        for (int j = 0; j < Dim; j++) { _fuseAcc[j] += w * r[j]; _fuseAcc[Dim + j] += s * r[j]; }
        weight += w;
        size += s;
    }

    /// <summary>Mean class score over tokens prefix..count-1 (the unit of <see cref="ScoreScale.RelativeToMean"/>), summed in double.</summary>
    public static float MeanPatchScore(float* scores, int prefix, int count)
    {
        if (count <= prefix) return 0f;
        double sum = 0;
        for (int t = prefix; t < count; t++) sum += scores[t];
        return (float)(sum / (count - prefix));
    }

    private void MoveUp(int from, int to)
    {
        if (from == to) return;
        int d = Dim;
        new ReadOnlySpan<float>(X + (long)from * d, d).CopyTo(new Span<float>(X + (long)to * d, d));
        TokenIds[to] = TokenIds[from];
        Sizes[to] = Sizes[from];
        RunningScore[to] = RunningScore[from];
    }
}
