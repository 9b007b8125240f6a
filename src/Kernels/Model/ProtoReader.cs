using System.Buffers.Binary;
using System.Text;

namespace EdgeViT.Kernels.Model;

/// <summary>Protobuf wire types (protobuf.dev/programming-guides/encoding).</summary>
internal enum WireType { Varint = 0, Fixed64 = 1, LengthDelimited = 2, StartGroup = 3, EndGroup = 4, Fixed32 = 5 }

/// <summary>
/// A forward-only reader of the protobuf wire format over one message's bytes, just enough for ONNX.
/// It knows where its bytes sit in the file (<c>baseOffset</c>) so errors and recorded ranges use file
/// offsets. Malformed input throws <see cref="InvalidDataException"/>; the caller adds the file name.
/// </summary>
internal ref struct ProtoReader(ReadOnlySpan<byte> data, int baseOffset = 0)
{
    private readonly ReadOnlySpan<byte> _data = data;
    private readonly int _base = baseOffset;
    private int _pos;

    public readonly bool AtEnd => _pos >= _data.Length;
    /// <summary>Offset of the next byte in the whole file.</summary>
    public readonly int FilePosition => _base + _pos;

    /// <summary>Reads the next field key; false at the end of the message.</summary>
    public bool TryReadTag(out int field, out WireType wire)
    {
        field = 0; wire = default;
        if (AtEnd) return false;
        int at = FilePosition;
        ulong key = ReadVarint();
        ulong number = key >> 3;
        if (number == 0 || number > (1 << 29) - 1)
            throw new InvalidDataException($"invalid field number {number} at byte {at}");
        int type = (int)(key & 7);
        if (type > 5) throw new InvalidDataException($"invalid wire type {type} at byte {at}");
        field = (int)number;
        wire = (WireType)type;
        return true;
    }

    public ulong ReadVarint()
    {
        int at = FilePosition;
        ulong result = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (AtEnd) throw new InvalidDataException($"varint at byte {at} runs past the end of its message (truncated?)");
            byte b = _data[_pos++];
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
        }
        throw new InvalidDataException($"varint at byte {at} is longer than 10 bytes");
    }

    public long ReadInt64() => (long)ReadVarint();

    public uint ReadFixed32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, "fixed32"));

    public ulong ReadFixed64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "fixed64"));

    public float ReadFloat() => BitConverter.UInt32BitsToSingle(ReadFixed32());

    /// <summary>A length-delimited field's payload; <paramref name="fileOffset"/> is where it starts in the file.</summary>
    public ReadOnlySpan<byte> ReadBytes(out int fileOffset, string what = "field")
    {
        int at = FilePosition;
        ulong length = ReadVarint();
        int remaining = _data.Length - _pos;
        if (length > (ulong)remaining)
            throw new InvalidDataException($"{what} at byte {at} declares {length} bytes but its enclosing message has only {remaining} left (truncated?)");
        fileOffset = FilePosition;
        return Take((int)length, "bytes");
    }

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes(out _));

    /// <summary>A reader over an embedded message; <paramref name="what"/> names it in errors.</summary>
    public ProtoReader ReadMessage(string what = "message")
    {
        var bytes = ReadBytes(out int offset, what);
        return new ProtoReader(bytes, offset);
    }

    public void Skip(WireType wire)
    {
        switch (wire)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Take(8, "fixed64"); break;
            case WireType.Fixed32: Take(4, "fixed32"); break;
            case WireType.LengthDelimited: ReadBytes(out _); break;
            // Groups are deprecated and never used by ONNX; refusing them keeps Skip simple.
            default: throw new InvalidDataException($"unsupported protobuf group before byte {FilePosition}");
        }
    }

    /// <summary>Throws unless a field has the wire type its schema says; <paramref name="what"/> names it.</summary>
    public readonly void Expect(WireType actual, WireType expected, string what)
    {
        if (actual != expected)
            throw new InvalidDataException($"{what} has wire type {actual} before byte {FilePosition}, expected {expected}");
    }

    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count > _data.Length - _pos)
            throw new InvalidDataException($"{what} at byte {FilePosition} runs past the end of its message (truncated?)");
        var span = _data.Slice(_pos, count);
        _pos += count;
        return span;
    }
}
