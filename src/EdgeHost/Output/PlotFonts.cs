using ScottPlot;

namespace EdgeViT.Host.Output;

/// <summary>
/// ScottPlot draws with SkiaSharp, whose dependency-free Linux build does not ask fontconfig (text would come out
/// blank), so DejaVu Sans is registered from its file and made the default. Every plot EdgeViT draws calls this.
/// </summary>
public static class PlotFonts
{
    private static readonly string[] FontDirs = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF", "/usr/share/fonts/dejavu"];
    private const string FontName = "DejaVu Sans";
    private static readonly object Gate = new();
    private static bool _registered;

    /// <summary>The registered font's name, or null when no DejaVu file exists (plots still render, without text).</summary>
    public static string? Register()
    {
        lock (Gate)
        {
            if (_registered) return FontName;
            foreach (var dir in FontDirs)
            {
                string regular = Path.Combine(dir, "DejaVuSans.ttf"), bold = Path.Combine(dir, "DejaVuSans-Bold.ttf");
                if (!File.Exists(regular)) continue;
                Fonts.AddFontFile(FontName, regular, bold: false, italic: false);
                Fonts.AddFontFile(FontName, File.Exists(bold) ? bold : regular, bold: true, italic: false);
                Fonts.Default = FontName;
                _registered = true;
                return FontName;
            }
            return null;
        }
    }
}
