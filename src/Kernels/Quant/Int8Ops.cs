using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace EdgeViT.Kernels.Quant;

/// <summary>
/// What the int8 microkernel needs from an ISA: a vector of int32 accumulators (one per column), the 4-byte
/// group of one activation row broadcast to every lane, the matching 4 bytes per column of the packed weights,
/// and one multiply-accumulate of a group. <see cref="Requantize"/> is the fp32 epilogue.
/// </summary>
internal unsafe interface IInt8Ops<TAcc> where TAcc : unmanaged
{
    static abstract int Lanes { get; }
    static abstract TAcc LoadInt(int* p);
    static abstract TAcc Broadcast(byte* a);
    static abstract TAcc LoadB(byte* b);
    /// <summary>acc + the dot products of each lane's 4-byte group of a and b (exact int32).</summary>
    static abstract TAcc Dot(TAcc acc, TAcc a, TAcc b);
    static abstract void StoreInt(int* p, TAcc acc);
    /// <summary>c (=, or += when add) acc * (colScale * rowScale) + bias, in fp32.</summary>
    static abstract void Requantize(float* c, TAcc acc, float* colScale, float rowScale, float* bias, bool add);
}

internal readonly unsafe struct Madd512Ops : IInt8Ops<Vector512<int>>
{
    public static int Lanes => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadInt(int* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Broadcast(byte* a) => Vector512.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadB(byte* b) => Vector512.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> a, Vector512<int> b) =>
        acc + Avx512BW.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector512<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector512<int> acc, float* colScale, float rowScale, float* bias, bool add)
    {
        var f = Vector512.ConvertToSingle(acc) * (Vector512.Load(colScale) * rowScale) + Vector512.Load(bias);
        if (add) f += Vector512.Load(c);
        f.Store(c);
    }
}

internal readonly unsafe struct Madd256Ops : IInt8Ops<Vector256<int>>
{
    public static int Lanes => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadInt(int* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Broadcast(byte* a) => Vector256.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadB(byte* b) => Vector256.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> a, Vector256<int> b) =>
        acc + Avx2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector256<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector256<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Requantize256(c, acc, colScale, rowScale, bias, add);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Requantize256(float* c, Vector256<int> acc, float* colScale, float rowScale, float* bias, bool add)
    {
        var f = Vector256.ConvertToSingle(acc) * (Vector256.Load(colScale) * rowScale) + Vector256.Load(bias);
        if (add) f += Vector256.Load(c);
        f.Store(c);
    }
}

internal readonly unsafe struct Vnni256Ops : IInt8Ops<Vector256<int>>
{
    public static int Lanes => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadInt(int* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Broadcast(byte* a) => Vector256.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadB(byte* b) => Vector256.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> a, Vector256<int> b) =>
        AvxVnni.MultiplyWideningAndAdd(acc, a.AsByte(), b.AsSByte());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector256<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector256<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Madd256Ops.Requantize256(c, acc, colScale, rowScale, bias, add);
}

/// <summary>
/// AVX2 without VNNI: vpmaddubsw (u8 activations x s8 weights, adjacent pairs into int16, 32 products per
/// instruction), then vpmaddwd with ones (pairs of int16 into int32), then vpaddd. Exact because the quantisation
/// rule keeps 2 * max u8 * max |w| within int16.
/// </summary>
internal readonly unsafe struct Maddubs256Ops : IInt8Ops<Vector256<int>>
{
    public static int Lanes => 8;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadInt(int* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Broadcast(byte* a) => Vector256.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> LoadB(byte* b) => Vector256.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<int> Dot(Vector256<int> acc, Vector256<int> a, Vector256<int> b) =>
        acc + Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(a.AsByte(), b.AsSByte()), Vector256.Create((short)1));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector256<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector256<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Madd256Ops.Requantize256(c, acc, colScale, rowScale, bias, add);
}

