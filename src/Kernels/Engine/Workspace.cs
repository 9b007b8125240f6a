using EdgeViT.Kernels.Model;
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

    public Workspace(VitConfig c, SimdLevel level, int threads)
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
    }

    private float* Alloc(long n)
    {
        var b = new NativeBuffer(n);
        _buffers.Add(b);
        return b.Pointer;
    }

    public void Dispose() { foreach (var b in _buffers) b.Dispose(); }
}
