using EdgeViT.Capture;
using EdgeViT.Host.Service;
using Xunit;

namespace EdgeViT.Tests.Integrations;

/// <summary>Source:Kind=libcamera from configuration to the rpicam-vid command line.</summary>
public class LibcameraServiceTests
{
    [Fact]
    public async Task SourceKeysReachTheCommandLine()
    {
        var o = new SourceOptions { Kind = SourceKind.Libcamera, Camera = 1, Width = 800, Height = 600, Fps = 15, Rotation = 180, Hflip = true, Codec = LibcameraCodec.Yuv420 };
        await using var source = new FrameSourceFactory().Create(o);
        var camera = Assert.IsType<LibcameraFrameSource>(source);
        Assert.Equal("libcamera:1 800x600 yuv420", camera.Name);
        string args = string.Join(" ", camera.Arguments());
        foreach (var expected in new[] { "--camera 1", "--width 800", "--height 600", "--framerate 15", "--codec yuv420", "--rotation 180", "--hflip" })
            Assert.Contains(expected, args);
    }

    [Fact]
    public void RotationOtherThan0Or180IsRefusedWithTheKey()
    {
        var o = new EdgeVitOptions { Model = "m.safetensors" };
        o.Source.Kind = SourceKind.Libcamera;
        o.Source.Rotation = 90;
        Assert.Contains("Source:Rotation must be 0 or 180 (got 90)", EdgeVitOptionsValidator.Check(o));
    }
}
