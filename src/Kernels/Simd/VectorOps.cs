using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeViT.Kernels.Simd;

/// <summary>
/// The few vector operations our kernels need, as static members of a struct so that a kernel written once,
/// generic over <typeparamref name="TV"/>, is specialised by the JIT into straight-line code per ISA.
/// <see cref="ScalarOps"/> is the same contract at width 1: the scalar path is the same code, not a copy.
/// </summary>
public unsafe interface IVectorOps<TV> where TV : unmanaged
{
    static abstract int Count { get; }
    static abstract TV Zero { get; }
    static abstract TV Load(float* p);
    static abstract void Store(float* p, TV v);
    static abstract TV Broadcast(float x);
    /// <summary>a * b + c, fused where the ISA has it.</summary>
    static abstract TV Fma(TV a, TV b, TV c);
    static abstract TV Add(TV a, TV b);
    static abstract TV Sub(TV a, TV b);
    static abstract TV Mul(TV a, TV b);
    static abstract TV Div(TV a, TV b);
    /// <summary>The ISA's max/min (no NaN or signed-zero fix-ups: kernels never feed NaN on purpose).</summary>
    static abstract TV Max(TV a, TV b);
    static abstract TV Min(TV a, TV b);
    static abstract TV Abs(TV a);
    /// <summary>e^a, to ~2 ulp (<see cref="FastMath.Exp{TOps,TV}"/> on vectors; MathF.Exp on scalars).</summary>
    static abstract TV Exp(TV a);
    /// <summary>Round to nearest, ties to even.</summary>
    static abstract TV Round(TV a);
    /// <summary>2^n for integral n in [-126, 127] (built in the exponent bits).</summary>
    static abstract TV Pow2(TV n);
    /// <summary>0 where a &lt; limit, else value.</summary>
    static abstract TV LessThanOrZero(TV a, TV limit, TV value);
    /// <summary>Copies the sign of <paramref name="sign"/> onto the magnitude of <paramref name="magnitude"/>.</summary>
    static abstract TV CopySign(TV magnitude, TV sign);
    static abstract float Sum(TV a);
    static abstract float MaxAcross(TV a);
}

public readonly unsafe struct V512Ops : IVectorOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector512<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float x) => Vector512.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Div(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.MinNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Abs(Vector512<float> a) => Vector512.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Exp(Vector512<float> a) => FastMath.Exp<V512Ops, Vector512<float>>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Round(Vector512<float> a) => Vector512.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Pow2(Vector512<float> n) => Vector512.ShiftLeft(Vector512.ConvertToInt32Native(n) + Vector512.Create(127), 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LessThanOrZero(Vector512<float> a, Vector512<float> limit, Vector512<float> value) => Vector512.AndNot(value, Vector512.LessThan(a, limit));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> CopySign(Vector512<float> m, Vector512<float> s) => Vector512.CopySign(m, s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> a) => Vector512.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector512<float> a) => MathF.Max(V256Ops.MaxAcross(a.GetLower()), V256Ops.MaxAcross(a.GetUpper()));
}

public readonly unsafe struct V256Ops : IVectorOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector256<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float x) => Vector256.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Div(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.MinNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Abs(Vector256<float> a) => Vector256.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Exp(Vector256<float> a) => FastMath.Exp<V256Ops, Vector256<float>>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Round(Vector256<float> a) => Vector256.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Pow2(Vector256<float> n) => Vector256.ShiftLeft(Vector256.ConvertToInt32Native(n) + Vector256.Create(127), 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LessThanOrZero(Vector256<float> a, Vector256<float> limit, Vector256<float> value) => Vector256.AndNot(value, Vector256.LessThan(a, limit));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> CopySign(Vector256<float> m, Vector256<float> s) => Vector256.CopySign(m, s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> a) => Vector256.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(Vector256<float> a) => V128Ops.MaxAcross(Vector128.Max(a.GetLower(), a.GetUpper()));
}

public readonly unsafe struct V128Ops : IVectorOps<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, Vector128<float> v) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float x) => Vector128.Create(x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Div(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.MaxNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.MinNative(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Abs(Vector128<float> a) => Vector128.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Exp(Vector128<float> a) => FastMath.Exp<V128Ops, Vector128<float>>(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Round(Vector128<float> a) => Vector128.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Pow2(Vector128<float> n) => Vector128.ShiftLeft(Vector128.ConvertToInt32Native(n) + Vector128.Create(127), 23).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LessThanOrZero(Vector128<float> a, Vector128<float> limit, Vector128<float> value) => Vector128.AndNot(value, Vector128.LessThan(a, limit));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> CopySign(Vector128<float> m, Vector128<float> s) => Vector128.CopySign(m, s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> a) => Vector128.Sum(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaxAcross(Vector128<float> a) => System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.IsSupported
        ? System.Runtime.Intrinsics.Arm.AdvSimd.Arm64.MaxAcross(a).ToScalar() // one FMAXV, not lane by lane
        : MathF.Max(MathF.Max(a[0], a[1]), MathF.Max(a[2], a[3]));
}

/// <summary>Width-1 "vectors": the portable scalar path of every kernel.</summary>
public readonly unsafe struct ScalarOps : IVectorOps<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Load(float* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(float* p, float v) => *p = v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Broadcast(float x) => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Add(float a, float b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sub(float a, float b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Mul(float a, float b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Div(float a, float b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Min(float a, float b) => MathF.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Abs(float a) => MathF.Abs(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Exp(float a) => MathF.Exp(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Round(float a) => MathF.Round(a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Pow2(float n) => MathF.ScaleB(1f, (int)n);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float LessThanOrZero(float a, float limit, float value) => a < limit ? 0f : value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float CopySign(float m, float s) => MathF.CopySign(m, s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(float a) => a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float MaxAcross(float a) => a;
}

/// <summary>Vector transcendental functions in plain FMA arithmetic (the runtime's Vector*.Exp widens to double).</summary>
public static class FastMath
{
    /// <summary>
    /// e^x as 2^n * e^r, n = round(x / ln 2), |r| &lt;= ln 2 / 2, with Cephes' degree-6 polynomial for e^r
    /// (relative error ~1.5e-7). Inputs below ln(FLT_MIN) give 0; above 88 are clamped (callers pass x &lt;= 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Exp<TOps, TV>(TV x) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        TV lo = TOps.Broadcast(-87.33654f);
        TV c = TOps.Min(TOps.Max(x, lo), TOps.Broadcast(88f));
        TV n = TOps.Round(TOps.Mul(c, TOps.Broadcast(1.44269504088896341f)));
        TV r = TOps.Fma(n, TOps.Broadcast(-0.693359375f), c);
        r = TOps.Fma(n, TOps.Broadcast(2.12194440e-4f), r);
        TV p = TOps.Broadcast(1.9875691500e-4f);
        p = TOps.Fma(p, r, TOps.Broadcast(1.3981999507e-3f));
        p = TOps.Fma(p, r, TOps.Broadcast(8.3334519073e-3f));
        p = TOps.Fma(p, r, TOps.Broadcast(4.1665795894e-2f));
        p = TOps.Fma(p, r, TOps.Broadcast(1.6666665459e-1f));
        p = TOps.Fma(p, r, TOps.Broadcast(5.0000001201e-1f));
        p = TOps.Add(TOps.Fma(p, TOps.Mul(r, r), r), TOps.Broadcast(1f));
        return TOps.LessThanOrZero(x, lo, TOps.Mul(p, TOps.Pow2(n)));
    }
}
