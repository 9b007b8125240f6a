namespace EdgeViT.Kernels.Reduction.Ltmp;

/// <summary>
/// What LTMP decided for one image, block by block (training only): every non-prefix token that met a
/// threshold, as a merge entry (a source merged away; value = its best cosine similarity) or a prune entry
/// (a token after merging; value = its importance; kept or not). These are exactly the places where the
/// paper's straight-through masks sit: m = 1 - sigmoid((sim - merge)/tau) on a merged source,
/// m = sigmoid((importance - prune)/tau) on every token that faces pruning. Preallocated; reused per image.
/// </summary>
public sealed class LtmpTrace
{
    public LtmpTrace(int depth, int maxTokens)
    {
        Depth = depth;
        TokensIn = new int[depth];
        Count = new int[depth];
        IsMerge = Enumerable.Range(0, depth).Select(_ => new bool[maxTokens]).ToArray();
        Kept = Enumerable.Range(0, depth).Select(_ => new bool[maxTokens]).ToArray();
        Id = Enumerable.Range(0, depth).Select(_ => new int[maxTokens]).ToArray();
        Value = Enumerable.Range(0, depth).Select(_ => new float[maxTokens]).ToArray();
    }

    public int Depth { get; }
    /// <summary>[block] tokens (prefix included) entering the block's attention.</summary>
    public int[] TokensIn { get; }
    /// <summary>[block] entries recorded.</summary>
    public int[] Count { get; }
    public bool[][] IsMerge { get; }
    /// <summary>Prune entries: survived the threshold. Merge entries: always false (merged away).</summary>
    public bool[][] Kept { get; }
    /// <summary>Original patch index (prefix included in the numbering, as <see cref="TokenReductionContext.TokenIds"/>).</summary>
    public int[][] Id { get; }
    public float[][] Value { get; }

    private int _block;

    internal void Begin() { Array.Clear(Count); Array.Clear(TokensIn); }

    internal void BlockInput(int block, int n) { _block = block; TokensIn[block] = n; Count[block] = 0; }

    internal void Merged(int id, float similarity) => Add(true, id, similarity, false);

    internal void PruneDecision(int id, float importance, bool kept) => Add(false, id, importance, kept);

    /// <summary>Adds an entry by hand (tests build traces with chosen entries).</summary>
    public void Add(int block, bool isMerge, int id, float value, bool kept) { _block = block; Add(isMerge, id, value, kept); }

    private void Add(bool isMerge, int id, float value, bool kept)
    {
        int b = _block, i = Count[b]++;
        IsMerge[b][i] = isMerge; Id[b][i] = id; Value[b][i] = value; Kept[b][i] = kept;
    }

    /// <summary>Tokens (prefix included) after block l's reduction, i.e. entering its MLP.</summary>
    public int TokensOut(int block, int prefix)
    {
        int kept = prefix;
        for (int i = 0; i < Count[block]; i++) if (!IsMerge[block][i] && Kept[block][i]) kept++;
        return Count[block] == 0 ? TokensIn[block] : kept;
    }
}
