using System.Buffers.Binary;
using System.Text;

namespace EdgeViT.Kernels.Model;

/// <summary>
/// The protobuf wire format's writing half, as much as ONNX needs (the counterpart of <see cref="ProtoReader"/>):
/// varints, fixed32 floats, and length-delimited strings, bytes and nested messages.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _out = new();

    public byte[] ToArray() => _out.ToArray();
    public long Length => _out.Length;

    private void Tag(int field, WireType wire) => Varint(((ulong)field << 3) | (ulong)wire);

    private void Varint(ulong value)
    {
        while (value >= 0x80) { _out.WriteByte((byte)(value | 0x80)); value >>= 7; }
        _out.WriteByte((byte)value);
    }

    public ProtoWriter Int(int field, long value) { Tag(field, WireType.Varint); Varint(unchecked((ulong)value)); return this; }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, WireType.Fixed32);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _out.Write(b);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, WireType.LengthDelimited);
        Varint((ulong)value.Length);
        _out.Write(value);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    /// <summary>Repeated int64 as one packed field.</summary>
    public ProtoWriter PackedInts(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values) inner.Varint(unchecked((ulong)v));
        return Bytes(field, inner.ToArray());
    }
}
