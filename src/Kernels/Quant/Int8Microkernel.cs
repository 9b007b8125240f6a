// The int8 GEMM microkernel, written out for 12 rows once like the fp32 one: the row count
// is a generic constant, so the JIT specialises one copy per height and drops the unused accumulators.
using System.Runtime.CompilerServices;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Quant;

internal static unsafe class Int8Microkernel<TOps, TAcc> where TOps : IInt8Ops<TAcc> where TAcc : unmanaged
{
    /// <summary>
    /// Accumulators [rows x 2L] = init + A[rows x groups*4 bytes] . Bpanel[groups x 2L x 4 bytes], then either the
    /// raw int32 sums into <paramref name="rawOut"/> (row stride ldc ints; tests) or the fp32 epilogue into c:
    /// c (=/+=) acc * colScale * rowScale[r] + bias. init is <paramref name="corr"/> (VNNI's offset correction) or 0.
    /// cols &lt; 2L (the last panel) goes through a scratch tile.
    /// </summary>
    public static void Tile(int rows, byte* a, nint lda, byte* b, int groups, float* c, nint ldc, int* rawOut,
        float* colScale, float* rowScale, float* bias, int* corr, bool add, int cols)
    {
        switch (rows)
        {
            case 12: Tile<R12>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 11: Tile<R11>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 10: Tile<R10>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 9: Tile<R9>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 8: Tile<R8>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 7: Tile<R7>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 6: Tile<R6>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 5: Tile<R5>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 4: Tile<R4>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 3: Tile<R3>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 2: Tile<R2>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            case 1: Tile<R1>(a, lda, b, groups, c, ldc, rawOut, colScale, rowScale, bias, corr, add, cols); break;
            default: throw new ArgumentOutOfRangeException(nameof(rows));
        }
    }

