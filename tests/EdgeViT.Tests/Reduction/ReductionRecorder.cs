using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Tests.Reduction;

/// <summary>Wraps a policy and keeps what it saw at each block and what it left, for assertions against references.</summary>
internal sealed unsafe class ReductionRecorder(ITokenReducer inner) : ITokenReducer
{
    /// <summary>The block's input: n tokens' rows [n x D], qkv [n x 3D], class scores, sizes and ids.</summary>
    public sealed record Seen(int Block, int N, float[] X, float[] Qkv, float[] Scores, float[] Sizes, int[] Ids);
    /// <summary>What the policy left: rows, sizes and ids of the surviving tokens.</summary>
    public sealed record Left(int N, float[] X, float[] Sizes, int[] Ids);

    public readonly List<Seen> Before = [];
    public readonly List<Left> After = [];
    public string Name => inner.Name;
    public ReductionNeeds Needs => inner.Needs;

    public void BeginImage(TokenReductionContext context) { Before.Clear(); After.Clear(); inner.BeginImage(context); }

    public int Reduce(int block, TokenReductionContext c)
    {
        int n = c.Count, d = c.Dim;
        Before.Add(new Seen(block, n, new ReadOnlySpan<float>(c.X, n * d).ToArray(), new ReadOnlySpan<float>(c.Qkv, n * 3 * d).ToArray(),
            new ReadOnlySpan<float>(c.ClassScore, n).ToArray(), new ReadOnlySpan<float>(c.Sizes, n).ToArray(),
            new ReadOnlySpan<int>(c.TokenIds, n).ToArray()));
        int m = inner.Reduce(block, c);
        After.Add(new Left(m, new ReadOnlySpan<float>(c.X, m * d).ToArray(), new ReadOnlySpan<float>(c.Sizes, m).ToArray(),
            new ReadOnlySpan<int>(c.TokenIds, m).ToArray()));
        return m;
    }
}
