using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace EdgeViT.Kernels.Simd;

/// <summary>
/// Row-wise kernels of the transformer (LayerNorm, GELU, softmax), each written once over
/// <see cref="IVectorOps{TV}"/>: a vector main loop and a tail through <see cref="ScalarOps"/> (same math).
/// Public entry points dispatch on <see cref="SimdLevel"/>. The kernels are AggressiveOptimization: optimised
/// from the first frame instead of running tier-0 code through a service's first seconds or a bench's warm-up.
/// </summary>
public static unsafe class Elementwise
{
    /// <summary>float lanes of the widest vector (512 bits): the size of a padded tail buffer.</summary>
    private const int MaxLanes = 16;

    // ---- dispatch -------------------------------------------------------------------------------------------
    public static void LayerNorm(SimdLevel level, float* x, float* y, int n, float* gamma, float* beta, float eps)
    {
        switch (level)
        {
            case SimdLevel.Vector512: LayerNorm<V512Ops, Vector512<float>>(x, y, n, gamma, beta, eps); break;
            case SimdLevel.Vector256: LayerNorm<V256Ops, Vector256<float>>(x, y, n, gamma, beta, eps); break;
            case SimdLevel.Vector128: LayerNorm<V128Ops, Vector128<float>>(x, y, n, gamma, beta, eps); break;
            default: LayerNorm<ScalarOps, float>(x, y, n, gamma, beta, eps); break;
        }
    }

