namespace EdgeViT.Tests.Kernels;

/// <summary>Plain double-precision implementations the SIMD kernels are checked against.</summary>
internal static class Reference
{
    public static float[] RandomArray(Random rng, int n, double scale = 1.0)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    /// <summary>C[m x n] = A[m x k] * W^T + bias with W [n x k] (timm's linear layout), in double.</summary>
    public static double[] Linear(float[] a, int m, int k, float[] wOutIn, int n, float[]? bias)
    {
        var c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = bias?[j] ?? 0;
                for (int kk = 0; kk < k; kk++) s += (double)a[i * k + kk] * wOutIn[j * k + kk];
                c[i * n + j] = s;
            }
        return c;
    }

    public static double Gelu(double x) => 0.5 * x * (1 + Erf(x / Math.Sqrt(2)));

    /// <summary>erf to ~1e-15 by its Maclaurin series (|x| &lt; 3) and continued fraction beyond.</summary>
    public static double Erf(double x)
    {
        double ax = Math.Abs(x);
        if (ax < 3)
        {
            double sum = 0, term = ax;
            for (int n = 0; n < 200; n++)
            {
                double t = term / (2 * n + 1);
                sum += t;
                if (Math.Abs(t) < 1e-17 * Math.Abs(sum)) break;
                term *= -ax * ax / (n + 1);
            }
            return Math.Sign(x) * 2 / Math.Sqrt(Math.PI) * sum;
        }
        // erfc continued fraction (Lentz), converges fast for ax >= 3.
        double f = ax, c = ax, d = 0;
        for (int n = 1; n < 200; n++)
        {
            double an = n / 2.0;
            d = ax + an * d; d = 1 / d;
            c = ax + an / c;
            double delta = c * d; f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        return Math.Sign(x) * (1 - erfc);
    }

    public static double[] LayerNorm(float[] x, int n, float[] g, float[] b, double eps)
    {
        double mean = x.Take(n).Sum(v => (double)v) / n;
        double var = x.Take(n).Sum(v => (v - mean) * (v - mean)) / n;
        return Enumerable.Range(0, n).Select(i => (x[i] - mean) / Math.Sqrt(var + eps) * g[i] + b[i]).ToArray();
    }

    public static double[] Softmax(float[] x, int n, double scale)
    {
        double max = x.Take(n).Max();
        var e = x.Take(n).Select(v => Math.Exp((v - max) * scale)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }
}
