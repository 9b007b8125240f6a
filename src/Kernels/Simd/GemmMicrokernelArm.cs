// The Arm64 AdvSimd GEMM microkernel: 8 rows x 8 columns (16 accumulators) for 32 NEON registers.
// A is read as vectors of four k (one ldr q per row per 4 k) and each k uses FMLA by element (lane k of that
// vector), so the loop has no per-row scalar load + DUP broadcast; B is two vectors per k. Per 4 k: 8 + 8 loads,
// 64 FMLA. Rows are a generic constant (the JIT drops the unused accumulators), as in GemmMicrokernel.
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace EdgeViT.Kernels.Simd;

internal static unsafe class GemmMicrokernelArm
{
    /// <summary>Rows per call.</summary>
    public const int Rows = 8;

    /// <summary>Same contract as <see cref="GemmMicrokernel{TOps,TV}.Tile"/> at Vector128 (panel width 8).</summary>
    public static void Tile(int rows, float* a, nint lda, float* b, float* c, nint ldc, int kc, float* bias, bool add, int cols)
    {
        switch (rows)
        {
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> F(Vector128<float> acc, Vector128<float> b, Vector128<float> a, [ConstantExpected(Max = (byte)3)] byte lane) =>
        AdvSimd.Arm64.FusedMultiplyAddBySelectedScalar(acc, b, a, lane);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<TRows>(float* a, nint lda, float* b, float* c, nint ldc, int kc, float* bias, bool add, int cols)
        where TRows : IRowCount
    {
        if (cols < 8)
        {
            // Edge panel: the full tile into scratch, then the valid columns.
            float* tile = stackalloc float[Rows * 8];
            Tile<TRows>(a, lda, b, tile, 8, kc, bias, false, 8);
            for (int r = 0; r < TRows.Value; r++)
                for (int j = 0; j < cols; j++)
                    c[r * ldc + j] = add ? c[r * ldc + j] + tile[r * 8 + j] : tile[r * 8 + j];
            return;
        }

        Vector128<float> i0 = bias != null ? AdvSimd.LoadVector128(bias) : Vector128<float>.Zero;
        Vector128<float> i1 = bias != null ? AdvSimd.LoadVector128(bias + 4) : Vector128<float>.Zero;
        Vector128<float> c00 = i0, c01 = i1, c10 = i0, c11 = i1, c20 = i0, c21 = i1, c30 = i0, c31 = i1, c40 = i0, c41 = i1, c50 = i0, c51 = i1, c60 = i0, c61 = i1, c70 = i0, c71 = i1;
        Vector128<float> a0, a1, a2, a3, a4, a5, a6, a7;
        // Row r lives at p + r * lda: offsets held in registers, one pointer bump per step.
        nint o = lda * sizeof(float);
        nint o1 = 1 * o, o2 = 2 * o, o3 = 3 * o, o4 = 4 * o, o5 = 5 * o, o6 = 6 * o, o7 = 7 * o;
        byte* p = (byte*)a;
        int k = 0;
        for (; k <= kc - 4; k += 4)
        {
            a0 = AdvSimd.LoadVector128((float*)p);
            a1 = TRows.Value > 1 ? AdvSimd.LoadVector128((float*)(p + o1)) : default;
            a2 = TRows.Value > 2 ? AdvSimd.LoadVector128((float*)(p + o2)) : default;
            a3 = TRows.Value > 3 ? AdvSimd.LoadVector128((float*)(p + o3)) : default;
            a4 = TRows.Value > 4 ? AdvSimd.LoadVector128((float*)(p + o4)) : default;
            a5 = TRows.Value > 5 ? AdvSimd.LoadVector128((float*)(p + o5)) : default;
            a6 = TRows.Value > 6 ? AdvSimd.LoadVector128((float*)(p + o6)) : default;
            a7 = TRows.Value > 7 ? AdvSimd.LoadVector128((float*)(p + o7)) : default;
            { var b0 = AdvSimd.LoadVector128(b + 0); var b1 = AdvSimd.LoadVector128(b + 4);
              c00 = F(c00, b0, a0, 0); c01 = F(c01, b1, a0, 0);
              if (TRows.Value > 1) { c10 = F(c10, b0, a1, 0); c11 = F(c11, b1, a1, 0); }
              if (TRows.Value > 2) { c20 = F(c20, b0, a2, 0); c21 = F(c21, b1, a2, 0); }
              if (TRows.Value > 3) { c30 = F(c30, b0, a3, 0); c31 = F(c31, b1, a3, 0); }
              if (TRows.Value > 4) { c40 = F(c40, b0, a4, 0); c41 = F(c41, b1, a4, 0); }
              if (TRows.Value > 5) { c50 = F(c50, b0, a5, 0); c51 = F(c51, b1, a5, 0); }
              if (TRows.Value > 6) { c60 = F(c60, b0, a6, 0); c61 = F(c61, b1, a6, 0); }
              if (TRows.Value > 7) { c70 = F(c70, b0, a7, 0); c71 = F(c71, b1, a7, 0); }
            }
            { var b0 = AdvSimd.LoadVector128(b + 8); var b1 = AdvSimd.LoadVector128(b + 12);
              c00 = F(c00, b0, a0, 1); c01 = F(c01, b1, a0, 1);
              if (TRows.Value > 1) { c10 = F(c10, b0, a1, 1); c11 = F(c11, b1, a1, 1); }
              if (TRows.Value > 2) { c20 = F(c20, b0, a2, 1); c21 = F(c21, b1, a2, 1); }
              if (TRows.Value > 3) { c30 = F(c30, b0, a3, 1); c31 = F(c31, b1, a3, 1); }
              if (TRows.Value > 4) { c40 = F(c40, b0, a4, 1); c41 = F(c41, b1, a4, 1); }
              if (TRows.Value > 5) { c50 = F(c50, b0, a5, 1); c51 = F(c51, b1, a5, 1); }
              if (TRows.Value > 6) { c60 = F(c60, b0, a6, 1); c61 = F(c61, b1, a6, 1); }
              if (TRows.Value > 7) { c70 = F(c70, b0, a7, 1); c71 = F(c71, b1, a7, 1); }
            }
            { var b0 = AdvSimd.LoadVector128(b + 16); var b1 = AdvSimd.LoadVector128(b + 20);
              c00 = F(c00, b0, a0, 2); c01 = F(c01, b1, a0, 2);
              if (TRows.Value > 1) { c10 = F(c10, b0, a1, 2); c11 = F(c11, b1, a1, 2); }
              if (TRows.Value > 2) { c20 = F(c20, b0, a2, 2); c21 = F(c21, b1, a2, 2); }
              if (TRows.Value > 3) { c30 = F(c30, b0, a3, 2); c31 = F(c31, b1, a3, 2); }
              if (TRows.Value > 4) { c40 = F(c40, b0, a4, 2); c41 = F(c41, b1, a4, 2); }
              if (TRows.Value > 5) { c50 = F(c50, b0, a5, 2); c51 = F(c51, b1, a5, 2); }
              if (TRows.Value > 6) { c60 = F(c60, b0, a6, 2); c61 = F(c61, b1, a6, 2); }
              if (TRows.Value > 7) { c70 = F(c70, b0, a7, 2); c71 = F(c71, b1, a7, 2); }
            }
            { var b0 = AdvSimd.LoadVector128(b + 24); var b1 = AdvSimd.LoadVector128(b + 28);
              c00 = F(c00, b0, a0, 3); c01 = F(c01, b1, a0, 3);
              if (TRows.Value > 1) { c10 = F(c10, b0, a1, 3); c11 = F(c11, b1, a1, 3); }
              if (TRows.Value > 2) { c20 = F(c20, b0, a2, 3); c21 = F(c21, b1, a2, 3); }
              if (TRows.Value > 3) { c30 = F(c30, b0, a3, 3); c31 = F(c31, b1, a3, 3); }
              if (TRows.Value > 4) { c40 = F(c40, b0, a4, 3); c41 = F(c41, b1, a4, 3); }
              if (TRows.Value > 5) { c50 = F(c50, b0, a5, 3); c51 = F(c51, b1, a5, 3); }
              if (TRows.Value > 6) { c60 = F(c60, b0, a6, 3); c61 = F(c61, b1, a6, 3); }
              if (TRows.Value > 7) { c70 = F(c70, b0, a7, 3); c71 = F(c71, b1, a7, 3); }
            }
            b += 32; p += 4 * sizeof(float);
        }
        for (; k < kc; k++) // K tail: one k at a time, A's value in lane 0
        {
            var b0 = AdvSimd.LoadVector128(b); var b1 = AdvSimd.LoadVector128(b + 4);
            a0 = Vector128.CreateScalarUnsafe(*(float*)p);
            c00 = F(c00, b0, a0, 0); c01 = F(c01, b1, a0, 0);
            if (TRows.Value > 1) { a1 = Vector128.CreateScalarUnsafe(*(float*)(p + o1)); c10 = F(c10, b0, a1, 0); c11 = F(c11, b1, a1, 0); }
            if (TRows.Value > 2) { a2 = Vector128.CreateScalarUnsafe(*(float*)(p + o2)); c20 = F(c20, b0, a2, 0); c21 = F(c21, b1, a2, 0); }
            if (TRows.Value > 3) { a3 = Vector128.CreateScalarUnsafe(*(float*)(p + o3)); c30 = F(c30, b0, a3, 0); c31 = F(c31, b1, a3, 0); }
            if (TRows.Value > 4) { a4 = Vector128.CreateScalarUnsafe(*(float*)(p + o4)); c40 = F(c40, b0, a4, 0); c41 = F(c41, b1, a4, 0); }
            if (TRows.Value > 5) { a5 = Vector128.CreateScalarUnsafe(*(float*)(p + o5)); c50 = F(c50, b0, a5, 0); c51 = F(c51, b1, a5, 0); }
            if (TRows.Value > 6) { a6 = Vector128.CreateScalarUnsafe(*(float*)(p + o6)); c60 = F(c60, b0, a6, 0); c61 = F(c61, b1, a6, 0); }
            if (TRows.Value > 7) { a7 = Vector128.CreateScalarUnsafe(*(float*)(p + o7)); c70 = F(c70, b0, a7, 0); c71 = F(c71, b1, a7, 0); }
            b += 8; p += sizeof(float);
        }

        Store(c, c00, c01, add);
        if (TRows.Value > 1) Store(c + 1 * ldc, c10, c11, add);
        if (TRows.Value > 2) Store(c + 2 * ldc, c20, c21, add);
        if (TRows.Value > 3) Store(c + 3 * ldc, c30, c31, add);
        if (TRows.Value > 4) Store(c + 4 * ldc, c40, c41, add);
        if (TRows.Value > 5) Store(c + 5 * ldc, c50, c51, add);
        if (TRows.Value > 6) Store(c + 6 * ldc, c60, c61, add);
        if (TRows.Value > 7) Store(c + 7 * ldc, c70, c71, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector128<float> lo, Vector128<float> hi, bool add)
    {
        if (add) { lo += AdvSimd.LoadVector128(c); hi += AdvSimd.LoadVector128(c + 4); }
        AdvSimd.Store(c, lo);
        AdvSimd.Store(c + 4, hi);
    }
}
