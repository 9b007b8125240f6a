namespace EdgeViT.Tests.Imaging;

/// <summary>
/// A deliberately plain re-implementation of torchvision's eval transform on a PIL image, written from PIL's
/// Resample.c and torchvision's functional.py: full-image two-pass resize (no cropping shortcut, no vectors,
/// no plan cache, no row blocking), then crop and normalise. Weights are computed in double and quantised to
/// 22-bit fixed point exactly as PIL does, so its bytes must equal the production path's bit for bit.
/// </summary>
internal static class PilReference
{
    private const int Precision = 22;

    /// <summary>Resize(shortSide, BICUBIC) + CenterCrop(crop) as HWC bytes.</summary>
    public static byte[] ResizeCrop(byte[] rgb, int width, int height, int stride, int shortSide, int crop)
    {
        // torchvision _compute_resized_output_size: int(size * long / short) with Python's float division.
        int shortIn = Math.Min(width, height), longIn = Math.Max(width, height);
        int longOut = (int)((double)(shortSide * longIn) / shortIn);
        int outW = width <= height ? shortSide : longOut;
        int outH = width <= height ? longOut : shortSide;

        var (hStart, hTaps, hK) = Coefficients(width, outW);
        var (vStart, vTaps, vK) = Coefficients(height, outH);

        var wide = new byte[height, outW, 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < outW; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 1 << (Precision - 1);
                    for (int t = 0; t < hTaps[x]; t++) sum += rgb[y * stride + (hStart[x] + t) * 3 + c] * hK[x][t];
                    wide[y, x, c] = Clip(sum);
                }

        var resized = new byte[outH, outW, 3];
        for (int y = 0; y < outH; y++)
            for (int x = 0; x < outW; x++)
                for (int c = 0; c < 3; c++)
                {
                    int sum = 1 << (Precision - 1);
                    for (int t = 0; t < vTaps[y]; t++) sum += wide[vStart[y] + t, x, c] * vK[y][t];
                    resized[y, x, c] = Clip(sum);
                }

        // torchvision center_crop: int(round((size - crop) / 2.0)); Python rounds half to even, as Math.Round does.
        int top = (int)Math.Round((outH - crop) / 2.0), left = (int)Math.Round((outW - crop) / 2.0);
        var result = new byte[crop * crop * 3];
        for (int y = 0; y < crop; y++)
            for (int x = 0; x < crop; x++)
                for (int c = 0; c < 3; c++)
                    result[(y * crop + x) * 3 + c] = resized[top + y, left + x, c];
        return result;
    }

    /// <summary>ToTensor + Normalize: HWC bytes -> CHW floats, float32 operations in torchvision's order.</summary>
    public static float[] Normalize(byte[] hwc, int crop, float[] mean, float[] std)
    {
        var chw = new float[3 * crop * crop];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < crop * crop; i++)
            {
                float scaled = hwc[i * 3 + c] / 255f;
                chw[c * crop * crop + i] = (scaled - mean[c]) / std[c];
            }
        return chw;
    }

    /// <summary>PIL precompute_coeffs (antialiased bicubic, a = -0.5) + normalize_coeffs_8bpc, for all outputs.</summary>
    private static (int[] Start, int[] Taps, int[][] K) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = scale < 1.0 ? 1.0 : scale;
        double support = 2.0 * filterScale;
        var start = new int[outSize];
        var taps = new int[outSize];
        var k = new int[outSize][];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            int lo = (int)(center - support + 0.5);
            if (lo < 0) lo = 0;
            int hi = (int)(center + support + 0.5);
            if (hi > inSize) hi = inSize;
            var w = new double[hi - lo];
            double total = 0;
            for (int i = 0; i < w.Length; i++)
            {
                w[i] = Cubic((i + lo - center + 0.5) * (1.0 / filterScale)); // PIL multiplies by the reciprocal
                total += w[i];
            }
            k[o] = new int[w.Length];
            for (int i = 0; i < w.Length; i++)
            {
                double normalised = total != 0 ? w[i] / total : w[i];
                double scaled = normalised * (1 << Precision);
                k[o][i] = (int)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
            }
            start[o] = lo;
            taps[o] = w.Length;
        }
        return (start, taps, k);
    }

    private static double Cubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    private static byte Clip(int sum) => (byte)Math.Clamp(sum >> Precision, 0, 255);
}
