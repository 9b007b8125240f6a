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

/// <summary>
/// What a reducer sees at a block's reduction point: the residual stream after attention and what attention
/// computed on the way. Owned by the engine and reused for every block and image (views of its workspace).
/// Rows are tokens; row 0.. PrefixTokens-1 are CLS (and distillation).
/// </summary>
public sealed unsafe class TokenReductionContext
{
    internal TokenReductionContext(VitConfig config, SimdLevel simd, float* x, float* qkv, float* classScore,
        float* classAttentionPerHead, float* sizes, int* tokenIds)
    {
        Config = config;
        Simd = simd;
        X = x; Qkv = qkv; ClassScore = classScore; ClassAttentionPerHead = classAttentionPerHead; Sizes = sizes; TokenIds = tokenIds;
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
    /// RCTP's rule: keeps the prefix and every token whose head-averaged class attention is above
    /// <paramref name="threshold"/> (a NaN score is not), compacted in order like <see cref="Compact"/>.
    /// With <see cref="ScoreScale.RelativeToMean"/> the threshold is in units of the mean score over the patch
    /// tokens still alive (1 = uniform attention), so images whose class attention is flatter or sharper overall
    /// are cut at the same relative level: one O(n) pass for the mean, no sort.
    /// </summary>
    public int KeepAbove(float threshold, ScoreScale scale = ScoreScale.Raw)
    {
        float cut = threshold;
        if (scale == ScoreScale.RelativeToMean) cut = threshold * MeanPatchScore(ClassScore, PrefixTokens, Count);
        int kept = PrefixTokens;
        for (int t = PrefixTokens; t < Count; t++)
            if (ClassScore[t] > cut) MoveUp(t, kept++);
        return kept;
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
    }
}
