using System.Diagnostics;
using EdgeViT.Kernels.Engine;
using EdgeViT.Kernels.Model;
using EdgeViT.Kernels.Reduction;

namespace EdgeViT.Kernels.Rctp;

/// <summary>
/// Turns plans (how many patch tokens each block should keep on D) into thresholds on the real pruned
/// model. Every calibration image is advanced through block l's attention; block l's threshold is then the
/// class-attention value that keeps exactly the planned number of tokens over D; the images are pruned
/// with it and advanced through the MLP, and so on. So the thresholds see what pruning really does to
/// later blocks (fewer tokens, renormalised attention), and the FLOPs of the pass are the measured FLOPs.
///
/// Plans that agree on blocks 0..l-1 have the same state entering block l, so <see cref="RealizeAll"/> walks
/// the plans as a trie of keep-count prefixes: each distinct prefix is advanced once over all images, and its
/// state is copied only where plans part ways (depth first, so at most one copy per branching level is held).
/// </summary>
public sealed unsafe class ThresholdFitter : IDisposable
{
    private readonly VitEngine[] _engines;
    private readonly VitConfig _c;
    private readonly float[][] _embedded; // per image: residual stream after patch embedding [Tokens x D]
    private readonly double[][] _denseLogProb; // per image: dense log-softmax, when given (for the measured KL)
    private readonly int[] _label;             // per image: the label calibration's Fisher used (for the measured loss)

    /// <summary>One single-threaded engine per worker (fp32, or int8: the thresholds see that engine's attention); images are split between them.</summary>
    public ThresholdFitter(VitWeights weights, int workers, int images, Simd.SimdLevel? level = null, Precision precision = Precision.Fp32, ThresholdRule rule = default)
    {
        _c = weights.Config;
        Rule = rule;
        var quantized = precision == Precision.Int8 ? Quant.QuantizedWeights.Quantize(weights) : null;
        _engines = Enumerable.Range(0, Math.Max(1, workers))
            .Select(_ => new VitEngine(weights, new EngineOptions(1, level) { Precision = precision, Quantized = quantized })).ToArray();
        _embedded = new float[images][];
        _denseLogProb = new double[images][];
        _label = new int[images];
    }

    public int Images => _embedded.Length;
    public ThresholdRule Rule { get; }

    /// <summary>Embeds image i (thread-safe for distinct workers).</summary>
    /// <param name="denseLogits">The dense model's logits for the image: the fit then measures each plan's mean KL(dense || pruned) and cross-entropy with <paramref name="label"/>.</param>
    public void AddImage(int worker, int index, ReadOnlySpan<float> imageChw, ReadOnlySpan<float> denseLogits = default, int label = -1)
    {
        _label[index] = label;
        if (!denseLogits.IsEmpty) _denseLogProb[index] = LogSoftmax(denseLogits);
        var engine = _engines[worker];
        var x = new float[_c.Tokens * _c.EmbedDim];
        fixed (float* img = imageChw) engine.BeginImage(img);
        engine.SaveState(_c.Tokens, x, new int[_c.Tokens]);
        _embedded[index] = x;
    }

    /// <param name="FlopsSpread">Coefficient of variation of the per-image FLOPs over D: how unevenly one threshold set prunes different images.</param>
    /// <param name="MeanKl">Mean KL(dense || pruned) of the class distribution over D (NaN without dense logits): the real loss the Fisher sum stands for.</param>
    /// <param name="Agreement">Fraction of D whose pruned top-1 is the dense top-1 (NaN without dense logits).</param>
    /// <param name="MeanLoss">Mean cross-entropy of the pruned model with the calibration label (the loss Fisher approximates; NaN without dense logits).</param>
    public sealed record Fit(float[] Thresholds, double MeasuredFlops, double[] MeanTokensPerBlock, double FlopsSpread, double MeanKl = double.NaN, double Agreement = double.NaN, double MeanLoss = double.NaN);

    /// <summary>log softmax in double precision.</summary>
    internal static double[] LogSoftmax(ReadOnlySpan<float> z)
    {
        double max = double.NegativeInfinity;
        foreach (float v in z) max = Math.Max(max, v);
        double sum = 0;
        foreach (float v in z) sum += Math.Exp(v - max);
        double log = max + Math.Log(sum);
        var r = new double[z.Length];
        for (int i = 0; i < z.Length; i++) r[i] = z[i] - log;
        return r;
    }

