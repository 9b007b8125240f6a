using Xunit;
using EdgeViT.Host.Commands;
using EdgeViT.Host.Evaluation;

namespace EdgeViT.Tests.Cli;

public class SynsetAndLabelTests
{
    private static readonly string[] Three =
    [
        "n01440764 tench, Tinca tinca",
        "n01443537 goldfish, Carassius auratus",
        "n01484850 great white shark, white shark",
    ];

    [Fact]
    public void ParsesIdsAndWordsInLineOrder()
    {
        var table = SynsetTable.Parse(Three, "three.txt");
        Assert.Equal(3, table.Count);
        Assert.Equal("n01440764", table[0].Id);
        Assert.Equal("tench, Tinca tinca", table[0].Words);
        Assert.Equal("great white shark, white shark", table[2].Words);
        Assert.Equal(1, table.IndexOf("n01443537"));
        Assert.Null(table.IndexOf("n00000000"));
    }

    [Fact]
    public void TrailingBlankLinesAndCrlfAreFine()
    {
        var table = SynsetTable.Parse([Three[0] + "\r", Three[1], "", "  "], "t.txt");
        Assert.Equal(2, table.Count);
        Assert.Equal("tench, Tinca tinca", table[0].Words);
    }

    [Fact]
    public void SynsetWithoutWordsUsesTheId()
    {
        Assert.Equal("n01440764", SynsetTable.Parse(["n01440764"], "t.txt")[0].Words);
    }

    [Theory]
    [InlineData("tench n01440764")]
    [InlineData("n0144076 short id")]
    [InlineData("")]
    public void MalformedLineNamesFileAndLine(string bad)
    {
        var ex = Assert.Throws<InputException>(() => SynsetTable.Parse([Three[0], bad, Three[2]], "bad.txt"));
        Assert.Contains("bad.txt:2", ex.Message);
    }

    [Fact]
    public void DuplicateSynsetIsAnError()
    {
        var ex = Assert.Throws<InputException>(() => SynsetTable.Parse([Three[0], Three[1], Three[0]], "dup.txt"));
        Assert.Contains("n01440764", ex.Message);
    }

    [Fact]
    public void EmptyFileIsAnError()
    {
        Assert.Throws<InputException>(() => SynsetTable.Parse(["", ""], "empty.txt"));
    }

    [Theory]
    [InlineData("n01440764_tench.JPEG", "n01440764")]
    [InlineData("/some/dir/n01443537_goldfish.jpg", "n01443537")]
    [InlineData("n01443537.png", "n01443537")]
    [InlineData("n01443537_great_white_shark.JPEG", "n01443537")]
    [InlineData("tench.JPEG", null)]
    [InlineData("x01443537_tench.JPEG", null)]
    [InlineData("n0144353_tench.JPEG", null)]
    [InlineData("n014435377_tench.JPEG", null)]
    public void SynsetFromFileName(string file, string? expected)
    {
        Assert.Equal(expected, ImageLabels.SynsetOf(file));
    }

    [Fact]
    public void ClassOfImage()
    {
        var table = SynsetTable.Parse(Three, "three.txt");
        Assert.Equal(2, ImageLabels.ClassOf("/x/n01484850_great_white_shark.JPEG", table));
        var unknown = Assert.Throws<InputException>(() => ImageLabels.ClassOf("/x/n99999999_what.JPEG", table));
        Assert.Contains("n99999999_what.JPEG", unknown.Message);
        Assert.Contains("three.txt", unknown.Message);
        var unlabelled = Assert.Throws<InputException>(() => ImageLabels.ClassOf("/x/holiday.jpg", table));
        Assert.Contains("holiday.jpg", unlabelled.Message);
    }

    [Fact]
    public void SharedSynsetsMatchSharedImageNames()
    {
        var table = SynsetTable.Load(SharedAssets.Synsets);
        Assert.Equal(1000, table.Count);
        Assert.Equal("n01440764", table[0].Id);
        var images = SharedAssets.Images();
        Assert.Equal(1000, images.Length);
        // One image per class, and sorted names follow the class order.
        Assert.Equal(Enumerable.Range(0, 1000), images.Select(p => ImageLabels.ClassOf(p, table)));
    }

    [Fact]
    public void ImageFolderListsImagesSortedOrdinalAndHonoursLimit()
    {
        using var tmp = new TempDir();
        foreach (var name in new[] { "n2_b.JPEG", "n1_a.jpg", "N0_c.png", "readme.txt", ".hidden.jpg" })
            File.WriteAllText(tmp.File(name), "x");
        var all = ImageFolder.List(tmp.Path);
        Assert.Equal(["N0_c.png", "n1_a.jpg", "n2_b.JPEG"], all.Select(Path.GetFileName));
        Assert.Equal(["N0_c.png", "n1_a.jpg"], ImageFolder.List(tmp.Path, 2).Select(Path.GetFileName));
        Assert.Equal(3, ImageFolder.List(tmp.Path, 50).Count);
    }
}
