using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Simd;

namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// Where calibration's token mask m sits after block l's attention, i.e. which activation a enters F = (sum_c g_c a_c)^2.
/// </summary>
public enum FisherSite
{
    /// <summary>
    /// The token's whole state x' = x + MSA(LN(x)) after the attention sub-block: dropping the token removes all
    /// of it from the rest of the network, and on DeiT-Tiny this predicts pruning damage best (bench/RESULTS.md).
    /// </summary>
    TokenState,
    /// <summary>Only the token's MSA output y = x' - x (the narrowest reading of "a mask at the MSA output").</summary>
    MsaOutput,
}

/// <summary>What calibration learns from one image: per block and patch token, class attention and Fisher.</summary>
public sealed class TokenStatistics(int depth, int patches)
{
    public int Depth { get; } = depth;
    public int Patches { get; } = patches;
    /// <summary>[block * Patches + patch]: class attention of the patch token in the dense model (pooled over heads as the probe's rule says).</summary>
    public float[] Scores { get; } = new float[depth * patches];
    /// <summary>[block * Patches + patch]: (dL/dm)^2 for a mask m on the token at the probe's <see cref="FisherSite"/>.</summary>
    public float[] Fisher { get; } = new float[depth * patches];
    /// <summary>[block * Patches + patch]: the signed dL/dm = sum_c g_c a_c behind <see cref="Fisher"/> (LTMP's mask gradient).</summary>
    public float[] MaskGradient { get; } = new float[depth * patches];
    public int Label { get; set; }
    public int PredictedClass { get; set; }
    /// <summary>The dense model's logits (what calibration measures pruned models against).</summary>
    public float[] Logits { get; set; } = [];
    public float Loss { get; set; }
}

/// <summary>
/// Dense forward + backward of one image for RCTP calibration. The forward is the production engine
/// (single-threaded) with an observer that keeps two snapshots of the residual stream per block; the
/// backward recomputes each block's internals from them (gradient checkpointing) and propagates
/// dL/dx through LayerNorm, MLP/GELU, softmax attention and the linear layers with the same GEMM,
/// on weights packed transposed. Loss: cross-entropy with the label, or the model's own top-1.
/// </summary>
public sealed unsafe class FisherProbe : IDisposable, VitEngine.IForwardObserver
{
    private readonly VitEngine _engine;
    private readonly VitConfig _c;
    private readonly SimdLevel _level;
    private readonly (PackedMatrix QkvT, PackedMatrix ProjT, PackedMatrix Fc1T, PackedMatrix Fc2T)[] _transposed;
    private readonly NativeBuffer[] _xIn, _xMid, _score;
    private readonly List<NativeBuffer> _scratch = [];
    private readonly float* _g, _u, _hPre, _dh, _du, _a, _qkv, _o, _dO, _dqkv, _da, _p, _dp, _t, _pack;
    private readonly float[] _logits;
    private readonly int _ld; // row stride of the n x n score matrices

    public FisherSite Site { get; }

    /// <summary>How the recorded class scores pool the heads (RCTP ranks tokens by the score its rule thresholds).</summary>
    public Reduction.HeadPooling Heads { get; }

    public FisherProbe(VitWeights weights, SimdLevel? level = null, FisherSite site = FisherSite.TokenState, Reduction.HeadPooling heads = Reduction.HeadPooling.Mean)
    {
        Site = site;
        Heads = heads;
        _c = weights.Config;
        _level = level ?? SimdLevels.Best;
        _engine = new VitEngine(weights, new EngineOptions(1, _level)) { Observer = this };
        int t = _c.Tokens, d = _c.EmbedDim, w = Gemm.PanelWidth(_level);
        _ld = (t + w - 1) / w * w;
        _transposed = weights.Blocks.Select(b => (
            PackedMatrix.FromRowMajor(b.Qkv.Weight, b.Qkv.Out, b.Qkv.In, [], _level),
            PackedMatrix.FromRowMajor(b.Proj.Weight, b.Proj.Out, b.Proj.In, [], _level),
            PackedMatrix.FromRowMajor(b.Fc1.Weight, b.Fc1.Out, b.Fc1.In, [], _level),
            PackedMatrix.FromRowMajor(b.Fc2.Weight, b.Fc2.Out, b.Fc2.In, [], _level))).ToArray();
        _xIn = Enumerable.Range(0, _c.Depth + 1).Select(_ => new NativeBuffer((long)t * d)).ToArray();
        _xMid = Enumerable.Range(0, _c.Depth).Select(_ => new NativeBuffer((long)t * d)).ToArray();
        _score = Enumerable.Range(0, _c.Depth).Select(_ => new NativeBuffer(t)).ToArray();
        _g = Alloc(t * d); _u = Alloc(t * d); _du = Alloc(t * d); _a = Alloc(t * d); _o = Alloc(t * d);
        _dO = Alloc(t * d); _da = Alloc(t * d);
        _hPre = Alloc(t * _c.MlpDim); _dh = Alloc(t * _c.MlpDim);
        _qkv = Alloc(t * 3 * d); _dqkv = Alloc(t * 3 * d);
        _p = Alloc(t * _ld); _dp = Alloc(t * _ld); _t = Alloc(t * _ld);
        _pack = Alloc(Math.Max(Gemm.PackedLength(_level, _c.HeadDim, t), Gemm.PackedLength(_level, t, _c.HeadDim)));
        _logits = new float[_c.Classes];
    }