    /// <summary>KL(p || q) = sum p (log p - log q) from log-probabilities.</summary>
    internal static double Kl(double[] logP, double[] logQ)
    {
        double kl = 0;
        for (int i = 0; i < logP.Length; i++) kl += Math.Exp(logP[i]) * (logP[i] - logQ[i]);
        return Math.Max(0, kl);
    }

    /// <summary>Fits thresholds so that after block l the mean patch tokens alive are keepFraction[l] of all.</summary>
    public Fit Realize(IReadOnlyList<double> keepFraction) => RealizeAll([keepFraction])[0];

    /// <summary>
    /// Per-image state of one trie node: residual rows (one native block, freed as soon as the node is done, so
    /// the peak memory is the states on the current trie path), token ids, token count, FLOPs so far.
    /// </summary>
    private sealed class State : IDisposable
    {
        private readonly Simd.NativeBuffer _rows;
        private readonly long[] _offset;
        private readonly int _d;
        public readonly int[][] Ids;
        /// <summary>Patches each token stands for (only the fused token is not 1).</summary>
        public readonly float[][] Sizes;
        /// <summary>Running-mean class scores (<see cref="ThresholdRule.ScoreMemory"/>; carried even when unused: one float per token).</summary>
        public readonly float[][] Running;
        public readonly int[] N;
        public readonly double[] Flops;

        public State(int d, int[] n, int[][] ids, float[][] sizes, float[][] running, double[] flops)
        {
            _d = d; N = n; Ids = ids; Sizes = sizes; Running = running; Flops = flops;
            _offset = new long[n.Length + 1];
            for (int i = 0; i < n.Length; i++) _offset[i + 1] = _offset[i] + (long)n[i] * d;
            _rows = new Simd.NativeBuffer(_offset[^1]);
        }

        /// <summary>Image i's rows (room for as many tokens as it had when this state was made).</summary>
        public Span<float> X(int i) => new(_rows.Pointer + _offset[i], checked((int)(_offset[i + 1] - _offset[i])));

        public State Clone()
        {
            var copy = new State(_d, (int[])N.Clone(), Ids.Select((ids, i) => ids.AsSpan(0, N[i]).ToArray()).ToArray(),
                Sizes.Select((s, i) => s.AsSpan(0, N[i]).ToArray()).ToArray(), Running.Select((s, i) => s.AsSpan(0, N[i]).ToArray()).ToArray(), (double[])Flops.Clone());
            for (int i = 0; i < N.Length; i++) X(i)[..(N[i] * _d)].CopyTo(copy.X(i));
            return copy;
        }

        /// <summary>
        /// This state, or (when pruning has left a tenth or more of its rows unused) a copy sized to the tokens it
        /// still has, this one freed: a node's subtree then holds only the rows it needs, which keeps the peak
        /// memory of the current trie path down.
        /// </summary>
        public State Compacted()
        {
            long used = 0;
            foreach (int n in N) used += (long)n * _d;
            if (used * 10 >= _offset[^1] * 9) return this;
            var copy = Clone();
            Dispose();
            return copy;
        }

        public void Dispose() => _rows.Dispose();
    }

