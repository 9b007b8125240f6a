using System.Text.RegularExpressions;

namespace EdgeViT.Kernels.Model;

/// <summary>timm's ViT/DeiT tensor names, and the short aliases some ONNX exports use for them.</summary>
internal static partial class TimmNames
{
    /// <summary>
    /// The timm name for a tensor name found in a file, or null if it is not a ViT weight.
    /// timm names pass through; torch-1.13 style exports of flat blocks ("blocks.3.qkv.bias",
    /// "patch.weight") are moved to timm's module paths.
    /// </summary>
    public static string? Canonicalize(string name)
    {
        if (Canonical().IsMatch(name)) return name;
        var m = ShortBlockAlias().Match(name);
        if (m.Success)
        {
            string module = m.Groups[2].Value is "qkv" or "proj" ? "attn" : "mlp";
            return $"blocks.{m.Groups[1].Value}.{module}.{m.Groups[2].Value}.{m.Groups[3].Value}";
        }
        m = ShortPatchAlias().Match(name);
        return m.Success ? $"patch_embed.proj.{m.Groups[1].Value}" : null;
    }

    /// <summary>The timm module of a linear layer: role qkv/proj/fc1/fc2 in a block, or head/head_dist.</summary>
    public static string LinearModule(string role, int block) => role switch
    {
        "qkv" or "proj" => $"blocks.{block}.attn.{role}",
        "fc1" or "fc2" => $"blocks.{block}.mlp.{role}",
        _ => role,
    };

    public static bool IsBlockRole(string role) => role is "qkv" or "proj" or "fc1" or "fc2";

    [GeneratedRegex(@"^(cls_token|dist_token|pos_embed|patch_embed\.proj\.(weight|bias)|norm\.(weight|bias)|head(_dist)?\.(weight|bias)|blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias))$", RegexOptions.CultureInvariant)]
    private static partial Regex Canonical();

    [GeneratedRegex(@"^blocks\.(\d+)\.(qkv|proj|fc1|fc2)\.(weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex ShortBlockAlias();

    [GeneratedRegex(@"^patch\.(weight|bias)$", RegexOptions.CultureInvariant)]
    private static partial Regex ShortPatchAlias();
}
