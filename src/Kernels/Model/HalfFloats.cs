namespace EdgeViT.Kernels.Model;

/// <summary>Half-precision formats stored by some exporters, widened to float32 on load.</summary>
internal static class HalfFloats
{
    public static float FromHalfBits(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>bfloat16 is the top half of a float32.</summary>
    public static float FromBFloat16Bits(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    public static ushort ToHalfBits(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Rounds to nearest even (as torch does); NaN stays a quiet NaN instead of rounding to infinity.</summary>
    public static ushort ToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }
}
