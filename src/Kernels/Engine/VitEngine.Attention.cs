using EdgeViT.Kernels.Reduction;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

public sealed unsafe partial class VitEngine
{
    /// <summary>What the attention tasks share; lives on the caller's stack while the pool runs.</summary>
    private struct AttentionJob
    {
        public float* Qkv, Out, KT, V, Scores, ClassAttention, KeyBias, Probabilities;
        public int Tokens, QueryRows, Dim, Heads, HeadDim, ChunkRows, Chunks, PanelWidth, ScoreStride, MaxTokens;
        public bool Proportional;
        public long KTStride, VStride, ScratchStride;
        public float Scale;
        public SimdLevel Level;
    }

    /// <summary>
    /// Multi-head self-attention on the qkv rows [n x 3D] into AttnOut [n x D]. Phase 1 packs each head's
    /// K^T and V as GEMM panels; phase 2 runs (head, row chunk) tasks: S = Q K^T, softmax, S V, so a chunk's
    /// scores stay in L1. Row 0 of each head's softmax (the class attention) is kept for pruning.
    /// </summary>
    /// <param name="proportional">ToMe's proportional attention: log(token size) is added to every key's logit.</param>
    /// <param name="probabilities">when not null, every head's softmax rows are copied there [head][query][key].</param>
    /// <param name="queryRows">rows 0..queryRows-1 get output (the last block needs only the prefix); all n are keys.</param>
    /// <param name="rule">RCTP's rule: how heads pool into the class score, and the cap on the size proportional attention sees.</param>
    /// <param name="firstBlock">block 0: the running score (rule.ScoreMemory) starts at this block's score.</param>
    private void Attention(int n, bool proportional, float* probabilities, int queryRows, ThresholdRule rule, bool firstBlock)
    {
        var c = Config;
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        if (proportional) // the softmax scales its input, so pre-divide the bias: scale * (x + log(s) / scale)
            for (int t = 0; t < n; t++) _ws.KeyBias[t] = MathF.Log(rule.ProportionalSize(_ws.Sizes[t])) / scale;
        var job = new AttentionJob
        {
            Qkv = _ws.Qkv, Out = _ws.AttnOut, KT = _ws.KT, V = _ws.V, Scores = _ws.Scores, ClassAttention = _ws.ClassAttention,
            Tokens = n, QueryRows = queryRows, Dim = c.EmbedDim, Heads = c.Heads, HeadDim = c.HeadDim, MaxTokens = c.Tokens,
            ChunkRows = _ws.ChunkRows, PanelWidth = Gemm.PanelWidth(Simd), ScoreStride = _ws.ScoreStride,
            KTStride = _ws.KTStride, VStride = _ws.VStride, ScratchStride = (long)_ws.ChunkRows * _ws.ScoreStride,
            Scale = scale, Level = Simd, Proportional = proportional, KeyBias = _ws.KeyBias, Probabilities = probabilities,
        };
        job.Chunks = (queryRows + job.ChunkRows - 1) / job.ChunkRows;
        _pool.Run(2 * c.Heads, &PackHead, &job);
        _pool.Run(c.Heads * job.Chunks, &AttendChunk, &job);

        // The score RCTP's thresholds are compared with: class attention pooled over heads as the rule says.
        if (rule.Heads == HeadPooling.ValueWeighted) ValueWeightedScores(n);
        else PooledClassAttention(n, rule.Heads);
        float m = rule.ScoreMemory;
        if (m > 0) // running mean over blocks: the token's earlier score carries weight m
            for (int t = 0; t < n; t++)
                _ws.ClassScore[t] = _ws.RunningScore[t] = firstBlock ? _ws.ClassScore[t] : m * _ws.RunningScore[t] + (1 - m) * _ws.ClassScore[t];
    }