/// <summary>The 512-bit <see cref="Maddubs256Ops"/> (AVX-512BW).</summary>
internal readonly unsafe struct Maddubs512Ops : IInt8Ops<Vector512<int>>
{
    public static int Lanes => 16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadInt(int* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Broadcast(byte* a) => Vector512.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> LoadB(byte* b) => Vector512.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<int> Dot(Vector512<int> acc, Vector512<int> a, Vector512<int> b) =>
        acc + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(a.AsByte(), b.AsSByte()), Vector512.Create((short)1));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector512<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector512<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Madd512Ops.Requantize(c, acc, colScale, rowScale, bias, add);
}

internal readonly unsafe struct Madd128Ops : IInt8Ops<Vector128<int>>
{
    public static int Lanes => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadInt(int* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Broadcast(byte* a) => Vector128.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadB(byte* b) => Vector128.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> a, Vector128<int> b) =>
        acc + Sse2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector128<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector128<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Requantize128(c, acc, colScale, rowScale, bias, add);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Requantize128(float* c, Vector128<int> acc, float* colScale, float rowScale, float* bias, bool add)
    {
        var f = Vector128.ConvertToSingle(acc) * (Vector128.Load(colScale) * rowScale) + Vector128.Load(bias);
        if (add) f += Vector128.Load(c);
        f.Store(c);
    }
}

/// <summary>Armv8.2+ dot product (Cortex-A76/A78: Pi 5, Jetson Orin).</summary>
internal readonly unsafe struct ArmDotOps : IInt8Ops<Vector128<int>>
{
    public static int Lanes => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadInt(int* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Broadcast(byte* a) => Vector128.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadB(byte* b) => Vector128.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> a, Vector128<int> b) =>
        Dp.DotProduct(acc, a.AsSByte(), b.AsSByte());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector128<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector128<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Madd128Ops.Requantize128(c, acc, colScale, rowScale, bias, add);
}

/// <summary>
/// Armv8.0 without dot product (Cortex-A72, Pi 4): SMULL/SMULL2 give 8 int16 products per half (each fits:
/// |q| &lt;= 127), SADDLP folds pairs of k into int32 and ADDP the other pair, per column.
/// </summary>
internal readonly unsafe struct ArmWidenOps : IInt8Ops<Vector128<int>>
{
    public static int Lanes => 4;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadInt(int* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> Broadcast(byte* a) => Vector128.Create(*(int*)a);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<int> LoadB(byte* b) => Vector128.Load((int*)b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<int> acc, Vector128<int> a, Vector128<int> b)
    {
        var sa = a.AsSByte();
        var sb = b.AsSByte();
        var lo = AdvSimd.MultiplyWideningLower(sa.GetLower(), sb.GetLower()); // columns 0, 1 x 4 k
        var hi = AdvSimd.MultiplyWideningUpper(sa, sb);                       // columns 2, 3 x 4 k
        var sums = AdvSimd.Arm64.AddPairwise(AdvSimd.AddPairwiseWidening(lo), AdvSimd.AddPairwiseWidening(hi));
        return acc + sums;
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, Vector128<int> acc) => acc.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, Vector128<int> acc, float* colScale, float rowScale, float* bias, bool add) =>
        Madd128Ops.Requantize128(c, acc, colScale, rowScale, bias, add);
}

/// <summary>One column at a time over the dot-product packing (4 int8 per group).</summary>
internal readonly unsafe struct ScalarInt8Ops : IInt8Ops<int>
{
    public static int Lanes => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int LoadInt(int* p) => *p;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int Broadcast(byte* a) => *(int*)a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static int LoadB(byte* b) => *(int*)b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(int acc, int a, int b) =>
        acc + (sbyte)a * (sbyte)b + (sbyte)(a >> 8) * (sbyte)(b >> 8) + (sbyte)(a >> 16) * (sbyte)(b >> 16) + (sbyte)(a >> 24) * (sbyte)(b >> 24);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void StoreInt(int* p, int acc) => *p = acc;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Requantize(float* c, int acc, float* colScale, float rowScale, float* bias, bool add)
    {
        float f = acc * (*colScale * rowScale) + *bias;
        *c = add ? *c + f : f;
    }
}
