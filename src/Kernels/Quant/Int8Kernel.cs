using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// The int8 GEMM inner loops. Every one computes the same exact int32 sums of int8 x int8 products (weights in
/// [-64, 64], activations in [-127, 127]: <see cref="QuantizedLinear.WeightLevel"/>):
/// <list type="bullet">
/// <item><c>Maddubs*</c>: x86 without VNNI. <c>vpmaddubsw</c> (u8 activations = q + 128 x s8 weights, adjacent pairs
/// into int16: at most 2 * 255 * 64 = 32640, so it never saturates), <c>vpmaddwd</c> with ones (pairs into int32),
/// <c>vpaddd</c>; 4 k per lane, int8 panels. The accumulators start at -128 * (column sum), as for VNNI.</item>
/// <item><c>Madd*</c>: both operands sign-extended to int16, <c>vpmaddwd</c> (2 k per lane), <c>vpaddd</c>; weights
/// packed as int16 pairs. Madd128 is the SSE-only x86 kernel; Madd256/512 are the slower AVX2/AVX-512 alternatives
/// (kept for the tests and the benchmarks).</item>
/// <item><c>Vnni256</c>: AVX-VNNI <c>vpdpbusd</c>, 4 k per lane, u8 = q + 128 activations and the same correction.</item>
/// <item><c>ArmDot</c>: Armv8.2 SDOT (s8 x s8, 4 k per lane). <c>ArmWiden</c>: Armv8.0 (Cortex-A72, Pi 4):
/// SMULL to int16, pairwise widening adds to int32.</item>
/// <item><c>Scalar</c>: the same packing read one lane at a time.</item>
/// </list>
/// (.NET 10 has no 512-bit u8 x s8 VNNI API short of AVX10.2, so the 512-bit level uses vpmaddubsw.)
/// </summary>
public enum Int8Kernel { Scalar, Madd128, Madd256, Madd512, Vnni256, ArmDot, ArmWiden, Maddubs256, Maddubs512 }

public static class Int8Kernels
{
    /// <summary>The kernel for an fp32 SIMD level on this CPU (the level sets the vector width).</summary>
    public static Int8Kernel For(SimdLevel level) => level switch
    {
        // AVX-VNNI's 256-bit vpdpbusd beats 512-bit vpmaddwd + vpaddd (one instruction per 4 k instead of two per
        // 2 k, and int8 panels half the size of int16 ones, so a K=768 panel still fits L1): Zen 5 / Sapphire Rapids.
        SimdLevel.Vector512 when AvxVnni.IsSupported => Int8Kernel.Vnni256,
        // vpmaddubsw + vpmaddwd(ones) + vpaddd per 4 k beats vpmaddwd + vpaddd per 2 k: on Zen 4, 1.3x at
        // 512 bits and 1.2-1.25x at 256 bits (AVX-512 disabled) on DeiT-Tiny's shapes (edgevit-bench int8 --min).
        SimdLevel.Vector512 when Avx512BW.IsSupported => Int8Kernel.Maddubs512,
        SimdLevel.Vector256 when AvxVnni.IsSupported => Int8Kernel.Vnni256,
        SimdLevel.Vector256 when Avx2.IsSupported => Int8Kernel.Maddubs256,
        SimdLevel.Vector128 when Dp.IsSupported => Int8Kernel.ArmDot,
        SimdLevel.Vector128 when AdvSimd.Arm64.IsSupported => Int8Kernel.ArmWiden,
        SimdLevel.Vector128 when Sse2.IsSupported => Int8Kernel.Madd128,
        _ => Int8Kernel.Scalar,
    };

    /// <summary>Every kernel this process can run (the tests check each against the integer reference).</summary>
    public static IReadOnlyList<Int8Kernel> Supported { get; } = Enum.GetValues<Int8Kernel>().Where(IsSupported).ToArray();

