// The GEMM microkernel. Written out for 12 rows once; the row count is a generic constant so the JIT
// specialises one copy per row count and drops the unused accumulators (no code copies per ISA or height).
using System.Runtime.CompilerServices;

namespace EdgeViT.Kernels.Simd;

internal interface IRowCount { static abstract int Value { get; } }
internal readonly struct R1 : IRowCount { public static int Value => 1; }
internal readonly struct R2 : IRowCount { public static int Value => 2; }
internal readonly struct R3 : IRowCount { public static int Value => 3; }
internal readonly struct R4 : IRowCount { public static int Value => 4; }
internal readonly struct R5 : IRowCount { public static int Value => 5; }
internal readonly struct R6 : IRowCount { public static int Value => 6; }
internal readonly struct R7 : IRowCount { public static int Value => 7; }
internal readonly struct R8 : IRowCount { public static int Value => 8; }
internal readonly struct R9 : IRowCount { public static int Value => 9; }
internal readonly struct R10 : IRowCount { public static int Value => 10; }
internal readonly struct R11 : IRowCount { public static int Value => 11; }
internal readonly struct R12 : IRowCount { public static int Value => 12; }

internal static unsafe class GemmMicrokernel<TOps, TV> where TOps : IVectorOps<TV> where TV : unmanaged
{
    /// <summary>
    /// C[rows x 2W] (= or +=) init + A[rows x kc] * Bpanel[kc x 2W], with W = vector width, rows = TRows.
    /// A is read in place (row stride lda): packing A would cost more than it saves at ViT's small M.
    /// init is the bias slice (first K block) or zero. cols &lt; 2W (the last panel) goes through a scratch tile.
    /// </summary>
    public static void Tile(int rows, float* a, nint lda, float* b, float* c, nint ldc, int kc, float* bias, bool add, int cols)
    {
        switch (rows)
        {
            case 12: Tile<R12>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 11: Tile<R11>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 10: Tile<R10>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 9: Tile<R9>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 8: Tile<R8>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 7: Tile<R7>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 6: Tile<R6>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 5: Tile<R5>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 4: Tile<R4>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 3: Tile<R3>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 2: Tile<R2>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            case 1: Tile<R1>(a, lda, b, c, ldc, kc, bias, add, cols); break;
            default: throw new ArgumentOutOfRangeException(nameof(rows));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(float* a, nint lda, float* b, float* c, nint ldc, int kc, float* bias, bool add, int cols)
        where TRows : IRowCount
    {
        int w = TOps.Count;
        if (cols < 2 * w)
        {
            // Edge panel: compute the full tile into scratch, then copy the valid columns.
            float* tile = stackalloc float[12 * 32];
            Tile<TRows>(a, lda, b, tile, 2 * w, kc, bias, false, 2 * w);
            for (int r = 0; r < TRows.Value; r++)
                for (int j = 0; j < cols; j++)
                    c[r * ldc + j] = add ? c[r * ldc + j] + tile[r * 2 * w + j] : tile[r * 2 * w + j];
            return;
        }

        TV i0 = bias != null ? TOps.Load(bias) : TOps.Zero;
        TV i1 = bias != null ? TOps.Load(bias + w) : TOps.Zero;
        TV c00, c01;
        TV c10, c11;
        TV c20, c21;
        TV c30, c31;
        TV c40, c41;
        TV c50, c51;
        TV c60, c61;
        TV c70, c71;
        TV c80, c81;
        TV c90, c91;
        TV c100, c101;
        TV c110, c111;
        c00 = i0; c01 = i1;
        c10 = i0; c11 = i1;
        c20 = i0; c21 = i1;
        c30 = i0; c31 = i1;
        c40 = i0; c41 = i1;
        c50 = i0; c51 = i1;
        c60 = i0; c61 = i1;
        c70 = i0; c71 = i1;
        c80 = i0; c81 = i1;
        c90 = i0; c91 = i1;
        c100 = i0; c101 = i1;
        c110 = i0; c111 = i1;

        // Four base pointers cover the 12 rows as base, base+lda, base+2*lda: x64 addressing modes
        // reach those with one index register, so the hot loop needs 4 pointer bumps, not 12.
        nint ldaB = lda * sizeof(float);
        float* p0 = a, p1 = a + 3 * lda, p2 = a + 6 * lda, p3 = a + 9 * lda;
        nint step = 2 * w;
        for (int k = 0; k < kc; k++)
        {
            TV b0 = TOps.Load(b), b1 = TOps.Load(b + w), av;
            av = TOps.Broadcast(*(float*)((byte*)p0)); c00 = TOps.Fma(av, b0, c00); c01 = TOps.Fma(av, b1, c01);
            if (TRows.Value > 1) { av = TOps.Broadcast(*(float*)((byte*)p0 + ldaB)); c10 = TOps.Fma(av, b0, c10); c11 = TOps.Fma(av, b1, c11); }
            if (TRows.Value > 2) { av = TOps.Broadcast(*(float*)((byte*)p0 + ldaB * 2)); c20 = TOps.Fma(av, b0, c20); c21 = TOps.Fma(av, b1, c21); }
            if (TRows.Value > 3) { av = TOps.Broadcast(*(float*)((byte*)p1)); c30 = TOps.Fma(av, b0, c30); c31 = TOps.Fma(av, b1, c31); }
            if (TRows.Value > 4) { av = TOps.Broadcast(*(float*)((byte*)p1 + ldaB)); c40 = TOps.Fma(av, b0, c40); c41 = TOps.Fma(av, b1, c41); }
            if (TRows.Value > 5) { av = TOps.Broadcast(*(float*)((byte*)p1 + ldaB * 2)); c50 = TOps.Fma(av, b0, c50); c51 = TOps.Fma(av, b1, c51); }
            if (TRows.Value > 6) { av = TOps.Broadcast(*(float*)((byte*)p2)); c60 = TOps.Fma(av, b0, c60); c61 = TOps.Fma(av, b1, c61); }
            if (TRows.Value > 7) { av = TOps.Broadcast(*(float*)((byte*)p2 + ldaB)); c70 = TOps.Fma(av, b0, c70); c71 = TOps.Fma(av, b1, c71); }
            if (TRows.Value > 8) { av = TOps.Broadcast(*(float*)((byte*)p2 + ldaB * 2)); c80 = TOps.Fma(av, b0, c80); c81 = TOps.Fma(av, b1, c81); }
            if (TRows.Value > 9) { av = TOps.Broadcast(*(float*)((byte*)p3)); c90 = TOps.Fma(av, b0, c90); c91 = TOps.Fma(av, b1, c91); }
            if (TRows.Value > 10) { av = TOps.Broadcast(*(float*)((byte*)p3 + ldaB)); c100 = TOps.Fma(av, b0, c100); c101 = TOps.Fma(av, b1, c101); }
            if (TRows.Value > 11) { av = TOps.Broadcast(*(float*)((byte*)p3 + ldaB * 2)); c110 = TOps.Fma(av, b0, c110); c111 = TOps.Fma(av, b1, c111); }
            b += step; p0++; p1++; p2++; p3++;
        }

        Store<TOps, TV>(c + 0 * ldc, c00, c01, add);
        if (TRows.Value > 1) Store<TOps, TV>(c + 1 * ldc, c10, c11, add);
        if (TRows.Value > 2) Store<TOps, TV>(c + 2 * ldc, c20, c21, add);
        if (TRows.Value > 3) Store<TOps, TV>(c + 3 * ldc, c30, c31, add);
        if (TRows.Value > 4) Store<TOps, TV>(c + 4 * ldc, c40, c41, add);
        if (TRows.Value > 5) Store<TOps, TV>(c + 5 * ldc, c50, c51, add);
        if (TRows.Value > 6) Store<TOps, TV>(c + 6 * ldc, c60, c61, add);
        if (TRows.Value > 7) Store<TOps, TV>(c + 7 * ldc, c70, c71, add);
        if (TRows.Value > 8) Store<TOps, TV>(c + 8 * ldc, c80, c81, add);
        if (TRows.Value > 9) Store<TOps, TV>(c + 9 * ldc, c90, c91, add);
        if (TRows.Value > 10) Store<TOps, TV>(c + 10 * ldc, c100, c101, add);
        if (TRows.Value > 11) Store<TOps, TV>(c + 11 * ldc, c110, c111, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TO, T>(float* c, T lo, T hi, bool add) where TO : IVectorOps<T> where T : unmanaged
    {
        int w = TO.Count;
        if (add) { lo = TO.Add(TO.Load(c), lo); hi = TO.Add(TO.Load(c + w), hi); }
        TO.Store(c, lo);
        TO.Store(c + w, hi);
    }
}
