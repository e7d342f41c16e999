"""How far a single call's raw products are from centring first, at the route's own bound.

``similarity(X, Y, m)`` on two float64 arrays takes the raw products, centred afterwards,
for linear and debiased CKA and NBS when every neuron's |mean| is at most 8 stds (and the
bound's √n term allows; prunesim.metrics.raw_products). Their rounding is largest at that
bound, so every neuron here is placed at 7.9–7.99 stds from 0 (sign and scale drawn per
neuron): a third of the draws independent, a third sharing a direction between the two
sides, a third with one neuron nearly copied from one side to the other. Each value is
compared with ``evaluate(pair_factors(X, Y), m)``, the two passes that centre first (which
agree with exact arithmetic to ~1e-15). The "route" column says whether ``raw_pair`` takes
the draws as they come (below ``MIN_SAMPLES`` samples it refuses them); the deviations are
those of the raw products either way (``raw_pair`` is called with the sample count's bound
lifted), so a refused row shows why it is refused.

Prints, per shape and metric, the largest |raw − centred first| over the draws. Not a test:
the tests hold the route to 1e-12 and 1e-11 on fixed draws; this surveys more of them.

    python benchmarks/raw_products_accuracy.py
    python benchmarks/raw_products_accuracy.py --seed 1
    python benchmarks/raw_products_accuracy.py 20000,512,512,3
"""

from __future__ import annotations

import argparse

import numpy as np

from prunesim.metrics import REGISTRY, LayerFactors, PairFactors, evaluate, pair_factors
from prunesim.metrics.raw_products import MIN_SAMPLES, raw_pair

# (n, p₁, p₂, draws): the smallest n debiased CKA is defined for, the route's smallest, tall
# and narrow layers (nothing averages their rounding out), and wide ones (p up to n)
SHAPES = [
    (4, 2, 1, 400),
    (4, 4, 3, 400),
    (5, 5, 3, 300),
    (8, 8, 6, 200),
    (MIN_SAMPLES, 16, 12, 200),
    (64, 64, 48, 100),
    (2000, 20, 15, 12),
    (2000, 1, 2, 6),
    (5000, 1, 2, 6),
    (50000, 1, 2, 6),
    (1024, 1024, 768, 6),
    (4096, 4096, 3072, 2),
]
METRICS = [name for name, metric in REGISTRY.items() if metric.raw_products]


def at_the_bound(rng: np.random.Generator, n: int, p1: int, p2: int, kind: int):
    """Two sides whose every neuron has |mean| 7.9–7.99 sample stds (stds 0.1–10); ``kind``
    0: independent, 1: one shared direction, 2: y's first neuron nearly a copy of x's."""
    x, y = rng.standard_normal((n, p1)), rng.standard_normal((n, p2))
    if kind == 1:
        y[:, :1] += x[:, :1] * rng.standard_normal()
    elif kind == 2:
        y[:, :1] = 0.999 * x[:, :1] + 0.045 * y[:, :1]
    ratio = rng.uniform(7.9, 7.99)
    sides = []
    for a in (x, y):
        std = rng.uniform(0.1, 10.0, a.shape[1])
        a = (a - a.mean(axis=0)) / a.std(axis=0) * std
        sides.append(a + ratio * std * rng.choice([-1.0, 1.0], a.shape[1]))
    return sides


def raw_value(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    """The metric from the raw products, also where the route would refuse the shape."""
    spec = REGISTRY[metric]
    raw = raw_pair(x, y, spec.covariances, True, spec.row_norms, min_samples=1)
    if raw is None:
        raise SystemExit(f"raw_pair refused a draw at the bound for {metric}: the survey's data")
    stats_x, stats_y, cross = raw
    return evaluate(PairFactors(LayerFactors(stats_x), LayerFactors(stats_y), cross), metric).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", help="n,p1,p2,draws (default: the survey above)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] or SHAPES
    rng = np.random.default_rng(args.seed)
    print(f"| (n, p₁, p₂) | draws | route | {' | '.join(METRICS)} |")
    print(f"|---|---:|---|{'---:|' * len(METRICS)}")
    for n, p1, p2, draws in shapes:
        worst = dict.fromkeys(METRICS, 0.0)
        taken = set()
        for draw in range(draws):
            x, y = at_the_bound(rng, n, p1, p2, kind=draw % 3)
            taken.add(raw_pair(x, y, True, True, True) is not None)
            centred_first = pair_factors(x, y)
            for metric in METRICS:
                deviation = abs(raw_value(x, y, metric) - evaluate(centred_first, metric).value)
                worst[metric] = max(worst[metric], deviation)
        route = {frozenset({True}): "taken", frozenset({False}): "refused"}.get(
            frozenset(taken), "mixed"
        )
        cells = " | ".join(f"{worst[m]:.1e}" for m in METRICS)
        print(f"| {n:,}, {p1:,}, {p2:,} | {draws} | {route} | {cells} |")


if __name__ == "__main__":
    main()
