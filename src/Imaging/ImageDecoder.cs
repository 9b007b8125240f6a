namespace EdgeViT.Imaging;

/// <summary>A decoded image as tightly packed RGB24 rows (Stride = Width*3).</summary>
public sealed class RgbImage(int width, int height, byte[] pixels)
{
    public int Width { get; } = width;
    public int Height { get; } = height;
    public int Stride => Width * 3;
    public byte[] Pixels { get; } = pixels;
}

/// <summary>A file or buffer that is not a decodable image; message is one line naming it.</summary>
public sealed class ImageDecodeException(string message) : Exception(message);

public static class ImageDecoder
{
    // CONTRACT STUB: FileNotFoundException for a missing path, ImageDecodeException otherwise.
    public static RgbImage Decode(string path) => throw new NotImplementedException();
    public static RgbImage Decode(ReadOnlySpan<byte> encoded, string what) => throw new NotImplementedException();
}