    public static bool IsSupported(Int8Kernel kernel) => kernel switch
    {
        Int8Kernel.Scalar => true,
        Int8Kernel.Madd128 => Sse2.IsSupported,
        Int8Kernel.Madd256 => Avx2.IsSupported,
        Int8Kernel.Madd512 => Avx512BW.IsSupported,
        Int8Kernel.Vnni256 => AvxVnni.IsSupported,
        Int8Kernel.ArmDot => Dp.IsSupported,
        Int8Kernel.ArmWiden => AdvSimd.Arm64.IsSupported,
        Int8Kernel.Maddubs256 => Avx2.IsSupported,
        Int8Kernel.Maddubs512 => Avx512BW.IsSupported,
        _ => false,
    };

    /// <summary>int32 lanes per vector; a panel is two vectors of columns.</summary>
    public static int Lanes(Int8Kernel kernel) => kernel switch
    {
        Int8Kernel.Madd512 or Int8Kernel.Maddubs512 => 16,
        Int8Kernel.Madd256 or Int8Kernel.Vnni256 or Int8Kernel.Maddubs256 => 8,
        Int8Kernel.Madd128 or Int8Kernel.ArmDot or Int8Kernel.ArmWiden => 4,
        _ => 1,
    };

    public static int PanelWidth(Int8Kernel kernel) => 2 * Lanes(kernel);

    /// <summary>k values per 4-byte group: 2 int16 for the vpmaddwd kernels, 4 int8 for the dot-product ones.</summary>
    public static int KGroup(Int8Kernel kernel) => IsMadd(kernel) ? 2 : 4;

    /// <summary>The u8 activation offset of the u8 x s8 kernels (0 for the others); the packed weights carry -offset * column sum.</summary>
    public static int ActivationOffset(Int8Kernel kernel) =>
        kernel is Int8Kernel.Vnni256 or Int8Kernel.Maddubs256 or Int8Kernel.Maddubs512 ? 128 : 0;

    public static bool IsMadd(Int8Kernel kernel) => kernel is Int8Kernel.Madd128 or Int8Kernel.Madd256 or Int8Kernel.Madd512;

    /// <summary>
    /// Rows per microkernel call: 12 with 32 vector registers, 6 with 16 (AVX2), 4 scalar. vpmaddubsw with 16
    /// registers: 5 (10 accumulators + 2 B + broadcast + product + the ones vector; 6 rows spill an accumulator
    /// and measured no faster, 4 were 2-3 % slower). vpdpbusd on an AVX-512
    /// CPU: the .NET 10 JIT EVEX-encodes it, so B and the broadcast may sit in ymm16-31, but it keeps the
    /// accumulator (the tied destination) in ymm0-15 and shuffles through ymm15 beyond that (12 rows: 22 extra
    /// moves and a spill per k group); 8 rows = 16 accumulators fit exactly (5 % faster than 6 on Emerald Rapids).
    /// </summary>
    public static int RowBlock(Int8Kernel kernel) => kernel switch
    {
        Int8Kernel.Scalar => 4,
        Int8Kernel.Madd512 or Int8Kernel.Maddubs512 or Int8Kernel.ArmDot => 12,
        Int8Kernel.ArmWiden => 8,
        Int8Kernel.Madd128 or Int8Kernel.Madd256 => Avx512F.IsSupported ? 12 : 6,
        Int8Kernel.Maddubs256 => Avx512F.IsSupported ? 12 : 5,
        Int8Kernel.Vnni256 => Avx512F.IsSupported ? 8 : 6,
        _ => 6,
    };

    /// <summary>The fp32 level whose epilogue (GELU) width matches a kernel.</summary>
    public static SimdLevel Level(Int8Kernel kernel) => Lanes(kernel) switch
    {
        16 => SimdLevel.Vector512,
        8 => SimdLevel.Vector256,
        4 => SimdLevel.Vector128,
        _ => SimdLevel.Scalar,
    };
}