    /// <summary>
    /// Fits every plan (keep fractions per block), sharing the forward work of common prefixes. Progress lines
    /// (stage, images, plans, ETA) go to <paramref name="progress"/> at most every 2 s.
    /// </summary>
    public IReadOnlyList<Fit> RealizeAll(IReadOnlyList<IReadOnlyList<double>> keepFractions, Action<string>? progress = null)
    {
        int images = Images, depth = _c.Depth;
        if (_embedded.Any(e => e is null)) throw new InvalidOperationException("not every calibration image was added");
        if (keepFractions.Any(k => k.Count != depth)) throw new ArgumentException($"every plan needs {depth} keep fractions");
        int plans = keepFractions.Count;
        if (plans == 0) return [];
        var targets = keepFractions.Select(k => k.Select(f => (long)Math.Round(Math.Clamp(f, 0, 1) * _c.Patches * images)).ToArray()).ToArray();
        var results = new Fit?[plans];
        var thresholds = Enumerable.Range(0, plans).Select(_ => new float[depth]).ToArray();
        var meanTokens = Enumerable.Range(0, plans).Select(_ => new double[depth]).ToArray();

        // Work for the ETA: one unit per image per stage (attention per distinct prefix of length l, MLP per length l+1).
        long totalStages = 0;
        for (int l = 0; l < depth; l++)
        {
            int len = l;
            totalStages += targets.Select(t => string.Join(",", t.Take(len))).Distinct().Count();
            totalStages += targets.Select(t => string.Join(",", t.Take(len + 1))).Distinct().Count();
        }
        long doneStages = 0;
        var clock = Stopwatch.StartNew();
        double lastReport = -10;
        void Stage(string what)
        {
            doneStages++;
            double s = clock.Elapsed.TotalSeconds;
            if (progress is null || (s - lastReport < 2 && doneStages < totalStages)) return;
            lastReport = s;
            double eta = s / doneStages * (totalStages - doneStages);
            progress($"fit: {what}, {images} images, {plans} budgets, stage {doneStages}/{totalStages}, {s:F0} s elapsed, ETA {eta:F0} s");
        }

        var root = new State(_c.EmbedDim, Enumerable.Repeat(_c.Tokens, images).ToArray(),
            Enumerable.Range(0, images).Select(_ => Enumerable.Range(0, _c.Tokens).ToArray()).ToArray(),
            Enumerable.Range(0, images).Select(_ => Enumerable.Repeat(1f, _c.Tokens).ToArray()).ToArray(),
            Enumerable.Range(0, images).Select(_ => new float[_c.Tokens]).ToArray(),
            Enumerable.Repeat(new FlopsModel(_c).Fixed, images).ToArray());
        for (int i = 0; i < images; i++) _embedded[i].CopyTo(root.X(i));
        Walk(0, Enumerable.Range(0, plans).ToArray(), root);
        return results!;

        void Walk(int l, int[] members, State state)
        {
            if (l == depth)
            {
                double measured = state.Flops.Average();
                double sd = Math.Sqrt(state.Flops.Sum(f => (f - measured) * (f - measured)) / Math.Max(1, images - 1));
                double kl = double.NaN, agree = double.NaN, ce = double.NaN;
                if (_denseLogProb.All(p => p is not null))
                {
                    var klPer = new double[images];
                    var agreePer = new bool[images];
                    var cePer = new double[images];
                    ForEachImage((engine, i) =>
                    {
                        var logits = new float[_c.Classes];
                        engine.LoadState(state.N[i], state.X(i), state.Ids[i], state.Sizes[i], state.Running[i]);
                        engine.FinishImage(logits);
                        var q = LogSoftmax(logits);
                        klPer[i] = Kl(_denseLogProb[i], q);
                        agreePer[i] = ArgMax(q) == ArgMax(_denseLogProb[i]);
                        int y = _label[i] >= 0 ? _label[i] : ArgMax(_denseLogProb[i]);
                        cePer[i] = -q[y];
                    });
                    ce = cePer.Average();
                    kl = klPer.Average();
                    agree = agreePer.Count(a => a) / (double)images;
                }
                foreach (int p in members) results[p] = new Fit(thresholds[p], measured, meanTokens[p], sd / measured, kl, agree, ce);
                state.Dispose();
                return;
            }
            var flops = new FlopsModel(_c);
            var scores = new float[images][];
            ForEachImage((engine, i) =>
            {
                engine.LoadState(state.N[i], state.X(i), state.Ids[i], state.Sizes[i], state.Running[i]);
                engine.AttentionStage(l, state.N[i], proportional: Rule.FuseDropped, rule: Rule);
                engine.SaveState(state.N[i], state.X(i), state.Ids[i], state.Sizes[i], state.Running[i]);
                scores[i] = new ReadOnlySpan<float>(engine.ClassScores, state.N[i]).ToArray();
                state.Flops[i] += flops.Attention(state.N[i]);
            });
            Stage($"block {l} attention");
            var sorted = SortedScores(scores, state);

            var groups = members.GroupBy(p => targets[p][l]).ToArray();
            if (groups.Length > 1)
            {
                BranchSharingTheMlp(l, groups, state, scores, sorted);
                return;
            }
            // One keep count: the only branch continues in the node's own state.
            float tau = TauFor(groups[0].Key, sorted);
            MlpInPlace(l, state, tau, scores);
            double mean = state.N.Average();
            foreach (int p in members) { thresholds[p][l] = tau; meanTokens[p][l] = mean; }
            Walk(l + 1, members, state.Compacted());
        }

        /// <summary>Prunes every image of <paramref name="s"/> at tau and runs block l's MLP on what is kept, in place.</summary>
        void MlpInPlace(int l, State s, float tau, float[][] scores)
        {
            var flops = new FlopsModel(_c);
            ForEachImage((engine, i) =>
            {
                engine.LoadState(s.N[i], s.X(i), s.Ids[i], s.Sizes[i], s.Running[i]);
                engine.LoadClassScores(scores[i]);
                int kept = engine.MlpStage(l, s.N[i], tau, Rule);
                engine.SaveState(kept, s.X(i), s.Ids[i], s.Sizes[i], s.Running[i]);
                s.Flops[i] += flops.Mlp(kept);
                s.N[i] = kept;
            });
            Stage($"block {l} MLP");
        }

        /// <summary>
        /// Where plans part ways at block l's threshold (several keep counts). The MLP is per token, and a higher
        /// threshold keeps a subset of a lower one's patch tokens, so the MLP runs once, on every token the lowest
        /// threshold keeps; each other branch is pruned from the node's state, takes its tokens' MLP rows from that
        /// result (bit-identical to running them itself: a GEMM row does not depend on its neighbours), and runs the
        /// MLP only on its own fused token, which averages its own dropped tokens. Branches are walked depth first,
        /// the loosest last.
        /// </summary>
        void BranchSharingTheMlp(int l, IGrouping<long, int>[] groups, State state, float[][] scores, float[] sorted)
        {
            int d = _c.EmbedDim;
            var flops = new FlopsModel(_c);
            var tau = groups.Select(g => TauFor(g.Key, sorted)).ToArray();
            int loosest = 0;
            for (int g = 1; g < groups.Length; g++) if (tau[g] < tau[loosest]) loosest = g;
            var shared = state.Clone();
            MlpInPlace(l, shared, tau[loosest], scores);
            shared = shared.Compacted();

            var others = Enumerable.Range(0, groups.Length).Where(g => g != loosest).ToArray();
            for (int k = 0; k < others.Length; k++)
            {
                int g = others[k];
                var next = state.Clone(); // the node's state before the MLP; pruned below (rows only shrink)
                ForEachImage((engine, i) =>
                {
                    engine.LoadState(next.N[i], next.X(i), next.Ids[i], next.Sizes[i], next.Running[i]);
                    engine.LoadClassScores(scores[i]);
                    int kept = engine.PruneStage(l, next.N[i], tau[g], Rule);
                    int live = engine.LiveRows(l, kept);
                    // Compaction puts the branch's own fused token (if any) last: only that row runs the MLP here.
                    if (live > 0 && engine.LastStats.KeptTokenIds[l * _c.Tokens + live - 1] == TokenReductionContext.FusedId)
                        engine.MlpRows(l, live - 1, 1);
                    engine.SaveState(kept, next.X(i), next.Ids[i], next.Sizes[i], next.Running[i]);
                    Span<float> from = shared.X(i), to = next.X(i);
                    int[] ids = next.Ids[i], sharedIds = shared.Ids[i];
                    for (int r = 0, j = 0; r < live; r++)
                    {
                        if (ids[r] == TokenReductionContext.FusedId) continue;
                        while (j < shared.N[i] && sharedIds[j] != ids[r]) j++; // both keep node order
                        if (j == shared.N[i]) throw new InvalidOperationException($"block {l}: token {ids[r]} kept at {tau[g]} but not at {tau[loosest]}");
                        from.Slice(j * d, d).CopyTo(to.Slice(r * d, d));
                    }
                    next.Flops[i] += flops.Mlp(kept);
                    next.N[i] = kept;
                });
                Stage($"block {l} MLP");
                if (k == others.Length - 1) state.Dispose(); // every branch has what it needs from the node
                double mean = next.N.Average();
                foreach (int p in groups[g]) { thresholds[p][l] = tau[g]; meanTokens[p][l] = mean; }
                Walk(l + 1, groups[g].ToArray(), next.Compacted());
            }
            double meanShared = shared.N.Average();
            foreach (int p in groups[loosest]) { thresholds[p][l] = tau[loosest]; meanTokens[p][l] = meanShared; }
            Walk(l + 1, groups[loosest].ToArray(), shared);
        }
    }

