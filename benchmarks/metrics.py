"""Time prunesim's metrics against a straightforward n × n Gram-matrix implementation.

Prints, for each shape (n, p1, p2), the seconds of each prunesim metric, of the baseline run in
the same process, their ratio, and the agreement of the two values. Not a test: the numbers
depend on the machine; the ratios are what to compare.

    python benchmarks/metrics.py                 # default shapes
    python benchmarks/metrics.py 2000,300,300    # your own n,p1,p2 (several allowed)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from prunesim.metrics import similarity

DEFAULT_SHAPES = [(1000, 100, 100), (1000, 4704, 1600), (5000, 500, 500)]


def naive_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook Gram-space CKA: centre the n × n kernels with H = I - 11ᵀ/n."""
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k = h @ (x @ x.T) @ h
    l_ = h @ (y @ y.T) @ h
    return float(np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


def naive_cca_mean(x: np.ndarray, y: np.ndarray) -> float:
    """Mean canonical correlation from QR of the centred data (a full factorisation of n × p)."""
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    return float(np.linalg.svd(qx.T @ qy, compute_uv=False).mean())


BASELINES = {"cka_linear": naive_linear_cka, "cca_mean": naive_cca_mean}


def timed(fn, *args) -> tuple[float, float]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def main(shapes: list[tuple[int, int, int]]) -> None:
    rng = np.random.default_rng(0)
    print(
        f"{'shape':>20} {'metric':>11} {'prunesim s':>11} {'baseline s':>11} {'speedup':>8} {'|diff|':>9}"
    )
    for n, p1, p2 in shapes:
        x = rng.standard_normal((n, p1)).astype(np.float32)
        y = (x[:, : min(p1, p2)] @ rng.standard_normal((min(p1, p2), p2))).astype(np.float32)
        y += rng.standard_normal((n, p2)).astype(np.float32)
        for metric, baseline in BASELINES.items():
            ours_s, ours = timed(similarity, x, y, metric)
            if metric == "cca_mean" and p1 + p2 >= n:
                base_s, ref, note = float("nan"), float("nan"), "(degenerate: NaN by design)"
            else:
                base_s, ref = timed(baseline, x.astype(np.float64), y.astype(np.float64))
                note = ""
            print(
                f"{str((n, p1, p2)):>20} {metric:>11} {ours_s:11.3f} {base_s:11.3f} "
                f"{base_s / ours_s:8.2f} {abs(ours - ref):9.1e} {note}"
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    main([tuple(int(v) for v in a.split(",")) for a in args] if args else DEFAULT_SHAPES)
