"""Speed and memory of prunesim's metrics, with ratios against baselines run in the same process.

For each shape (n, p1, p2) it prints, per metric: seconds and peak memory (tracemalloc, which
sees numpy's allocations) of prunesim computing that metric alone from the raw matrices; the
same for a straightforward n × n Gram-matrix implementation (kernel metrics) or a thin-SVD
implementation (CCA family) and the speed-up; the achieved rate of the metric's unavoidable
matrix products against this machine's measured float64 matmul rate; and the agreement of the
two values. Then all seven metrics on one pair with shared factors, and a 12 × 12 layer-pair
matrix against the cost of its 12 factorisations and 144 cross-products.

"x floor" is the time over the unavoidable work measured on this machine in the same run: the
matrix products at the measured matmul rate plus the factorisations the metric needs.

Not a test: numbers depend on the machine; compare ratios, which are measured in one run.

    python benchmarks/metrics.py                   # the four reference shapes (~15 min, 2 cores)
    python benchmarks/metrics.py 5000,500,500      # your own n,p1,p2 (several allowed)
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import numpy as np

from prunesim.metrics import (
    METRICS,
    PairFactors,
    evaluate,
    layer_factors,
    pair_factors,
    similarity,
)

REFERENCE_SHAPES = [(5000, 500, 500), (50000, 1024, 1024), (10000, 4096, 4096), (10000, 16384, 512)]
BASELINE_MAX_BYTES = 6 * 2**30  # skip a baseline whose n × n matrices would exceed this


def measure(fn, *args):
    """(seconds, peak MiB, result) of one call."""
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, result


def matmul_rate(dtype=np.float64, size=4096) -> float:
    """GFLOP/s of one dense size × size product (best of three)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    best = min(measure(np.matmul, a, a)[0] for _ in range(3))
    return 2 * size**3 / best / 1e9


# --- baselines: the textbook forms ------------------------------------------------------------


def _centred_grams(x, y):
    n = len(x)
    h = np.eye(n) - 1.0 / n
    return h @ (x @ x.T) @ h, h @ (y @ y.T) @ h