    private float* Alloc(long n) { var b = new NativeBuffer(n); _scratch.Add(b); return b.Pointer; }

    public VitConfig Config => _c;


    /// <summary>
    /// Probes images 0..images-1 on <paramref name="workers"/> threads, one single-threaded probe each (images are
    /// strided over workers). <paramref name="onImage"/>(worker, index, input, stats) runs on the worker's thread with
    /// the preprocessed input it loaded, so callers can keep what they need (calibration also embeds the image).
    /// </summary>
    public static void MeasureAll(VitWeights weights, int images, Action<int, Span<float>> loadImage, IReadOnlyList<int> labels,
        int workers, SimdLevel? level, FisherSite site, Action<int, int, float[], TokenStatistics> onImage,
        Action<string>? progress = null, string progressPrefix = "", Reduction.HeadPooling heads = Reduction.HeadPooling.Mean)
    {
        var c = weights.Config;
        workers = Math.Max(1, Math.Min(workers, Math.Max(1, images)));
        int done = 0, next = -1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var probes = Enumerable.Range(0, workers).Select(_ => new FisherProbe(weights, level, site, heads)).ToArray();
        try
        {
            System.Threading.Tasks.Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
            {
                var input = new float[c.InChannels * c.ImageSize * c.ImageSize];
                // Images claimed one at a time (balance on a shared machine); results are kept by image index.
                for (int i; (i = Interlocked.Increment(ref next)) < images;)
                {
                    loadImage(i, input);
                    var stats = new TokenStatistics(c.Depth, c.Patches);
                    probes[w].Measure(input, labels[i], stats);
                    onImage(w, i, input, stats);
                    int k = Interlocked.Increment(ref done);
                    if (k % 50 == 0 || k == images)
                    {
                        double s = clock.Elapsed.TotalSeconds;
                        progress?.Invoke($"{progressPrefix}probe: {k}/{images} images, {s:F0} s elapsed, ETA {s / k * (images - k):F0} s");
                    }
                }
            });
        }
        finally { foreach (var p in probes) p.Dispose(); }
    }
    /// <summary>Measures one image; <paramref name="label"/> &lt; 0 uses the model's own top-1 (pseudo-label).</summary>
    public void Measure(ReadOnlySpan<float> imageChw, int label, TokenStatistics into)
    {
        _engine.Infer(imageChw, _logits, ReadOnlySpan<float>.Empty, new Reduction.ThresholdRule(Heads: Heads)); // dense; the rule only pools the scores
        int predicted = ArgMax(_logits);
        int y = label >= 0 ? label : predicted;
        if (y >= _c.Classes) throw new ArgumentOutOfRangeException(nameof(label), label, $"label beyond the model's {_c.Classes} classes");
        into.Label = y;
        into.PredictedClass = predicted;
        into.Logits = (float[])_logits.Clone();
        into.Loss = Backward(y, into);
    }

    // ---- observer: snapshots of the residual stream ----------------------------------------------------------
    void VitEngine.IForwardObserver.BlockInput(int block, float* x, int n) => Copy(x, _xIn[block].Pointer, n * _c.EmbedDim);

    void VitEngine.IForwardObserver.AfterAttention(int block, float* x, float* classScore, int n)
    {
        Copy(x, _xMid[block].Pointer, n * _c.EmbedDim);
        Copy(classScore, _score[block].Pointer, n);
    }

    private static void Copy(float* src, float* dst, int n) => new ReadOnlySpan<float>(src, n).CopyTo(new Span<float>(dst, n));

    // ---- backward -------------------------------------------------------------------------------------------
    private float Backward(int label, TokenStatistics into)
    {
        var c = _c;
        var w = _engine.Weights;
        int n = c.Tokens, d = c.EmbedDim;

        // Cross-entropy: dL/dlogits = softmax - onehot.
        double max = _logits.Max(), sum = 0;
        var prob = new double[c.Classes];
        for (int i = 0; i < c.Classes; i++) { prob[i] = Math.Exp(_logits[i] - max); sum += prob[i]; }
        for (int i = 0; i < c.Classes; i++) prob[i] /= sum;
        float loss = (float)-Math.Log(Math.Max(prob[label], 1e-300));
        prob[label] -= 1;

        new Span<float>(_g, n * d).Clear();
        float* xL = _xIn[c.Depth].Pointer;
        if (w.HeadDistillation is null)
            HeadBackward(prob, w.Head, 1.0, xL, _g, w.FinalNorm);
        else
        {
            HeadBackward(prob, w.Head, 0.5, xL, _g, w.FinalNorm);
            HeadBackward(prob, w.HeadDistillation, 0.5, xL + d, _g + d, w.FinalNorm);
        }

        for (int l = c.Depth - 1; l >= 0; l--)
        {
            MlpBackward(l, n);
            RecordFisher(l, n, into);
            AttentionBackward(l, n);
        }
        return loss;
    }

    /// <summary>g_row += LN^T(W^T (scale * dlogits)) for one prefix token feeding a head.</summary>
    private void HeadBackward(double[] dLogits, Linear head, double scale, float* xRow, float* gRow, Norm norm)
    {
        int d = _c.EmbedDim;
        var dz = new float[d];
        for (int k = 0; k < head.Out; k++)
        {
            double s = dLogits[k] * scale;
            if (s == 0) continue;
            for (int j = 0; j < d; j++) dz[j] += (float)(s * head.Weight[k * d + j]);
        }
        fixed (float* pdz = dz) LayerNormBackwardRow(xRow, norm, pdz, gRow);
    }

    private void MlpBackward(int l, int n)
    {
        var c = _c;
        int d = c.EmbedDim;
        var blk = _engine.Weights.Blocks[l];
        var (_, _, fc1, _) = _engine.PackedBlockWeights(l);
        float* xm = _xMid[l].Pointer;
        LayerNormRows(xm, _u, n, blk.Norm2);
        Gemm.Multiply(_u, d, n, fc1, _hPre, c.MlpDim);                         // pre-activation
        Gemm.Multiply(_g, d, n, _transposed[l].Fc2T, _dh, c.MlpDim);            // dh = g W2
        Elementwise.GeluBackward(_level, _hPre, _dh, n * c.MlpDim);
        Gemm.Multiply(_dh, c.MlpDim, n, _transposed[l].Fc1T, _du, d);           // du = dh' W1
        for (int r = 0; r < n; r++) LayerNormBackwardRow(xm + r * d, blk.Norm2, _du + r * d, _g + r * d);
    }

    /// <summary>
    /// F_t = (sum_c g_tc a_tc)^2 with g = dL/dx' and a = x' (token state) or y = x' - x (MSA output; the residual
    /// connection makes dL/dy = dL/dx').
    /// </summary>
    private void RecordFisher(int l, int n, TokenStatistics into)
    {
        int d = _c.EmbedDim, prefix = _c.PrefixTokens;
        float* x = _xIn[l].Pointer, xm = _xMid[l].Pointer;
        float keepInput = Site == FisherSite.MsaOutput ? 1f : 0f; // a = x' - keepInput * x
        for (int t = prefix; t < n; t++)
        {
            double s = 0;
            for (int j = 0; j < d; j++) s += (double)_g[t * d + j] * (xm[t * d + j] - keepInput * x[t * d + j]);
            into.Fisher[l * into.Patches + t - prefix] = (float)(s * s);
            into.MaskGradient[l * into.Patches + t - prefix] = (float)s;
            into.Scores[l * into.Patches + t - prefix] = _score[l].Pointer[t];
        }
    }

    private void AttentionBackward(int l, int n)
    {
        var c = _c;
        int d = c.EmbedDim, dh = c.HeadDim, ld3 = 3 * d, w = Gemm.PanelWidth(_level);
        float scale = 1f / MathF.Sqrt(dh);
        var blk = _engine.Weights.Blocks[l];
        var (qkvW, _, _, _) = _engine.PackedBlockWeights(l);
        float* x = _xIn[l].Pointer;

        LayerNormRows(x, _a, n, blk.Norm1);
        Gemm.Multiply(_a, d, n, qkvW, _qkv, ld3);
        Gemm.Multiply(_g, d, n, _transposed[l].ProjT, _dO, d);                  // dO = g Wp
        for (int h = 0; h < c.Heads; h++)
        {
            float* q = _qkv + h * dh, k = _qkv + d + h * dh, v = _qkv + 2 * d + h * dh;
            // P = softmax(Q K^T / sqrt(dh)), recomputed as the forward pass does.
            Gemm.PackTransposed(k, ld3, n, dh, w, _pack);
            Gemm.MultiplyPacked(_level, q, ld3, n, _pack, null, dh, n, _p, _ld);
            for (int r = 0; r < n; r++) Elementwise.Softmax(_level, _p + r * _ld, n, scale);
            // dP = dO_h V_h^T
            Gemm.PackTransposed(v, ld3, n, dh, w, _pack);
            Gemm.MultiplyPacked(_level, _dO + h * dh, d, n, _pack, null, dh, n, _dp, _ld);
            // dV_h = P^T dO_h
            Transpose(_p, _t, n);
            Gemm.PackRowMajor(_dO + h * dh, d, n, dh, w, _pack);
            Gemm.MultiplyPacked(_level, _t, _ld, n, _pack, null, n, dh, _dqkv + 2 * d + h * dh, ld3);
            // dS = P o (dP - rowsum(dP o P)) / sqrt(dh), in place of dP
            for (int r = 0; r < n; r++)
            {
                float* pr = _p + r * _ld, dpr = _dp + r * _ld;
                double dot = 0;
                for (int j = 0; j < n; j++) dot += (double)pr[j] * dpr[j];
                for (int j = 0; j < n; j++) dpr[j] = pr[j] * (dpr[j] - (float)dot) * scale;
            }
            // dQ_h = dS K_h ; dK_h = dS^T Q_h
            Gemm.PackRowMajor(k, ld3, n, dh, w, _pack);
            Gemm.MultiplyPacked(_level, _dp, _ld, n, _pack, null, n, dh, _dqkv + h * dh, ld3);
            Transpose(_dp, _t, n);
            Gemm.PackRowMajor(q, ld3, n, dh, w, _pack);
            Gemm.MultiplyPacked(_level, _t, _ld, n, _pack, null, n, dh, _dqkv + d + h * dh, ld3);
        }
        Gemm.Multiply(_dqkv, ld3, n, _transposed[l].QkvT, _da, d);             // da = dqkv Wqkv
        for (int r = 0; r < n; r++) LayerNormBackwardRow(x + r * d, blk.Norm1, _da + r * d, _g + r * d);
    }

    private void Transpose(float* src, float* dst, int n)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) dst[j * _ld + i] = src[i * _ld + j];
    }

    private void LayerNormRows(float* x, float* y, int rows, Norm norm)
    {
        int d = _c.EmbedDim;
        fixed (float* g = norm.Gamma, b = norm.Beta)
            new RowNorm(x, d, g, b, _c.LayerNormEps).Apply(_level, y, d, d, 0, rows);
    }

    /// <summary>gx += d LN(x)/dx ^T dy, for one row: rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).</summary>
    private void LayerNormBackwardRow(float* x, Norm norm, float* dy, float* gx)
    {
        int d = _c.EmbedDim;
        double mean = 0;
        for (int j = 0; j < d; j++) mean += x[j];
        mean /= d;
        double var = 0;
        for (int j = 0; j < d; j++) var += (x[j] - mean) * (x[j] - mean);
        double rstd = 1 / Math.Sqrt(var / d + _c.LayerNormEps);
        double m1 = 0, m2 = 0;
        for (int j = 0; j < d; j++)
        {
            double xhat = (x[j] - mean) * rstd, dxhat = dy[j] * norm.Gamma[j];
            m1 += dxhat; m2 += dxhat * xhat;
        }
        m1 /= d; m2 /= d;
        for (int j = 0; j < d; j++)
        {
            double xhat = (x[j] - mean) * rstd, dxhat = dy[j] * norm.Gamma[j];
            gx[j] += (float)(rstd * (dxhat - m1 - xhat * m2));
        }
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    public void Dispose()
    {
        _engine.Dispose();
        foreach (var (a, b, e, f) in _transposed) { a.Dispose(); b.Dispose(); e.Dispose(); f.Dispose(); }
        foreach (var b in _xIn.Concat(_xMid).Concat(_score).Concat(_scratch)) b.Dispose();
    }
}