    public static void Gelu(SimdLevel level, float* x, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: Gelu<V512Ops, Vector512<float>>(x, n); break;
            case SimdLevel.Vector256: Gelu<V256Ops, Vector256<float>>(x, n); break;
            case SimdLevel.Vector128: Gelu<V128Ops, Vector128<float>>(x, n); break;
            default: Gelu<ScalarOps, float>(x, n); break;
        }
    }

    /// <summary>In place over a strided block: rows of n elements, ld apart (one call per GEMM tile).</summary>
    public static void Gelu(SimdLevel level, float* x, int rows, int n, nint ld)
    {
        switch (level)
        {
            case SimdLevel.Vector512: for (int r = 0; r < rows; r++) Gelu<V512Ops, Vector512<float>>(x + r * ld, n); break;
            case SimdLevel.Vector256: for (int r = 0; r < rows; r++) Gelu<V256Ops, Vector256<float>>(x + r * ld, n); break;
            case SimdLevel.Vector128: for (int r = 0; r < rows; r++) Gelu<V128Ops, Vector128<float>>(x + r * ld, n); break;
            default: for (int r = 0; r < rows; r++) Gelu<ScalarOps, float>(x + r * ld, n); break;
        }
    }

    /// <summary>grad[i] *= GELU'(pre[i]): the backward of GELU for the calibration pass.</summary>
    public static void GeluBackward(SimdLevel level, float* pre, float* grad, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: GeluBackward<V512Ops, Vector512<float>>(pre, grad, n); break;
            case SimdLevel.Vector256: GeluBackward<V256Ops, Vector256<float>>(pre, grad, n); break;
            case SimdLevel.Vector128: GeluBackward<V128Ops, Vector128<float>>(pre, grad, n); break;
            default: GeluBackward<ScalarOps, float>(pre, grad, n); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeluBackward<TOps, TV>(float* pre, float* grad, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        for (; i <= n - w; i += w) TOps.Store(grad + i, TOps.Mul(TOps.Load(grad + i), GeluDerivative<TOps, TV>(TOps.Load(pre + i))));
        for (; i < n; i++) grad[i] *= GeluDerivative<ScalarOps, float>(pre[i]);
    }

    /// <summary>In place: x += y over n elements.</summary>
    public static void AddInPlace(SimdLevel level, float* x, float* y, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: AddInPlace<V512Ops, Vector512<float>>(x, y, n); break;
            case SimdLevel.Vector256: AddInPlace<V256Ops, Vector256<float>>(x, y, n); break;
            case SimdLevel.Vector128: AddInPlace<V128Ops, Vector128<float>>(x, y, n); break;
            default: AddInPlace<ScalarOps, float>(x, y, n); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddInPlace<TOps, TV>(float* x, float* y, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        for (; i <= n - w; i += w) TOps.Store(x + i, TOps.Add(TOps.Load(x + i), TOps.Load(y + i)));
        for (; i < n; i++) x[i] += y[i];
    }

    /// <summary>The dot product of x and y over n elements (float accumulators, one per lane).</summary>
    public static float Dot(SimdLevel level, float* x, float* y, int n) => level switch
    {
        SimdLevel.Vector512 => Dot<V512Ops, Vector512<float>>(x, y, n),
        SimdLevel.Vector256 => Dot<V256Ops, Vector256<float>>(x, y, n),
        SimdLevel.Vector128 => Dot<V128Ops, Vector128<float>>(x, y, n),
        _ => Dot<ScalarOps, float>(x, y, n),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot<TOps, TV>(float* x, float* y, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        TV acc = TOps.Zero;
        for (; i <= n - w; i += w) acc = TOps.Fma(TOps.Load(x + i), TOps.Load(y + i), acc);
        float sum = TOps.Sum(acc);
        for (; i < n; i++) sum += x[i] * y[i];
        return sum;
    }

    /// <summary>y += alpha x over n elements (the axpy of a matrix-vector product done row by row).</summary>
    public static void AddScaled(SimdLevel level, float* x, float alpha, float* y, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: AddScaled<V512Ops, Vector512<float>>(x, alpha, y, n); break;
            case SimdLevel.Vector256: AddScaled<V256Ops, Vector256<float>>(x, alpha, y, n); break;
            case SimdLevel.Vector128: AddScaled<V128Ops, Vector128<float>>(x, alpha, y, n); break;
            default: AddScaled<ScalarOps, float>(x, alpha, y, n); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddScaled<TOps, TV>(float* x, float alpha, float* y, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        TV a = TOps.Broadcast(alpha);
        for (; i <= n - w; i += w) TOps.Store(y + i, TOps.Fma(a, TOps.Load(x + i), TOps.Load(y + i)));
        for (; i < n; i++) y[i] += alpha * x[i];
    }

    /// <summary>y = alpha x over n elements (y may be x).</summary>
    public static void Scale(SimdLevel level, float* x, float alpha, float* y, int n)
    {
        switch (level)
        {
            case SimdLevel.Vector512: Scale<V512Ops, Vector512<float>>(x, alpha, y, n); break;
            case SimdLevel.Vector256: Scale<V256Ops, Vector256<float>>(x, alpha, y, n); break;
            case SimdLevel.Vector128: Scale<V128Ops, Vector128<float>>(x, alpha, y, n); break;
            default: Scale<ScalarOps, float>(x, alpha, y, n); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale<TOps, TV>(float* x, float alpha, float* y, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        TV a = TOps.Broadcast(alpha);
        for (; i <= n - w; i += w) TOps.Store(y + i, TOps.Mul(a, TOps.Load(x + i)));
        for (; i < n; i++) y[i] = alpha * x[i];
    }

    /// <summary>In place: x = softmax(x * scale) over n elements.</summary>
    public static void Softmax(SimdLevel level, float* x, int n, float scale)
    {
        switch (level)
        {
            case SimdLevel.Vector512: Softmax<V512Ops, Vector512<float>>(x, n, scale); break;
            case SimdLevel.Vector256: Softmax<V256Ops, Vector256<float>>(x, n, scale); break;
            case SimdLevel.Vector128: Softmax<V128Ops, Vector128<float>>(x, n, scale); break;
            default: Softmax<ScalarOps, float>(x, n, scale); break;
        }
    }

    // ---- generic bodies -------------------------------------------------------------------------------------
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNorm<TOps, TV>(float* x, float* y, int n, float* gamma, float* beta, float eps)
        where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        TV acc = TOps.Zero;
        for (; i <= n - w; i += w) acc = TOps.Add(acc, TOps.Load(x + i));
        float sum = TOps.Sum(acc);
        for (; i < n; i++) sum += x[i];
        float mean = sum / n;

        // Two-pass variance: activations of late blocks have large means, where E[x^2]-E[x]^2 loses digits.
        TV m = TOps.Broadcast(mean);
        acc = TOps.Zero;
        for (i = 0; i <= n - w; i += w) { var d = TOps.Sub(TOps.Load(x + i), m); acc = TOps.Fma(d, d, acc); }
        float sq = TOps.Sum(acc);
        for (; i < n; i++) { float d = x[i] - mean; sq += d * d; }
        float rstd = 1f / MathF.Sqrt(sq / n + eps);

        TV r = TOps.Broadcast(rstd);
        for (i = 0; i <= n - w; i += w)
        {
            var v = TOps.Mul(TOps.Sub(TOps.Load(x + i), m), r);
            TOps.Store(y + i, TOps.Fma(v, TOps.Load(gamma + i), TOps.Load(beta + i)));
        }
        for (; i < n; i++) y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Gelu<TOps, TV>(float* x, int n) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        for (; i <= n - w; i += w) TOps.Store(x + i, Gelu<TOps, TV>(TOps.Load(x + i)));
        for (; i < n; i++) x[i] = Gelu<ScalarOps, float>(x[i]);
    }

    /// <summary>GELU, x * Phi(x): timm's nn.GELU (the erf form, not the tanh one), to within 5e-7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Gelu<TOps, TV>(TV x) where TOps : IVectorOps<TV> where TV : unmanaged => TOps.Mul(x, Phi<TOps, TV>(x));

    /// <summary>d GELU / dx = Phi(x) + x phi(x), for the calibration backward pass.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV GeluDerivative<TOps, TV>(TV x) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        TV pdf = TOps.Mul(TOps.Exp(TOps.Mul(TOps.Mul(x, x), TOps.Broadcast(-0.5f))), TOps.Broadcast(0.3989422804014327f));
        return TOps.Fma(x, pdf, Phi<TOps, TV>(x));
    }

    /// <summary>
    /// The standard normal CDF, 0.5 (1 + erf(x/sqrt 2)), with Abramowitz and Stegun's 7.1.28:
    /// erfc(z) = 1 / (1 + a1 z + ... + a6 z^6)^16 for z &gt;= 0, absolute error below 3e-7 (GELU within 5e-7 of
    /// the double-precision exact erf form). A polynomial, four squarings and one division: a third of the
    /// instructions of the erfc-with-exp form it replaced, which was most of fc1's epilogue on Intel cores.
    /// z is capped at 8 (erfc(8) ~ 1e-29 is already 0 next to 1) so the 16th power never leaves the normal
    /// floats: denormal operands cost microcode assists there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Phi<TOps, TV>(TV x) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        TV z = TOps.Min(TOps.Mul(TOps.Abs(x), TOps.Broadcast(0.70710678118654752f)), TOps.Broadcast(8f));
        TV p = TOps.Broadcast(0.0000430638f);
        p = TOps.Fma(p, z, TOps.Broadcast(0.0002765672f));
        p = TOps.Fma(p, z, TOps.Broadcast(0.0001520143f));
        p = TOps.Fma(p, z, TOps.Broadcast(0.0092705272f));
        p = TOps.Fma(p, z, TOps.Broadcast(0.0422820123f));
        p = TOps.Fma(p, z, TOps.Broadcast(0.0705230784f));
        p = TOps.Fma(p, z, TOps.Broadcast(1f));
        p = TOps.Mul(p, p); p = TOps.Mul(p, p); p = TOps.Mul(p, p); p = TOps.Mul(p, p);
        TV half = TOps.Broadcast(0.5f);
        TV tail = TOps.Div(half, p); // 0.5 erfc(|x|/sqrt 2) = Phi(-|x|), in [0, 0.5]
        return TOps.Add(half, TOps.CopySign(TOps.Sub(half, tail), x));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softmax<TOps, TV>(float* x, int n, float scale) where TOps : IVectorOps<TV> where TV : unmanaged
    {
        int w = TOps.Count, i = 0;
        TV mv = TOps.Broadcast(float.NegativeInfinity);
        for (; i <= n - w; i += w) mv = TOps.Max(mv, TOps.Load(x + i));
        float max = TOps.MaxAcross(mv);
        for (; i < n; i++) max = MathF.Max(max, x[i]);

        // exp((x - max) * scale): the scale (1/sqrt(head dim)) is folded in here rather than into Q.
        TV s = TOps.Broadcast(scale), offs = TOps.Broadcast(-max * scale), acc = TOps.Zero;
        for (i = 0; i <= n - w; i += w)
        {
            var e = TOps.Exp(TOps.Fma(TOps.Load(x + i), s, offs));
            TOps.Store(x + i, e);
            acc = TOps.Add(acc, e);
        }
        float sum = TOps.Sum(acc);
        if (i < n)
        {
            // The last n mod w values (DeiT's 197 tokens leave 5) through one vector exp on a padded copy rather than
            // one scalar exp each; the padding repeats a real value and is neither stored nor summed.
            float* tail = stackalloc float[MaxLanes];
            int r = n - i;
            for (int k = 0; k < w; k++) tail[k] = x[i + Math.Min(k, r - 1)];
            TOps.Store(tail, TOps.Exp(TOps.Fma(TOps.Load(tail), s, offs)));
            for (int k = 0; k < r; k++) { x[i + k] = tail[k]; sum += tail[k]; }
        }

        TV inv = TOps.Broadcast(1f / sum);
        for (i = 0; i <= n - w; i += w) TOps.Store(x + i, TOps.Mul(TOps.Load(x + i), inv));
        float invS = 1f / sum;
        for (; i < n; i++) x[i] *= invS;
    }
}