    /// <summary>ClassScore[t] = the mean, the max, or the prefix-excluded mean over heads of the class attention.</summary>
    private void PooledClassAttention(int n, HeadPooling pooling)
    {
        var c = Config;
        float inv = 1f / c.Heads;
        Span<float> headWeight = stackalloc float[pooling == HeadPooling.MeanWithoutPrefix ? c.Heads : 0];
        for (int h = 0; h < headWeight.Length; h++)
        {
            float prefix = 0; // what a head leaves for the non-prefix tokens is 1 - its prefix attention
            for (int p = 0; p < c.PrefixTokens; p++) prefix += _ws.ClassAttention[h * c.Tokens + p];
            headWeight[h] = 1 / MathF.Max(1 - prefix, 1e-20f);
        }
        for (int t = 0; t < n; t++)
        {
            float s = pooling == HeadPooling.Max ? float.NegativeInfinity : 0;
            for (int h = 0; h < c.Heads; h++)
            {
                float a = _ws.ClassAttention[h * c.Tokens + t];
                s = pooling switch { HeadPooling.Max => MathF.Max(s, a), HeadPooling.MeanWithoutPrefix => s + a * headWeight[h], _ => s + a };
            }
            _ws.ClassScore[t] = pooling == HeadPooling.Max ? s : s * inv;
        }
    }

    /// <summary>
    /// ClassScore[t] = mean over heads of a_ht |v_ht| / sum_t' a_ht' |v_ht'| (<see cref="HeadPooling.ValueWeighted"/>),
    /// with v_ht the token's value in head h from the qkv rows.
    /// </summary>
    private void ValueWeightedScores(int n)
    {
        var c = Config;
        int ld = 3 * c.EmbedDim;
        Span<float> part = stackalloc float[n];
        new Span<float>(_ws.ClassScore, n).Clear();
        for (int h = 0; h < c.Heads; h++)
        {
            float* a = _ws.ClassAttention + h * c.Tokens, v = _ws.Qkv + 2 * c.EmbedDim + h * c.HeadDim;
            float sum = 0;
            for (int t = 0; t < n; t++)
            {
                float* vt = v + (long)t * ld;
                sum += part[t] = a[t] * MathF.Sqrt(Elementwise.Dot(Simd, vt, vt, c.HeadDim));
            }
            float r = 1 / (MathF.Max(sum, float.Epsilon) * c.Heads);
            for (int t = 0; t < n; t++) _ws.ClassScore[t] += part[t] * r;
        }
    }

    private static void PackHead(void* ctx, int task, int worker)
    {
        ref var j = ref *(AttentionJob*)ctx;
        int h = task >> 1, ld = 3 * j.Dim;
        if ((task & 1) == 0) // K^T: the right operand of Q K^T, [head dim x tokens]
            Gemm.PackTransposed(j.Qkv + j.Dim + h * j.HeadDim, ld, j.Tokens, j.HeadDim, j.PanelWidth, j.KT + h * j.KTStride);
        else // V: the right operand of S V, [tokens x head dim]
            Gemm.PackRowMajor(j.Qkv + 2 * j.Dim + h * j.HeadDim, ld, j.Tokens, j.HeadDim, j.PanelWidth, j.V + h * j.VStride);
    }

    private static void AttendChunk(void* ctx, int task, int worker)
    {
        ref var j = ref *(AttentionJob*)ctx;
        // Row chunk major (the pool's threads take contiguous task runs, so each keeps to its own rows), head minor.
        int h = task % j.Heads, r0 = task / j.Heads * j.ChunkRows, rows = Math.Min(j.ChunkRows, j.QueryRows - r0);
        float* s = j.Scores + worker * j.ScratchStride;
        float* q = j.Qkv + (long)r0 * 3 * j.Dim + h * j.HeadDim;
        Gemm.MultiplyPacked(j.Level, q, 3 * j.Dim, rows, j.KT + h * j.KTStride, null, j.HeadDim, j.Tokens, s, j.ScoreStride);
        for (int r = 0; r < rows; r++)
        {
            float* row = s + (long)r * j.ScoreStride;
            if (j.Proportional) Elementwise.AddInPlace(j.Level, row, j.KeyBias, j.Tokens);
            Elementwise.Softmax(j.Level, row, j.Tokens, j.Scale);
            if (j.Probabilities != null)
                new ReadOnlySpan<float>(row, j.Tokens).CopyTo(new Span<float>(j.Probabilities + ((long)h * j.MaxTokens + r0 + r) * j.ScoreStride, j.Tokens));
        }
        if (r0 == 0) new ReadOnlySpan<float>(s, j.Tokens).CopyTo(new Span<float>(j.ClassAttention + h * j.MaxTokens, j.Tokens));
        Gemm.MultiplyPacked(j.Level, s, j.ScoreStride, rows, j.V + h * j.VStride, null, j.Tokens, j.HeadDim,
            j.Out + (long)r0 * j.Dim + h * j.HeadDim, j.Dim);
    }
}
