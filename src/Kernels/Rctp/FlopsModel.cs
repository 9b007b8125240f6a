using EdgeViT.Kernels.Model;

namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// Multiply-adds of a ViT as a function of tokens per block, the accounting the engine's counters use:
/// a block that takes n tokens into attention and keeps n' for its MLP costs 4nd^2 + 2n^2 d + 2n'd*mlp
/// (with mlp = 4d and n' = n this is RCTP's phi_BLK(n,d) = 12nd^2 + 2n^2 d).
/// </summary>
/// <param name="fusedToken">RCTP fuses dropped tokens into one extra token: once anything is dropped, every block carries one more token.</param>
public sealed class FlopsModel(VitConfig c, bool fusedToken = false)
{
    public VitConfig Config { get; } = c;
    public bool FusedToken { get; } = fusedToken;

    public double Attention(double n) => 4.0 * n * c.EmbedDim * c.EmbedDim + 2.0 * n * n * c.EmbedDim;
    public double Mlp(double n) => 2.0 * n * c.EmbedDim * c.MlpDim;
    public double Block(double nIn, double nOut) => Attention(nIn) + Mlp(nOut);

    /// <summary>Patch embedding and classifier head(s): paid whatever is pruned.</summary>
    public double Fixed => (double)c.Patches * c.PatchVectorLength * c.EmbedDim + (double)c.EmbedDim * c.Classes * (c.HasDistillationToken ? 2 : 1);

    public double Dense => Fixed + c.Depth * Block(c.Tokens, c.Tokens);

    /// <summary>Tokens (prefix and a fused token included) when a fraction <paramref name="keep"/> of the patch tokens is alive.</summary>
    public double Tokens(double keep) => c.PrefixTokens + keep * c.Patches + (fusedToken && keep < 1 ? 1 : 0);

    /// <summary>Total multiply-adds for tokens-after-pruning per block (prefix included).</summary>
    public double Total(IReadOnlyList<double> tokensAfterBlock)
    {
        double total = Fixed, nIn = c.Tokens;
        for (int l = 0; l < c.Depth; l++)
        {
            total += Block(nIn, tokensAfterBlock[l]);
            nIn = tokensAfterBlock[l];
        }
        return total;
    }
}
