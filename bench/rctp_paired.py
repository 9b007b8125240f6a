#!/usr/bin/env python3
"""Paired comparison of pruned runs against a dense run of `edgevit eval` on the same images.

usage: bench/rctp_paired.py DENSE_PREFIX RUN_PREFIX...   (each PREFIX has PREFIX.csv from --predictions and
PREFIX.f32 from --logits). Prints, per run: mean GFLOPs (fraction of dense), top-1 and its delta against dense
with a paired bootstrap 95 % CI, flips (dense right -> pruned wrong, and back), top-1 agreement with dense, and
mean KL(dense || pruned) of the softmax over the images. Pure Python (no numpy on the shared machine).
"""
import array, csv, math, random, sys

def load(prefix):
    rows = list(csv.DictReader(open(prefix + ".csv")))
    raw = array.array("f"); raw.frombytes(open(prefix + ".f32", "rb").read())
    n = len(rows); c = len(raw) // n
    assert c * n == len(raw), f"{prefix}.f32 is not {n} x classes"
    logp = []
    for i in range(n):
        z = raw[i * c:(i + 1) * c]; m = max(z); s = math.log(sum(math.exp(v - m) for v in z))
        logp.append([v - m - s for v in z])
    return rows, logp

def bootstrap(diff, reps=4000, seed=1):
    rng = random.Random(seed); n = len(diff)
    means = sorted(sum(diff[rng.randrange(n)] for _ in range(n)) / n for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps)]

def mcnemar(lost, gained):
    """Exact two-sided McNemar p (binomial on the discordant pairs)."""
    n = lost + gained; k = min(lost, gained)
    if n == 0: return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)

def main():
    dense_rows, dense_logp = load(sys.argv[1])
    names = [r["image"] for r in dense_rows]
    right_d = [int(r["top1"] == r["label"]) for r in dense_rows]
    gd = sum(float(r["gflops"]) for r in dense_rows) / len(dense_rows)
    n = len(names)
    print(f"dense: {n} images, top-1 {100 * sum(right_d) / n:.2f} %, {gd:.4f} GFLOPs")
    print("| run | of dense | top-1 % | Δ top-1 pp [95 % CI] | lost / gained | McNemar p | agree % | KL(dense‖pruned) |")
    print("|---|---|---|---|---|---|---|---|")
    for prefix in sys.argv[2:]:
        rows, logp = load(prefix)
        assert [r["image"] for r in rows] == names, f"{prefix}: not the same images in the same order"
        right = [int(r["top1"] == r["label"]) for r in rows]
        diff = [100 * (a - b) for a, b in zip(right, right_d)]
        lo, hi = bootstrap(diff)
        agree = sum(r["top1"] == d["top1"] for r, d in zip(rows, dense_rows)) / n
        kl = sum(sum(math.exp(p) * (p - q) for p, q in zip(dp, pp)) for dp, pp in zip(dense_logp, logp)) / n
        lost = sum(1 for a, b in zip(right, right_d) if b and not a); gained = sum(1 for a, b in zip(right, right_d) if a and not b)
        g = sum(float(r["gflops"]) for r in rows) / n
        print(f"| {prefix.split('/')[-1]} | {g / gd:.3f} | {100 * sum(right) / n:.2f} | {sum(diff) / n:+.2f} [{lo:+.2f}, {hi:+.2f}] | {lost} / {gained} | {mcnemar(lost, gained):.3g} | {100 * agree:.1f} | {kl:.4f} |")

main()
