using System.Buffers;

namespace EdgeViT.Capture;

/// <summary>
/// MJPEG frame repair. Many UVC cameras send baseline JPEG frames without a DHT (Huffman table) segment: the
/// USB Video Class MJPEG payload says the standard tables of ITU-T T.81 Annex K.3 are implied. Strict decoders
/// then fail ("no Huffman table"); inserting those tables before the first scan makes the frame a normal JPEG.
/// </summary>
public static class Mjpeg
{
    /// <summary>Length of <see cref="StandardDhtSegment"/>: marker (2) + length field (2) + four tables (416).</summary>
    public const int DhtSegmentLength = 420;

    /// <summary>
    /// FF C4 then the four standard tables of T.81 K.3: DC luminance (class 0, id 0), DC chrominance (0, 1),
    /// AC luminance (1, 0), AC chrominance (1, 1), each as Tc/Th, 16 code-length counts, then the symbols.
    /// </summary>
    public static ReadOnlySpan<byte> StandardDhtSegment => DhtBytes;

    private static readonly byte[] DhtBytes = BuildDht();

    private static byte[] BuildDht()
    {
        ReadOnlySpan<byte> dcLumBits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        ReadOnlySpan<byte> dcChromBits = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
        ReadOnlySpan<byte> dcValues = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        ReadOnlySpan<byte> acLumBits = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
        ReadOnlySpan<byte> acLumValues =
        [
            0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
            0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
            0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
            0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
            0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
            0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
            0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
            0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
            0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
            0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
            0xf9, 0xfa,
        ];
        ReadOnlySpan<byte> acChromBits = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
        ReadOnlySpan<byte> acChromValues =
        [
            0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
            0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
            0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
            0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
            0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
            0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
            0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
            0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
            0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
            0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
            0xf9, 0xfa,
        ];

        var dht = new byte[DhtSegmentLength];
        int n = 0;
        dht[n++] = 0xFF; dht[n++] = 0xC4;
        dht[n++] = (DhtSegmentLength - 2) >> 8; dht[n++] = (DhtSegmentLength - 2) & 0xFF;
        void Table(byte classAndId, ReadOnlySpan<byte> bits, ReadOnlySpan<byte> values)
        {
            dht[n++] = classAndId;
            bits.CopyTo(dht.AsSpan(n)); n += 16;
            values.CopyTo(dht.AsSpan(n)); n += values.Length;
        }
        Table(0x00, dcLumBits, dcValues);
        Table(0x01, dcChromBits, dcValues);
        Table(0x10, acLumBits, acLumValues);
        Table(0x11, acChromBits, acChromValues);
        if (n != DhtSegmentLength) throw new InvalidOperationException($"standard DHT segment is {n} bytes, expected {DhtSegmentLength}");
        return dht;
    }

    /// <summary>True when the JPEG defines Huffman tables (a DHT segment) before its first scan.</summary>
    /// <exception cref="FormatException">Not a JPEG, or its header is truncated or corrupt.</exception>
    public static bool HasHuffmanTables(ReadOnlySpan<byte> jpeg) => FindMissingDhtInsertionPoint(jpeg) < 0;

    /// <summary>
    /// Writes <paramref name="jpeg"/> to <paramref name="output"/>, with the standard DHT segment inserted just before
    /// the first start-of-scan marker when the frame has no Huffman tables. Returns whether the tables were inserted.
    /// </summary>
    /// <exception cref="FormatException">Not a JPEG, or its header is truncated or corrupt.</exception>
    public static bool EnsureHuffmanTables(ReadOnlySpan<byte> jpeg, IBufferWriter<byte> output)
    {
        int at = FindMissingDhtInsertionPoint(jpeg);
        var span = output.GetSpan(jpeg.Length + (at < 0 ? 0 : DhtSegmentLength));
        int written = Write(jpeg, at, span);
        output.Advance(written);
        return at >= 0;
    }

    /// <summary>
    /// Span form of <see cref="EnsureHuffmanTables(ReadOnlySpan{byte}, IBufferWriter{byte})"/>: writes the repaired
    /// frame to <paramref name="destination"/> (needs up to jpeg.Length + <see cref="DhtSegmentLength"/> bytes) and
    /// returns its length. The two spans must not overlap.
    /// </summary>
    public static int EnsureHuffmanTables(ReadOnlySpan<byte> jpeg, Span<byte> destination, out bool inserted)
    {
        int at = FindMissingDhtInsertionPoint(jpeg);
        int length = jpeg.Length + (at < 0 ? 0 : DhtSegmentLength);
        if (destination.Length < length)
            throw new ArgumentException($"destination holds {destination.Length} bytes, the repaired JPEG needs {length}", nameof(destination));
        inserted = at >= 0;
        return Write(jpeg, at, destination);
    }

    private static int Write(ReadOnlySpan<byte> jpeg, int at, Span<byte> destination)
    {
        if (at < 0)
        {
            jpeg.CopyTo(destination);
            return jpeg.Length;
        }
        jpeg[..at].CopyTo(destination);
        DhtBytes.CopyTo(destination[at..]);
        jpeg[at..].CopyTo(destination[(at + DhtSegmentLength)..]);
        return jpeg.Length + DhtSegmentLength;
    }

    /// <summary>-1 when a DHT precedes the first SOS; otherwise the offset of that SOS marker (where tables go).</summary>
    internal static int FindMissingDhtInsertionPoint(ReadOnlySpan<byte> jpeg)
    {
        if (jpeg.Length < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8)
            throw new FormatException("not a JPEG frame (no SOI marker FF D8 at the start)");
        int pos = 2;
        while (pos + 1 < jpeg.Length)
        {
            if (jpeg[pos] != 0xFF) throw new FormatException($"corrupt JPEG header: expected a marker at byte {pos}, found 0x{jpeg[pos]:X2}");
            while (pos + 1 < jpeg.Length && jpeg[pos + 1] == 0xFF) pos++;   // fill bytes
            if (pos + 1 >= jpeg.Length) break;
            byte marker = jpeg[pos + 1];
            switch (marker)
            {
                case 0xC4: return -1;           // DHT
                case 0xDA: return pos;          // SOS: the scan starts without tables
                case 0xD9: throw new FormatException("corrupt JPEG: end-of-image before any scan");
                case 0x01:
                case >= 0xD0 and <= 0xD7:       // standalone markers (TEM, RSTn)
                    pos += 2;
                    continue;
            }
            if (pos + 3 >= jpeg.Length) break;
            int length = jpeg[pos + 2] << 8 | jpeg[pos + 3];
            if (length < 2) throw new FormatException($"corrupt JPEG header: segment 0xFF{marker:X2} at byte {pos} has length {length}");
            pos += 2 + length;
        }
        throw new FormatException($"truncated JPEG frame: no start-of-scan in {jpeg.Length} bytes");
    }
}
