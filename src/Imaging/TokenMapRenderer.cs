using SkiaSharp;

namespace EdgeViT.Imaging;

/// <summary>
/// Renders what token pruning kept: the model's input crop once per block, with dropped patches dimmed
/// and crossed out, in a grid of panels (the picture used to judge whether pruning keeps the object).
/// </summary>
public static class TokenMapRenderer
{
    /// <param name="crop">The model's input as RGB24 [size x size] (de-normalised crop).</param>
    /// <param name="keptPatches">Per block, the patch indices (0-based, row-major on the grid) still alive after it.</param>
    public static void Render(string path, byte[] crop, int size, int patch, IReadOnlyList<IReadOnlyCollection<int>> keptPatches,
        IReadOnlyList<string> captions, string title, int columns = 4)
    {
        int blocks = keptPatches.Count, grid = size / patch, rows = (blocks + columns - 1) / columns;
        const int pad = 8, captionH = 18, titleH = 26;
        int scale = 1;
        int w = columns * (size * scale + pad) + pad, h = titleH + rows * (size * scale + captionH + pad) + pad;

        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var source = ToBitmap(crop, size);
        using var typeface = ResolveTypeface();
        using var font = new SKFont(typeface, 13);
        using var titleFont = new SKFont(typeface, 15);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        using var dim = new SKPaint { Color = new SKColor(0, 0, 0, 170) };
        using var cross = new SKPaint { Color = new SKColor(255, 255, 255, 90), StrokeWidth = 1, IsStroke = true };
        canvas.DrawText(title, pad, 18, titleFont, ink);

        for (int b = 0; b < blocks; b++)
        {
            int x0 = pad + b % columns * (size * scale + pad);
            int y0 = titleH + b / columns * (size * scale + captionH + pad);
            canvas.DrawBitmap(source, new SKRect(x0, y0, x0 + size * scale, y0 + size * scale));
            var kept = keptPatches[b] as ISet<int> ?? keptPatches[b].ToHashSet();
            for (int p = 0; p < grid * grid; p++)
            {
                if (kept.Contains(p)) continue;
                float px = x0 + p % grid * patch * scale, py = y0 + p / grid * patch * scale, s = patch * scale;
                canvas.DrawRect(px, py, s, s, dim);
                canvas.DrawLine(px, py, px + s, py + s, cross);
            }
            canvas.DrawText(captions[b], x0, y0 + size * scale + 14, font, ink);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 90);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    // The dependency-free Skia build does not ask fontconfig, so its default typeface draws nothing:
    // load a common system font by path (DejaVu ships with Debian/Raspberry Pi OS), else fall back.
    private static readonly string[] FontPaths =
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    ];

    internal static SKTypeface ResolveTypeface()
    {
        foreach (var path in FontPaths)
            if (File.Exists(path) && SKTypeface.FromFile(path) is { } face) return face;
        return SKTypeface.CreateDefault();
    }

    private static SKBitmap ToBitmap(byte[] rgb, int size)
    {
        var bmp = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = new byte[size * size * 4];
        for (int i = 0; i < size * size; i++)
        {
            pixels[4 * i] = rgb[3 * i]; pixels[4 * i + 1] = rgb[3 * i + 1]; pixels[4 * i + 2] = rgb[3 * i + 2]; pixels[4 * i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bmp.GetPixels(), pixels.Length);
        return bmp;
    }
}