    /// <summary>
    /// Every image's patch scores on the rule's scale, pooled and sorted ascending; a fused token is not a patch
    /// the threshold judges (<see cref="TokenReductionContext.KeepAbove"/>), so it is left out, as from the mean.
    /// </summary>
    private float[] SortedScores(float[][] scores, State state)
    {
        int prefix = _c.PrefixTokens;
        var end = state.N.Select((n, i) => n > prefix && state.Ids[i][n - 1] == TokenReductionContext.FusedId ? n - 1 : n).ToArray();
        var all = new float[end.Sum(v => (long)(v - prefix))];
        int k = 0;
        bool relative = Rule.Scale == ScoreScale.RelativeToMean;
        for (int i = 0; i < scores.Length; i++)
        {
            float unit = 1f;
            if (relative)
                fixed (float* s = scores[i]) unit = TokenReductionContext.MeanPatchScore(s, prefix, end[i]);
            for (int t = prefix; t < end[i]; t++) all[k++] = relative ? scores[i][t] / unit : scores[i][t];
        }
        SortAscending(all);
        return all;
    }

    /// <summary>
    /// Sorts ascending by an LSD radix sort on order-preserving integer keys (11, 11, 10 bits): linear time, where
    /// Array.Sort's comparison sort of ~200k scores per attention stage cost ~15 ms on one core while every worker
    /// waited. Same order as Array.Sort for any non-NaN floats (negative values and -0 included).
    /// </summary>
    internal static void SortAscending(float[] values)
    {
        int n = values.Length;
        if (n < 2) return;
        var keys = new uint[n];
        var tmp = new uint[n];
        for (int i = 0; i < n; i++)
        {
            uint b = BitConverter.SingleToUInt32Bits(values[i]);
            keys[i] = (b & 0x8000_0000u) != 0 ? ~b : b | 0x8000_0000u; // negatives reversed below the positives
        }
        Span<int> count = stackalloc int[2048];
        for (int shift = 0; shift < 32; shift += 11)
        {
            int bits = Math.Min(11, 32 - shift), buckets = 1 << bits;
            uint mask = (uint)buckets - 1;
            count[..buckets].Clear();
            foreach (uint k in keys) count[(int)((k >> shift) & mask)]++;
            for (int b = 0, sum = 0; b < buckets; b++) { int c = count[b]; count[b] = sum; sum += c; }
            foreach (uint k in keys) tmp[count[(int)((k >> shift) & mask)]++] = k;
            (keys, tmp) = (tmp, keys);
        }
        for (int i = 0; i < n; i++)
        {
            uint k = keys[i];
            values[i] = BitConverter.UInt32BitsToSingle((k & 0x8000_0000u) != 0 ? k & 0x7FFF_FFFFu : ~k);
        }
    }