def naive_cka_linear(x, y):
    k, l_ = _centred_grams(x, y)
    return np.vdot(k, l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def naive_cka_rbf(x, y, sigma=1.0):
    def kernel(z):
        sq = (z * z).sum(1)
        d = np.maximum(sq[:, None] + sq[None] - 2 * z @ z.T, 0)
        k = np.exp(-d / (2 * sigma**2 * np.median(d[np.triu_indices(len(z), 1)])))
        h = np.eye(len(z)) - 1.0 / len(z)
        return h @ k @ h

    k, l_ = kernel(x), kernel(y)
    return np.vdot(k, l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def naive_cka_debiased(x, y):
    n = len(x)

    def hsic(k, l_):
        k, l_ = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
        one = np.ones(n)
        return (
            np.vdot(k, l_)
            + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ k @ l_ @ one)
        ) / (n * (n - 3))

    x, y = x - x.mean(0), y - y.mean(0)
    k, l_ = x @ x.T, y @ y.T
    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def naive_nbs(x, y):
    k, l_ = _centred_grams(x, y)

    def sqrt_psd(m):
        w, v = np.linalg.eigh((m + m.T) / 2)
        w = np.where(w > 1e-10 * w.max(), w, 0.0)
        return (v * np.sqrt(w)) @ v.T

    kh = sqrt_psd(k)
    return np.trace(sqrt_psd(kh @ l_ @ kh)) / np.sqrt(np.trace(k) * np.trace(l_))


def _svd_basis(z, keep_variance=None):
    u, s, _ = np.linalg.svd(z - z.mean(0), full_matrices=False)
    keep = s > 1e-5 * s[0]
    u, s = u[:, keep], s[keep]
    if keep_variance is not None:
        k = int(np.searchsorted(np.cumsum(s**2) / (s**2).sum(), keep_variance - 1e-12) + 1)
        u = u[:, :k]
    return u, s


def naive_cca_mean(x, y):
    return np.linalg.svd(_svd_basis(x)[0].T @ _svd_basis(y)[0], compute_uv=False).mean()


def naive_svcca(x, y):
    qx, qy = _svd_basis(x, 0.99)[0], _svd_basis(y, 0.99)[0]
    return np.linalg.svd(qx.T @ qy, compute_uv=False).mean()


def naive_pwcca(x, y):
    qx, qy = _svd_basis(x)[0], _svd_basis(y)[0]
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ u[:, : len(rho)]
    alpha = np.abs(h.T @ (x - x.mean(0))).sum(1)
    return alpha @ rho / alpha.sum()


BASELINES = {
    "cca_mean": naive_cca_mean,
    "svcca": naive_svcca,
    "pwcca": naive_pwcca,
    "cka_linear": naive_cka_linear,
    "cka_rbf": naive_cka_rbf,
    "cka_debiased": naive_cka_debiased,
    "nbs": naive_nbs,
}
GRAM_BASELINES = {"cka_linear", "cka_rbf", "cka_debiased", "nbs"}


def product_flops(metric: str, n: int, p1: int, p2: int) -> float:
    """Unavoidable matrix-product work: the two Gram or covariance matrices (symmetric, so
    n·p·min(n, p) each) and the cross-product XᵀY (2·n·p1·p2), or the two n × n Grams that a
    kernel needs (n²·p each)."""
    if metric == "cka_rbf":
        return n * n * (p1 + p2)
    selfs = n * p1 * min(n, p1) + n * p2 * min(n, p2)
    cross = 0 if max(p1, p2) > n and metric.startswith("cka") else 2 * n * p1 * p2
    return selfs + cross


_FACTORISATION_SECONDS: dict = {}


def _factorisation(kind: str, size: int) -> float:
    """Measured seconds of one symmetric eigendecomposition or one SVD of a size × size matrix."""
    if (kind, size) not in _FACTORISATION_SECONDS:
        rng = np.random.default_rng(2)
        m = rng.standard_normal((size, size))
        if kind == "eigh":
            m = m @ m.T
            seconds = measure(np.linalg.eigh, m)[0]
        else:
            seconds = measure(lambda a: np.linalg.svd(a, compute_uv=kind == "svd_uv"), m)[0]
        _FACTORISATION_SECONDS[kind, size] = seconds
    return _FACTORISATION_SECONDS[kind, size]


def floor_seconds(metric: str, n: int, p1: int, p2: int, rate: float) -> float:
    """The unavoidable work at this machine's speed: the matrix products at the measured
    matmul rate plus the factorisations the metric needs (an eigendecomposition per layer of
    the smaller of XᵀX and XXᵀ, and the SVD of the whitened cross-product or of XᵀY)."""
    seconds = product_flops(metric, n, p1, p2) / (rate * 1e9)
    k1, k2 = min(n, p1), min(n, p2)
    if metric in ("cca_mean", "svcca", "pwcca"):
        seconds += _factorisation("eigh", k1) + _factorisation("eigh", k2)
        seconds += _factorisation("svd_uv" if metric == "pwcca" else "svd", min(k1, k2))
    elif metric == "nbs":
        seconds += _factorisation("svd", min(p1, p2))
    return seconds


def all_metrics(x, y) -> dict:
    """All seven on one pair, sharing factors (data kept for the RBF kernel where n allows,
    as compare does)."""
    pair = pair_factors(x, y, keep_data=len(x) <= 10_000, keep_directions=True)
    return {m: evaluate(pair, m).value for m in METRICS}


def data(n, p1, p2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p1), dtype=np.float32)
    k = min(p1, p2, 256)
    y = x[:, :k] @ rng.standard_normal((k, p2), dtype=np.float32) / np.sqrt(k)
    y += 0.5 * rng.standard_normal((n, p2), dtype=np.float32)
    return x, y