    private static void Tile<TRows>(byte* a, nint lda, byte* b, int groups, float* c, nint ldc, int* rawOut,
        float* colScale, float* rowScale, float* bias, int* corr, bool add, int cols) where TRows : IRowCount
    {
        int l = TOps.Lanes;
        if (cols < 2 * l)
        {
            // Edge panel: the full tile into scratch, then the valid columns.
            int* tile = stackalloc int[12 * 32];
            Tile<TRows>(a, lda, b, groups, null, 2 * l, tile, null, null, null, corr, false, 2 * l);
            for (int r = 0; r < TRows.Value; r++)
                for (int j = 0; j < cols; j++)
                {
                    int v = tile[r * 2 * l + j];
                    if (rawOut != null) { rawOut[r * ldc + j] = v; continue; }
                    float f = v * (colScale[j] * rowScale[r]) + bias[j];
                    c[r * ldc + j] = add ? c[r * ldc + j] + f : f;
                }
            return;
        }

        TAcc i0 = corr != null ? TOps.LoadInt(corr) : default;
        TAcc i1 = corr != null ? TOps.LoadInt(corr + l) : default;
        TAcc c00 = i0, c01 = i1;
        TAcc c10 = i0, c11 = i1;
        TAcc c20 = i0, c21 = i1;
        TAcc c30 = i0, c31 = i1;
        TAcc c40 = i0, c41 = i1;
        TAcc c50 = i0, c51 = i1;
        TAcc c60 = i0, c61 = i1;
        TAcc c70 = i0, c71 = i1;
        TAcc c80 = i0, c81 = i1;
        TAcc c90 = i0, c91 = i1;
        TAcc c100 = i0, c101 = i1;
        TAcc c110 = i0, c111 = i1;

        // Four base pointers reach the 12 rows as base, base+lda, base+2*lda (one index register on x64).
        byte* p0 = a, p1 = a + 3 * lda, p2 = a + 6 * lda, p3 = a + 9 * lda;
        nint step = 2 * l * 4;
        byte* bp = b; // a fresh local: the parameter is also passed to the edge-tile call, and the JIT kept it on the stack
        for (int g = 0; g < groups; g++)
        {
            TAcc b0 = TOps.LoadB(bp), b1 = TOps.LoadB(bp + l * 4), av;
            { av = TOps.Broadcast(p0); c00 = TOps.Dot(c00, av, b0); c01 = TOps.Dot(c01, av, b1); }
            if (TRows.Value > 1) { av = TOps.Broadcast(p0 + lda); c10 = TOps.Dot(c10, av, b0); c11 = TOps.Dot(c11, av, b1); }
            if (TRows.Value > 2) { av = TOps.Broadcast(p0 + lda * 2); c20 = TOps.Dot(c20, av, b0); c21 = TOps.Dot(c21, av, b1); }
            if (TRows.Value > 3) { av = TOps.Broadcast(p1); c30 = TOps.Dot(c30, av, b0); c31 = TOps.Dot(c31, av, b1); }
            if (TRows.Value > 4) { av = TOps.Broadcast(p1 + lda); c40 = TOps.Dot(c40, av, b0); c41 = TOps.Dot(c41, av, b1); }
            if (TRows.Value > 5) { av = TOps.Broadcast(p1 + lda * 2); c50 = TOps.Dot(c50, av, b0); c51 = TOps.Dot(c51, av, b1); }
            if (TRows.Value > 6) { av = TOps.Broadcast(p2); c60 = TOps.Dot(c60, av, b0); c61 = TOps.Dot(c61, av, b1); }
            if (TRows.Value > 7) { av = TOps.Broadcast(p2 + lda); c70 = TOps.Dot(c70, av, b0); c71 = TOps.Dot(c71, av, b1); }
            if (TRows.Value > 8) { av = TOps.Broadcast(p2 + lda * 2); c80 = TOps.Dot(c80, av, b0); c81 = TOps.Dot(c81, av, b1); }
            if (TRows.Value > 9) { av = TOps.Broadcast(p3); c90 = TOps.Dot(c90, av, b0); c91 = TOps.Dot(c91, av, b1); }
            if (TRows.Value > 10) { av = TOps.Broadcast(p3 + lda); c100 = TOps.Dot(c100, av, b0); c101 = TOps.Dot(c101, av, b1); }
            if (TRows.Value > 11) { av = TOps.Broadcast(p3 + lda * 2); c110 = TOps.Dot(c110, av, b0); c111 = TOps.Dot(c111, av, b1); }
            bp += step; p0 += 4; p1 += 4; p2 += 4; p3 += 4;
        }

        Store(c, ldc, rawOut, 0, c00, c01, colScale, rowScale, bias, add);
        if (TRows.Value > 1) Store(c, ldc, rawOut, 1, c10, c11, colScale, rowScale, bias, add);
        if (TRows.Value > 2) Store(c, ldc, rawOut, 2, c20, c21, colScale, rowScale, bias, add);
        if (TRows.Value > 3) Store(c, ldc, rawOut, 3, c30, c31, colScale, rowScale, bias, add);
        if (TRows.Value > 4) Store(c, ldc, rawOut, 4, c40, c41, colScale, rowScale, bias, add);
        if (TRows.Value > 5) Store(c, ldc, rawOut, 5, c50, c51, colScale, rowScale, bias, add);
        if (TRows.Value > 6) Store(c, ldc, rawOut, 6, c60, c61, colScale, rowScale, bias, add);
        if (TRows.Value > 7) Store(c, ldc, rawOut, 7, c70, c71, colScale, rowScale, bias, add);
        if (TRows.Value > 8) Store(c, ldc, rawOut, 8, c80, c81, colScale, rowScale, bias, add);
        if (TRows.Value > 9) Store(c, ldc, rawOut, 9, c90, c91, colScale, rowScale, bias, add);
        if (TRows.Value > 10) Store(c, ldc, rawOut, 10, c100, c101, colScale, rowScale, bias, add);
        if (TRows.Value > 11) Store(c, ldc, rawOut, 11, c110, c111, colScale, rowScale, bias, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, nint ldc, int* rawOut, int r, TAcc lo, TAcc hi, float* colScale, float* rowScale, float* bias, bool add)
    {
        int l = TOps.Lanes;
        if (rawOut != null)
        {
            TOps.StoreInt(rawOut + r * ldc, lo);
            TOps.StoreInt(rawOut + r * ldc + l, hi);
            return;
        }
        float s = rowScale[r];
        TOps.Requantize(c + r * ldc, lo, colScale, s, bias, add);
        TOps.Requantize(c + r * ldc + l, hi, colScale + l, s, bias + l, add);
    }
}
