using System.Runtime.InteropServices;
using SkiaSharp;

namespace EdgeViT.Imaging;

/// <summary>What to draw on a live frame.</summary>
public sealed record LiveOverlay(string Label, string Detail)
{
    /// <summary>Per patch of the model's grid (row-major), in how many blocks it was kept; null = no token overlay.</summary>
    public int[]? KeptBlocks { get; init; }
    public int Depth { get; init; }
    /// <summary>The model's input side and the resize of the short side before the centre crop (224 and 256 for DeiT).</summary>
    public int CropSize { get; init; } = 224;
    public int ResizeShortSide { get; init; } = 256;
}

/// <summary>
/// Draws the live view's frame (the service's latest camera frame) as a JPEG: the frame, a bar with the top-1 label
/// and score, and optionally the token overlay: the model's centre crop outlined and every patch dimmed by how early
/// RCTP dropped it (kept through all blocks = clear). Runs on the viewer's request, never on the inference path.
/// </summary>
public static class LiveFrameRenderer
{
    private static readonly Lazy<SKTypeface> Typeface = new(TokenMapRenderer.ResolveTypeface);

    /// <summary>Renders an RGB24 frame.</summary>
    public static byte[] RenderRgb(ReadOnlySpan<byte> rgb, int width, int height, int stride, LiveOverlay overlay, int quality = 80)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var row = new byte[width * 4];
        nint dst = bitmap.GetPixels();
        for (int y = 0; y < height; y++)
        {
            var src = rgb.Slice(y * stride, width * 3);
            for (int x = 0; x < width; x++)
            {
                row[4 * x] = src[3 * x]; row[4 * x + 1] = src[3 * x + 1]; row[4 * x + 2] = src[3 * x + 2]; row[4 * x + 3] = 255;
            }
            Marshal.Copy(row, 0, dst + y * bitmap.RowBytes, row.Length);
        }
        return Draw(bitmap, overlay, quality);
    }

    /// <summary>Renders an encoded (JPEG/PNG) frame; null when it does not decode.</summary>
    public static byte[]? RenderEncoded(ReadOnlySpan<byte> encoded, LiveOverlay overlay, int quality = 80)
    {
        using var data = SKData.CreateCopy(encoded);
        using var bitmap = SKBitmap.Decode(data);
        return bitmap is null ? null : Draw(bitmap, overlay, quality);
    }

    /// <summary>A placeholder (no frame yet, or HTTP-only service): dark panel with the text.</summary>
    public static byte[] Placeholder(string text, int width = 640, int height = 360)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor(24, 26, 30));
            using var font = new SKFont(Typeface.Value, 20);
            using var ink = new SKPaint { Color = new SKColor(200, 200, 200), IsAntialias = true };
            canvas.DrawText(text, 20, height / 2f, font, ink);
        }
        return Encode(bitmap, 80);
    }

    private static byte[] Draw(SKBitmap bitmap, LiveOverlay o, int quality)
    {
        int w = bitmap.Width, h = bitmap.Height;
        using (var canvas = new SKCanvas(bitmap))
        {
            if (o.KeptBlocks is { Length: > 0 } kept && o.Depth > 0) DrawTokens(canvas, w, h, kept, o);
            float size = Math.Clamp(h / 18f, 14, 40);
            using var font = new SKFont(Typeface.Value, size) { Embolden = true };
            using var small = new SKFont(Typeface.Value, size * 0.7f);
            using var bar = new SKPaint { Color = new SKColor(0, 0, 0, 170) };
            using var ink = new SKPaint { Color = SKColors.White, IsAntialias = true };
            using var dim = new SKPaint { Color = new SKColor(210, 210, 210), IsAntialias = true };
            float barH = size * 1.9f;
            canvas.DrawRect(0, 0, w, barH, bar);
            canvas.DrawText(o.Label, size * 0.4f, size * 1.1f, font, ink);
            canvas.DrawText(o.Detail, size * 0.4f, size * 1.1f + small.Size * 1.05f, small, dim);
        }
        return Encode(bitmap, quality);
    }

    private static void DrawTokens(SKCanvas canvas, int w, int h, int[] kept, LiveOverlay o)
    {
        int grid = (int)Math.Round(Math.Sqrt(kept.Length));
        if (grid * grid != kept.Length) return;
        // The model sees the centre square of side short*crop/resize (resize short side, then centre crop).
        float side = Math.Min(w, h) * (float)o.CropSize / o.ResizeShortSide;
        float x0 = (w - side) / 2, y0 = (h - side) / 2, cell = side / grid;
        using var shade = new SKPaint();
        for (int p = 0; p < kept.Length; p++)
        {
            float dropped = 1 - Math.Clamp(kept[p] / (float)o.Depth, 0, 1);
            if (dropped <= 0) continue;
            shade.Color = new SKColor(0, 0, 0, (byte)(40 + 150 * dropped));
            canvas.DrawRect(x0 + p % grid * cell, y0 + p / grid * cell, cell, cell, shade);
        }
        using var outline = new SKPaint { Color = new SKColor(80, 200, 255), IsStroke = true, StrokeWidth = 2 };
        canvas.DrawRect(x0, y0, side, side, outline);
    }

    private static byte[] Encode(SKBitmap bitmap, int quality)
    {
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, quality);
        return data.ToArray();
    }
}
