using EdgeViT.Imaging;
using Xunit;

namespace EdgeViT.Tests.Imaging;

public class TokenMapRendererTests
{
    [Fact]
    public void DroppedPatchesAreDimmedKeptOnesUntouchedAndCaptionsDrawn()
    {
        int size = 32, patch = 8; // a 4x4 grid
        var crop = new byte[size * size * 3];
        Array.Fill(crop, (byte)200);
        var path = Path.Combine(Path.GetTempPath(), $"edgevit-explain-{Guid.NewGuid():N}.png");
        try
        {
            TokenMapRenderer.Render(path, crop, size, patch, [new HashSet<int> { 0, 5 }, new HashSet<int>()], ["block 0: 2/16", "block 1: 0/16"], "title", columns: 2);
            var img = ImageDecoder.Decode(path);
            const int pad = 8, titleH = 26;
            byte At(int x, int y) => img.Pixels[(y * img.Width + x) * 3];
            Assert.True(img.Width == 2 * (size + pad) + pad, $"width {img.Width}");
            Assert.Equal(200, At(pad + 4, titleH + 4));               // patch 0 kept: untouched
            Assert.True(At(pad + 8 + 4, titleH + 2) < 120, $"patch 1 pixel {At(pad + 8 + 4, titleH + 2)}"); // patch 1 dropped: dimmed
            Assert.Equal(200, At(pad + 8 + 4, titleH + 8 + 4));       // patch 5 kept
            int x1 = pad + size + pad;                                 // second panel: everything dropped
            Assert.True(At(x1 + 5, titleH + 2) < 120, $"panel 2 pixel {At(x1 + 5, titleH + 2)}"); // off the cross-out diagonal
            // The caption row below the panels carries ink (a font was found or the default one drew).
            int dark = 0;
            for (int y = titleH + size; y < titleH + size + 18; y++)
                for (int x = pad; x < pad + size; x++) if (At(x, y) < 128) dark++;
            Assert.True(dark > 5, "caption text was not drawn");
        }
        finally { File.Delete(path); }
    }
}