    /// <summary>The threshold that keeps <paramref name="keep"/> of the pooled sorted scores (all of them: -inf, no pruning).</summary>
    private static float TauFor(long keep, float[] sorted) => keep >= sorted.Length ? float.NegativeInfinity : KeepTopThreshold(sorted, keep);

    /// <summary>The value strictly below which all but the top <paramref name="keep"/> of the sorted scores fall.</summary>
    private static float KeepTopThreshold(float[] sorted, long keep)
    {
        long drop = sorted.Length - keep; // drop the lowest 'drop' scores: keep iff score > tau
        if (drop <= 0) return float.NegativeInfinity;
        if (keep <= 0) return sorted[^1];
        float lo = sorted[drop - 1], hi = sorted[drop];
        return lo == hi ? lo : lo + (hi - lo) * 0.5f;
    }

    private static int ArgMax(double[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    /// <summary>
    /// Runs work(engine, image) for every image, one engine per worker; images are claimed one at a time, so a worker
    /// that loses its core (a shared machine) does not leave the other waiting at the end of the stage. Each image's
    /// result depends only on its own state, not on which engine ran it, so the fit stays deterministic.
    /// </summary>
    private void ForEachImage(Action<VitEngine, int> work)
    {
        int workers = _engines.Length, images = Images, next = -1;
        System.Threading.Tasks.Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            for (int i; (i = Interlocked.Increment(ref next)) < images;) work(_engines[w], i);
        });
    }

    public void Dispose() { foreach (var e in _engines) e.Dispose(); }
}
