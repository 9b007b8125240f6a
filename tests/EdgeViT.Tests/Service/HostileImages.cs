using System.Buffers.Binary;
using System.IO.Compression;

namespace EdgeViT.Tests.Service;

/// <summary>Images that lie about their size, made in the test (nothing large is ever allocated to make them).</summary>
public static class HostileImages
{
    /// <summary>
    /// A PNG whose header declares <paramref name="width"/> x <paramref name="height"/> RGB pixels, followed by a
    /// deflate stream of its first zero rows (a decoder that trusted the header would allocate width*height*4 bytes).
    /// </summary>
    public static byte[] PngBomb(int width = 20_000, int height = 20_000, int rows = 16)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // RGB
        Chunk(png, "IHDR", ihdr);
        using (var raw = new MemoryStream())
        {
            using (var z = new ZLibStream(raw, CompressionLevel.Fastest, leaveOpen: true))
            {
                var row = new byte[1 + 3 * width];
                for (int r = 0; r < rows; r++) z.Write(row);
            }
            Chunk(png, "IDAT", raw.ToArray());
        }
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>A real JPEG whose SOF header is patched to declare <paramref name="width"/> x <paramref name="height"/>.</summary>
    public static byte[] JpegBomb(byte[] jpeg, int width = 60_000, int height = 60_000)
    {
        var copy = (byte[])jpeg.Clone();
        for (int i = 2; i + 9 < copy.Length;)
        {
            if (copy[i] != 0xFF) { i++; continue; }
            byte marker = copy[i + 1];
            int length = BinaryPrimitives.ReadUInt16BigEndian(copy.AsSpan(i + 2));
            if (marker is >= 0xC0 and <= 0xC3)
            {
                BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(i + 5), (ushort)height);
                BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(i + 7), (ushort)width);
                return copy;
            }
            i += 2 + length;
        }
        throw new InvalidDataException("no SOF marker");
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type, head[4..]);
        png.Write(head);
        png.Write(data);
        Span<byte> sum = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(sum, Crc32(data, Crc32(head[4..], 0xFFFFFFFF)) ^ 0xFFFFFFFF);
        png.Write(sum);
    }

    /// <summary>PNG's CRC-32 (reflected 0xEDB88320), bit by bit: a few hundred bytes per image.</summary>
    private static uint Crc32(ReadOnlySpan<byte> data, uint crc)
    {
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }
        return crc;
    }
}