def bench_shape(n, p1, p2, rate):
    x, y = data(n, p1, p2)
    print(f"\n## shape n={n}, p1={p1}, p2={p2}")
    header = (
        f"{'metric':>13} {'s':>8} {'MiB':>7} {'base s':>8} {'base MiB':>9} {'speedup':>8} "
        f"{'% matmul':>9} {'x floor':>8} {'|diff|':>8}"
    )
    print(header)
    for metric in METRICS:
        seconds, peak, value = measure(similarity, x, y, metric)
        gram_bytes = 8 * n * n * 4
        if metric in GRAM_BASELINES and gram_bytes > BASELINE_MAX_BYTES:
            base = f"{'skipped: n x n needs ' + str(gram_bytes // 2**30) + ' GiB':>36}"
        elif metric not in GRAM_BASELINES and 8 * n * (p1 + p2) * 3 > BASELINE_MAX_BYTES:
            base = f"{'skipped: too large':>36}"
        else:
            b_s, b_peak, b_val = measure(
                BASELINES[metric], x.astype(np.float64), y.astype(np.float64)
            )
            diff = abs(b_val - value) if np.isfinite(value) else float("nan")
            base = f"{b_s:8.2f} {b_peak:9.0f} {b_s / seconds:8.1f}x"
        if np.isfinite(value):
            achieved = f"{product_flops(metric, n, p1, p2) / seconds / 1e9 / rate * 100:8.0f}%"
            floor = f"{seconds / floor_seconds(metric, n, p1, p2, rate):8.2f}"
        else:
            achieved, floor = f"{'-':>9}", f"{'-':>8}"
        line = f"{metric:>13} {seconds:8.2f} {peak:7.0f} {base} {achieved} {floor}"
        if "skipped" not in base:
            line += f" {diff:8.1e}"
        if not np.isfinite(value):
            line += "  (NaN by design: see nan_reason)"
        print(line, flush=True)
    seconds, peak, values = measure(all_metrics, x, y)
    print(f"{'all seven':>13} {seconds:8.2f} {peak:7.0f}   (shared factors)", flush=True)


def bench_layer_matrix(n=5000, p=500, layers=12):
    """A 12 × 12 layer-pair matrix with shared factors vs its 12 per-layer factorisations and
    144 cross-products alone."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, p), dtype=np.float32) for _ in range(layers)]
    groups = {
        "CKA family + NBS": ("cka_linear", "cka_debiased", "nbs"),
        "CCA family": ("cca_mean", "svcca", "pwcca"),
    }

    def parts():
        factors = [layer_factors(x) for x in xs]
        for f in factors:
            f.basis(standardized=True), f.basis(standardized=False), f.self_hsic
        for a in factors:
            for b in factors:
                a.stats.data.T @ b.stats.data
        return factors

    t_parts = measure(parts)[0]
    print(f"\n## {layers} x {layers} layer-pair matrix, n={n}, p={p}")
    print(f"12 factorisations + 144 cross-products alone: {t_parts:.2f} s")
    for name, metrics in groups.items():

        def matrix(metrics=metrics):
            factors = [layer_factors(x) for x in xs]
            return [
                evaluate(PairFactors(a, b, keep_directions=True), m).value
                for a in factors
                for b in factors
                for m in metrics
            ]

        t_matrix = measure(matrix)[0]
        print(f"{name:>18} {metrics}: {t_matrix:.2f} s, {t_matrix / t_parts:.2f} x the parts")


def main(shapes):
    rate = matmul_rate()
    print(
        f"float64 matmul rate: {rate:.0f} GFLOP/s; float32: {matmul_rate(np.float32):.0f} GFLOP/s"
    )
    for shape in shapes:
        bench_shape(*shape, rate)
    bench_layer_matrix()


if __name__ == "__main__":
    args = sys.argv[1:]
    main([tuple(int(v) for v in a.split(",")) for a in args] if args else REFERENCE_SHAPES)
