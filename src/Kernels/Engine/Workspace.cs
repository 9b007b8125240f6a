using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Quant;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Engine;

/// <summary>Every activation buffer of a forward pass, sized once for the dense token count.</summary>
internal sealed unsafe class Workspace : IDisposable
{
    private readonly List<NativeBuffer> _buffers = [];
    public readonly int* TokenIds;
    public readonly float* X, Xn, Qkv, AttnOut, Hidden, Patches, KT, V, Scores, ClassAttention, ClassScore, Logits, Logits2, Sizes, KeyBias, RunningScore;
    public readonly int ChunkRows, ScoreStride;
    public readonly long KTStride, VStride;

    /// <summary>
    /// int8 attention (null for fp32 engines): each head's packed K^T and V with their column scales and
    /// accumulator starts, and per worker a chunk of quantised Q and P rows with their row scales.
    /// </summary>
    public readonly Int8AttentionBuffers? Int8;

    public sealed class Int8AttentionBuffers
    {
        public Int8Kernel Kernel;
        public byte* KT, V, Q, P;
        public float* KScale, VScale, QScale, PScale, ZeroBias, Scratch;
        public int* KCorr, VCorr;
        public long KTStride, VStride;
        public int KColumns, VColumns, QRowBytes, PRowBytes;
    }

    public Workspace(VitConfig c, SimdLevel level, int threads, Int8Kernel? int8Attention = null)
    {
        int t = c.Tokens, d = c.EmbedDim, w = Gemm.PanelWidth(level);
        ChunkRows = 2 * Gemm.RowBlock(level);
        ScoreStride = (t + w - 1) / w * w;
        KTStride = Gemm.PackedLength(level, c.HeadDim, t);
        VStride = Gemm.PackedLength(level, t, c.HeadDim);
        X = Alloc((long)t * d);
        Xn = Alloc((long)t * d);
        Qkv = Alloc((long)t * 3 * d);
        AttnOut = Alloc((long)t * d);
        Hidden = Alloc((long)t * c.MlpDim);
        Patches = Alloc((long)c.Patches * c.PatchVectorLength);
        KT = Alloc(c.Heads * KTStride);
        V = Alloc(c.Heads * VStride);
        Scores = Alloc((long)threads * ChunkRows * ScoreStride);
        ClassAttention = Alloc((long)c.Heads * t);
        ClassScore = Alloc(t);
        Logits = Alloc(c.Classes);
        Logits2 = Alloc(c.Classes);
        TokenIds = (int*)Alloc(t); // int and float are both 4 bytes
        Sizes = Alloc(t);
        KeyBias = Alloc(ScoreStride);
        RunningScore = Alloc(t);
        if (int8Attention is { } k)
        {
            int hd = c.HeadDim, rows = ChunkRows;
            var b = Int8 = new Int8AttentionBuffers
            {
                Kernel = k,
                KTStride = Int8Attention.KeysBytes(k, t, hd), VStride = Int8Attention.ValuesBytes(k, t, hd),
                KColumns = Int8Attention.PaddedColumns(k, t), VColumns = Int8Attention.PaddedColumns(k, hd),
                QRowBytes = Int8Attention.RowBytes(k, hd), PRowBytes = Int8Attention.RowBytes(k, t),
            };
            b.KT = AllocBytes(c.Heads * b.KTStride);
            b.V = AllocBytes(c.Heads * b.VStride);
            b.KScale = Alloc((long)c.Heads * b.KColumns);
            b.KCorr = (int*)Alloc((long)c.Heads * b.KColumns);
            b.VScale = Alloc((long)c.Heads * b.VColumns);
            b.VCorr = (int*)Alloc((long)c.Heads * b.VColumns);
            b.Q = AllocBytes((long)threads * rows * b.QRowBytes);
            b.P = AllocBytes((long)threads * rows * b.PRowBytes);
            b.QScale = Alloc((long)threads * rows);
            b.PScale = Alloc((long)threads * rows);
            b.ZeroBias = Alloc(Math.Max(b.KColumns, b.VColumns));
            b.Scratch = Alloc((long)c.Heads * 2 * hd);
        }
    }

    private byte* AllocBytes(long n) => (byte*)Alloc((n + 3) / 4);

    private float* Alloc(long n)
    {
        var b = new NativeBuffer(n);
        _buffers.Add(b);
        return b.Pointer;
    }

    public void Dispose() { foreach (var b in _buffers) b.Dispose(); }
}
