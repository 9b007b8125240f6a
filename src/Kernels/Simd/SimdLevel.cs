using System.Runtime.Intrinsics;

namespace EdgeViT.Kernels.Simd;

/// <summary>
/// The vector width a kernel runs at. Every kernel has a path for each level, so tests can run all the
/// levels this CPU supports in one process; <see cref="Best"/> is what production uses.
/// Vector128 is the Arm AdvSimd path (on x86 it runs as SSE/AVX-128, which is how it is tested there).
/// </summary>
public enum SimdLevel
{
    Scalar = 0,
    Vector128 = 128,
    Vector256 = 256,
    Vector512 = 512,
}

public static class SimdLevels
{
    /// <summary>The widest level the JIT accelerates (honours DOTNET_EnableAVX512F=0 and friends), capped by $EDGEVIT_SIMD.</summary>
    public static SimdLevel Best { get; } = Cap(Detect(), Environment.GetEnvironmentVariable("EDGEVIT_SIMD"));

    /// <summary>Every level this process can run, widest first.</summary>
    public static IReadOnlyList<SimdLevel> Supported { get; } =
        Enum.GetValues<SimdLevel>().Where(l => l <= Detect()).OrderDescending().ToArray();

    private static SimdLevel Detect()
    {
        // Vector256/512 paths use FMA; they are only worth taking where FMA is native.
        bool fma = System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (Vector512.IsHardwareAccelerated && fma) return SimdLevel.Vector512;
        if (Vector256.IsHardwareAccelerated && fma) return SimdLevel.Vector256;
        if (Vector128.IsHardwareAccelerated) return SimdLevel.Vector128;
        return SimdLevel.Scalar;
    }

    private static SimdLevel Cap(SimdLevel detected, string? cap)
    {
        if (string.IsNullOrWhiteSpace(cap)) return detected;
        var wanted = Parse(cap);
        return wanted < detected ? wanted : detected;
    }

    /// <summary>Parses "scalar", "128", "v256", "vector512" ... (case-insensitive).</summary>
    public static SimdLevel Parse(string text) => text.Trim().ToLowerInvariant().TrimStart('v').Replace("ector", "") switch
    {
        "scalar" or "0" => SimdLevel.Scalar,
        "128" => SimdLevel.Vector128,
        "256" => SimdLevel.Vector256,
        "512" => SimdLevel.Vector512,
        _ => throw new ArgumentException($"unknown SIMD level '{text}' (scalar, 128, 256, 512)"),
    };

    public static void EnsureSupported(SimdLevel level)
    {
        if (level > Detect()) throw new PlatformNotSupportedException($"SIMD level {level} is not accelerated on this CPU (best: {Detect()})");
    }
}
