"""Where linear CKA's time goes against Kornblith et al.'s feature-space code, pass by pass.

Kornblith's code is the floor of the quantity: each side's column means, one centred copy of
each, and the three products XᵀY, XᵀX and YᵀY (its steps are timed here as written in the
notebook; benchmarks/libraries.py times the notebook's own function). A single
``similarity(X, Y, "cka_linear")`` call on float64 arrays takes the raw products instead, with
the means subtracted afterwards, where that is as exact (prunesim.metrics.raw_products): a
pass each for the means and the columns' sums of squares (its checks), then the products, no
centred copy. Otherwise (float32 data, a neuron whose
mean is large against its spread, a constant neuron) it streams, and the two passes add, per
side:

* the scale check: the largest and smallest element (CKA's fourth powers would overflow
  above ~1e76);
* pass 1's constant-neuron test: each block centred once more and its column sums of squares
  (a neuron that does not vary is left out, not divided by zero);
* each sample's squared norm (debiased CKA, the traces).

"streamed" times that route on the same data (``pair_factors`` without ``raw_products``), and
"cap" is the floor over the floor plus the first two passes: the most the streamed route could
reach against Kornblith's code while keeping those checks, were everything else free.

Not a test: timings are the best of ``--repeat`` calls in one process; compare the ratios.

    python benchmarks/cka_passes.py                          # the issue's two smaller shapes
    python benchmarks/cka_passes.py 50000,1024,1024 --threads 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from libraries import best_of, test_data  # noqa: E402 (the benchmark beside this one)

from prunesim.metrics import evaluate, pair_factors, similarity  # noqa: E402
from prunesim.metrics.stats import centre_into  # noqa: E402

SHAPES = [(5000, 500, 500), (20000, 512, 512)]


def kornblith_steps(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA the way Kornblith et al.'s ``feature_space_linear_cka`` computes it."""
    x = x - np.mean(x, 0, keepdims=True)
    y = y - np.mean(y, 0, keepdims=True)
    cross = np.linalg.norm(x.T.dot(y)) ** 2
    return cross / (np.linalg.norm(x.T.dot(x)) * np.linalg.norm(y.T.dot(y)))


def timings(x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, float]:
    """Seconds of each step, best of ``repeat``."""
    sides = (x, y)
    means = [a.mean(axis=0) for a in sides]
    centred = [a - m for a, m in zip(sides, means, strict=True)]
    buffers = [np.empty_like(c) for c in centred]

    def scale_check():
        return sum(float(a.max()) - float(a.min()) for a in sides)

    def constant_test():
        total = 0.0
        for a, m, b in zip(sides, means, buffers, strict=True):
            deviation, _ = centre_into(a, m, b)
            total += float(np.einsum("ij,ij->j", deviation, deviation).sum())
        return total

    steps = {
        "floor": lambda: kornblith_steps(x, y),
        "prunesim": lambda: similarity(x, y, "cka_linear"),
        "streamed": lambda: evaluate(pair_factors(x, y), "cka_linear").value,
        "scale check": scale_check,
        "constant test": constant_test,
        "row norms": lambda: sum(float(np.einsum("ij,ij->i", c, c).sum()) for c in centred),
    }
    return {name: best_of(call, repeat)[0] for name, call in steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", help="n,p1,p2 (default: the issue's two smaller)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] or SHAPES
    print(
        "| (n, p₁, p₂) | threads | floor | prunesim | floor / prunesim | streamed "
        "| floor / streamed | scale check | constant test | row norms | cap (streamed) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        x, y = test_data(*shape)
        for threads in args.threads:
            with threadpool_limits(limits=threads):
                t = timings(x, y, args.repeat)
            cap = t["floor"] / (t["floor"] + t["scale check"] + t["constant test"])

            def ms(name, t=t):
                return f"{1000 * t[name]:.1f} ms"

            print(
                f"| {', '.join(f'{v:,}' for v in shape)} | {threads} | {ms('floor')} "
                f"| {ms('prunesim')} | {t['floor'] / t['prunesim']:.2f}× | {ms('streamed')} "
                f"| {t['floor'] / t['streamed']:.2f}× | {ms('scale check')} "
                f"| {ms('constant test')} | {ms('row norms')} | {cap:.2f}× |"
            )


if __name__ == "__main__":
    main()
