"""Speed and memory of prunesim's metrics, with ratios against baselines run in the same process.

For each shape (n, p1, p2) it prints, per metric: seconds and peak memory (tracemalloc, which
sees numpy's allocations) of prunesim computing that metric alone from the raw matrices; the
same for a straightforward n × n Gram-matrix implementation (kernel metrics) or a thin-SVD
implementation (CCA family) and the speed-up; the achieved rate of the metric's unavoidable
matrix products against this machine's measured float64 matmul rate; and the agreement of the
two values. Then all metrics on one pair with shared factors, and a 12 × 12 layer-pair
matrix against the cost of its 12 factorisations and 144 cross-products.

"x floor" is the time over the unavoidable work measured on this machine in the same run: the
products of the data, timed at that shape; the smaller products at the measured matmul rate;
the factorisations the metric needs, timed at their size.

Timings of prunesim (and of the floor's products and factorisations) are the best of
``--repeat`` calls (default 3; one call where a call takes over 20 s; up to 20 calls while they
add up to under 2 s); the baselines are timed once.

Not a test: numbers depend on the machine; compare ratios, which are measured in one run. The
rows are printed as a markdown table for docs/metrics.md.

    python benchmarks/metrics.py                     # the four reference shapes and the matrix
    python benchmarks/metrics.py 5000,500,500        # your own n,p1,p2 (several allowed)
    python benchmarks/metrics.py 10000,4096,4096 --only-all --float32   # all metrics, both modes
    python benchmarks/metrics.py --matrix-only       # the 12 x 12 layer-pair matrix
    python benchmarks/metrics.py 10000,4096,4096 --only-all --device cuda   # GPU against CPU
    python benchmarks/metrics.py --help              # metric subsets, skipping baselines
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from prunesim.metrics import (
    METRICS,
    REGISTRY,
    MetricOptions,
    PairFactors,
    evaluate,
    layer_factors,
    pair_factors,
    similarity,
)
from prunesim.metrics.backend import NUMPY
from prunesim.metrics.reference import REFERENCES
from prunesim.metrics.streaming import wants_samples

REFERENCE_SHAPES = [(5000, 500, 500), (50000, 1024, 1024), (10000, 4096, 4096), (10000, 16384, 512)]
BASELINE_MAX_BYTES = 6 * 2**30  # skip a baseline whose n × n matrices would exceed this
REPEAT = 3  # prunesim's timings and the floor's factorisations: best of this many calls (--repeat)
REPEAT_MAX_SECONDS = 20.0  # ... unless one call takes longer than this
SHORT_CALLS_SECONDS = 2.0  # ... and short calls until they add up to this


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


def best_of(fn, *args):
    """(least seconds, largest peak MiB, result) over ``REPEAT`` calls, or over fewer when one
    call takes more than ``REPEAT_MAX_SECONDS``, or over more (up to 20) while they add up to
    less than ``SHORT_CALLS_SECONDS`` (unless ``REPEAT`` is 1). This VM's timings of one call
    vary by up to a third, and by more for calls of a tenth of a second (page faults, thread
    wake-ups); the least is the machine's speed for the work."""
    seconds, peak, result = measure(fn, *args)
    total, calls = seconds, 1
    while calls < REPEAT or (REPEAT > 1 and total < SHORT_CALLS_SECONDS and calls < 20):
        if seconds > REPEAT_MAX_SECONDS:
            break
        again, again_peak, result = measure(fn, *args)
        seconds, peak = min(seconds, again), max(peak, again_peak)
        total, calls = total + again, calls + 1
    return seconds, peak, result


def matmul_rate(dtype=np.float64, size=4096) -> float:
    """GFLOP/s of one dense size × size product (best of three)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    best = min(measure(np.matmul, a, a)[0] for _ in range(3))
    return 2 * size**3 / best / 1e9


# --- baselines: the textbook forms (prunesim.metrics.reference, which the tests check) ------

BASELINES = REFERENCES
GRAM_BASELINES = {"cka_linear", "cka_rbf", "cka_debiased", "nbs", "knn_jaccard", "rsa_spearman"}


def data_products(metric: str, n: int, p1: int, p2: int) -> list[str]:
    """The products of the data a metric cannot avoid: each layer's covariance XᵀX (p <= n) or
    Gram matrix XXᵀ (p > n), and the cross-product XᵀY; for the metrics of sample pairs (RBF
    CKA, k-NN, RSA) the two n × n Gram matrices; the CKA family needs no XᵀY when a layer has
    p > n; a metric that needs no covariances (NBS, Procrustes: ``Metric.covariances``) only
    XᵀY unless both layers have p > n (then their Gram matrices)."""
    if REGISTRY[metric].needs_pairwise:
        return ["gram_x", "gram_y"]
    if not REGISTRY[metric].covariances:
        return ["cross"] if min(p1, p2) <= n else ["gram_x", "gram_y"]
    selfs = ["gram_x" if p1 > n else "cov_x", "gram_y" if p2 > n else "cov_y"]
    return selfs if max(p1, p2) > n and metric.startswith("cka") else [*selfs, "cross"]


DATA_PRODUCT_FLOPS = {  # symmetric products count once (syrk)
    "cov_x": lambda n, p1, p2: n * p1 * p1,
    "cov_y": lambda n, p1, p2: n * p2 * p2,
    "gram_x": lambda n, p1, p2: n * n * p1,
    "gram_y": lambda n, p1, p2: n * n * p2,
    "cross": lambda n, p1, p2: 2 * n * p1 * p2,
}


def small_product_flops(metric: str, n: int, p1: int, p2: int) -> float:
    """Products after the data's: for the CCA family whitening XᵀY on both sides
    (2·k1·k2·(k1 + k2), k = min(n, p)) and the Gram matrix of the result (min(k)²·max(k)),
    for NBS and Procrustes the Gram matrix of XᵀY."""
    k1, k2 = min(n, p1), min(n, p2)
    if metric in ("cca_mean", "svcca", "pwcca"):
        return 2 * k1 * k2 * (k1 + k2) + min(k1, k2) ** 2 * max(k1, k2)
    if metric in ("nbs", "procrustes"):
        return min(p1, p2) ** 2 * max(p1, p2)
    return 0


def product_flops(metric: str, n: int, p1: int, p2: int) -> float:
    """All the unavoidable matrix-product work of a metric."""
    data = sum(DATA_PRODUCT_FLOPS[kind](n, p1, p2) for kind in data_products(metric, n, p1, p2))
    return data + small_product_flops(metric, n, p1, p2)


_DATA_PRODUCT_SECONDS: dict = {}


def _rows_product(a, b):
    return a @ b.T  # n × n (symmetric when b is a: numpy then calls syrk)


def _columns_product(a, b):
    return a.T @ b  # p1 × p2


def data_product_seconds(metric: str, x: np.ndarray, y: np.ndarray) -> float:
    """Measured seconds of the metric's data products (``data_products``) in float64 at this
    shape: at p ~ 500 OpenBLAS reaches about 80% of its large square-matrix rate, so this is
    the machine's real floor for them."""
    n, p1, p2 = len(x), x.shape[1], y.shape[1]
    return sum(data_product_seconds_of(kind, x, y) for kind in data_products(metric, n, p1, p2))


def data_product_seconds_of(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    """Measured seconds of one data product (a key of ``DATA_PRODUCT_FLOPS``), once per shape."""
    key = (kind, len(x), x.shape[1], y.shape[1])
    if key not in _DATA_PRODUCT_SECONDS:
        a = (x if kind.endswith("x") or kind == "cross" else y).astype(np.float64)
        b = y.astype(np.float64) if kind == "cross" else a
        product = _rows_product if kind.startswith("gram") else _columns_product
        _DATA_PRODUCT_SECONDS[key] = best_of(product, a, b)[0]
        del a, b
    return _DATA_PRODUCT_SECONDS[key]


_FACTORISATION_SECONDS: dict = {}


FACTORISATIONS = {  # prunesim's CPU backend's own solvers, as the metrics call them
    "eigh": NUMPY.eigh,
    "eigvalsh": NUMPY.eigvalsh,
    "cholesky": NUMPY.cholesky_inverse,
}


def _factorisation(kind: str, size: int) -> float:
    """Measured seconds of one factorisation of a symmetric positive definite size × size
    matrix: eigendecomposition, eigenvalues only, or Cholesky factor and its inverse."""
    if (kind, size) not in _FACTORISATION_SECONDS:
        rng = np.random.default_rng(2)
        m = rng.standard_normal((size, size))
        m = m @ m.T + size * np.eye(size)
        _FACTORISATION_SECONDS[kind, size] = best_of(FACTORISATIONS[kind], m)[0]
    return _FACTORISATION_SECONDS[kind, size]


def floor_seconds(metric: str, x: np.ndarray, y: np.ndarray, rate: float) -> float:
    """The unavoidable work at this machine's speed: the data's products as measured at this
    shape, the smaller products at the measured matmul rate, and the factorisations the
    metric needs: per layer a Cholesky factor and its inverse (CCA, PWCCA: a full-rank
    correlation matrix) or an eigendecomposition (SVCCA's principal directions); per pair the
    eigenvalues (with vectors for PWCCA) of the Gram matrix of the whitened cross-product, or
    of XᵀY for NBS. Layers with p > n: the same on n × n matrices."""
    n, p1, p2 = len(x), x.shape[1], y.shape[1]
    seconds = data_product_seconds(metric, x, y)
    seconds += small_product_flops(metric, n, p1, p2) / (rate * 1e9)
    k1, k2 = min(n, p1), min(n, p2)
    if metric in ("cca_mean", "pwcca"):
        seconds += _factorisation("cholesky", k1) + _factorisation("cholesky", k2)
    elif metric == "svcca":
        seconds += _factorisation("eigh", k1) + _factorisation("eigh", k2)
    if metric in ("cca_mean", "svcca", "pwcca"):
        seconds += _factorisation("eigh" if metric == "pwcca" else "eigvalsh", min(k1, k2))
    elif metric in ("nbs", "procrustes"):
        seconds += _factorisation("eigvalsh", min(p1, p2))
    return seconds


def all_metrics_floor_seconds(x: np.ndarray, y: np.ndarray, rate: float, metrics) -> float:
    """The work ``metrics`` cannot avoid when they share factors, as ``floor_seconds`` counts
    it for one: each data product that any of them needs, once; with cca_mean or PWCCA, the
    whitening of XᵀY once (PWCCA's canonical correlations are cca_mean's) and the Gram matrix of XᵀY for
    NBS; per layer a Cholesky factor and its inverse (CCA, PWCCA) and an eigendecomposition
    (SVCCA's principal directions); per pair an eigendecomposition with vectors (PWCCA's
    directions) or without (cca_mean alone; NBS). Not counted, so that this stays a lower
    bound: SVCCA's own CCA on the kept directions (its size is known only once they are) and
    the n × n passes of the sample-pair measures beyond their Gram matrices."""
    n, p1, p2 = len(x), x.shape[1], y.shape[1]
    kinds = {kind for metric in metrics for kind in data_products(metric, n, p1, p2)}
    seconds = sum(data_product_seconds_of(kind, x, y) for kind in sorted(kinds))
    cca = [m for m in ("cca_mean", "pwcca") if m in metrics]
    shape_metrics = [m for m in ("nbs", "procrustes") if m in metrics]
    flops = small_product_flops("pwcca", n, p1, p2) if cca else 0
    flops += small_product_flops("nbs", n, p1, p2) if shape_metrics else 0
    seconds += flops / (rate * 1e9)
    k1, k2 = min(n, p1), min(n, p2)
    if cca:
        seconds += _factorisation("cholesky", k1) + _factorisation("cholesky", k2)
        seconds += _factorisation("eigh" if "pwcca" in cca else "eigvalsh", min(k1, k2))
    if "svcca" in metrics:
        seconds += _factorisation("eigh", k1) + _factorisation("eigh", k2)
    if shape_metrics:
        seconds += _factorisation("eigvalsh", min(p1, p2))
    return seconds


def all_metrics(x, y, float32_products: bool = False, device: str = "cpu", metrics=METRICS) -> dict:
    """``metrics`` on one pair, sharing factors (data kept for the sample-pair metrics where n
    allows, as compare does)."""
    pair = pair_factors(
        x,
        y,
        keep_data=wants_samples(True, len(x), MetricOptions().pairwise_max_samples),
        keep_directions=True,
        float32_products=float32_products,
        device=device,
        covariances=any(REGISTRY[m].covariances for m in metrics),
    )
    return {m: evaluate(pair, m).value for m in metrics}


def data(n, p1, p2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p1), dtype=np.float32)
    k = min(p1, p2, 256)
    y = x[:, :k] @ rng.standard_normal((k, p2), dtype=np.float32) / np.sqrt(k)
    y += 0.5 * rng.standard_normal((n, p2), dtype=np.float32)
    return x, y


def _row(shape: str, label: str, cells: list[str]) -> str:
    return "| " + " | ".join([shape, label, *cells]) + " |"


def bench_device(x, y, device: str, cpu_seconds: float, cpu_values: dict) -> list[str]:
    """Cells of all metrics on ``device`` against the CPU run: time, peak device MiB, speed-up,
    largest |difference|."""
    import torch

    cuda = device.startswith("cuda")
    metrics = list(cpu_values)
    all_metrics(x[:64], y[:64], device=device, metrics=metrics)  # start-up: CUDA context, …
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds, _, values = best_of(all_metrics, x, y, False, device, metrics)
    peak = f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f} (GPU)" if cuda else ""
    diff = max(
        (abs(values[m] - cpu_values[m]) for m in metrics if np.isfinite(cpu_values[m])),
        default=0.0,
    )
    return [
        f"{seconds:.2f} s",
        peak,
        "",
        f"{cpu_seconds / seconds:.1f}× cpu",
        "",
        "",
        f"{diff:.0e}",
    ]


def bench_shape(
    n, p1, p2, rate, metrics, baselines=True, individual=True, float32=False, device="cpu"
):
    """Markdown rows: time, peak MiB, baseline time, speed-up, % matmul, x floor, |diff|."""
    x, y = data(n, p1, p2)
    shape = f"{n:,}, {p1:,}, {p2:,}"
    for metric in metrics if individual else ():
        seconds, peak, value = best_of(similarity, x, y, metric)
        gram_bytes = 8 * n * n * 4
        base, speedup, diff = "", "", ""
        if not baselines or not np.isfinite(value):
            pass  # a NaN by design has no baseline value to compare
        elif metric in GRAM_BASELINES and gram_bytes > BASELINE_MAX_BYTES:
            base = f"(n × n: {gram_bytes / 2**30:.0f} GiB)"
        elif metric not in GRAM_BASELINES and 8 * n * (p1 + p2) * 3 > BASELINE_MAX_BYTES:
            base = "(too large)"
        else:
            b_s, _, b_val = measure(BASELINES[metric], x.astype(np.float64), y.astype(np.float64))
            base, speedup = f"{b_s:.2f} s", f"{b_s / seconds:.1f}×"
            diff = f"{abs(b_val - value):.0e}" if np.isfinite(value) else ""
        if np.isfinite(value):
            achieved = f"{product_flops(metric, n, p1, p2) / seconds / 1e9 / rate * 100:.0f}%"
            floor = f"{seconds / floor_seconds(metric, x, y, rate):.2f}"
            cells = [f"{seconds:.2f} s", f"{peak:,.0f}", base, speedup, achieved, floor, diff]
        else:
            cells = [f"NaN by design, decided in {seconds:.2f} s", f"{peak:,.0f}"] + [""] * 5
        print(_row(shape, metric, cells), flush=True)
        shape = ""
    seconds, peak, values = best_of(all_metrics, x, y, False, "cpu", metrics)
    floor = f"{seconds / all_metrics_floor_seconds(x, y, rate, metrics):.2f}"
    cells = [f"{seconds:.2f} s", f"{peak:,.0f}", "", "", "", floor, ""]
    print(_row(shape, "all metrics, shared factors", cells), flush=True)
    if device != "cpu":
        cells = bench_device(x, y, device, seconds, values)
        print(_row("", f"all metrics, {device}", cells), flush=True)
    if float32:
        seconds32, peak32, values32 = best_of(all_metrics, x, y, True, "cpu", metrics)
        diffs = {m: abs(values32[m] - values[m]) for m in metrics if np.isfinite(values[m])}
        kernel = max(diffs.get(m, 0.0) for m in ("cka_linear", "cka_rbf", "cka_debiased", "nbs"))
        cca = max([diffs[m] for m in ("cca_mean", "svcca", "pwcca") if m in diffs] or [0.0])
        cells = [
            f"{seconds32:.2f} s",
            f"{peak32:,.0f}",
            "",
            f"{seconds / seconds32:.2f}× float64",
            "",
            "",
            f"CKA, NBS {kernel:.0e}; CCA {cca:.0e}",
        ]
        print(_row("", "all metrics, float32 products", cells), flush=True)


# Work each pair of a layer-pair matrix cannot share, per metric: products of p × p matrices
# (whitening XᵀY on both sides; the Gram matrix of a matrix whose singular values are needed,
# a symmetric product, counted as half) and symmetric eigenproblems (values only, or with
# vectors for PWCCA's canonical directions). cca_mean and pwcca share theirs.
PAIR_WORK = {
    "cca_mean": {"products": 2.5, "eigvalsh": 1},
    "svcca": {"products": 2.5, "eigvalsh": 1},
    "pwcca": {"products": 2.5, "eigh": 1},
    "nbs": {"products": 0.5, "eigvalsh": 1},
}


def pair_floor_seconds(metrics, p: int) -> float:
    """Seconds of the per-pair work ``metrics`` need at width p (see ``PAIR_WORK``)."""
    work = {key: 0.0 for key in ("products", "eigvalsh", "eigh")}
    for metric in metrics:
        if metric == "cca_mean" and "pwcca" in metrics:
            continue  # one eigendecomposition with vectors serves both
        for key, count in PAIR_WORK.get(metric, {}).items():
            work[key] += count
    rng = np.random.default_rng(3)
    a = rng.standard_normal((p, p))
    product_seconds = best_of(np.matmul, a, a)[0]
    return (
        work["products"] * product_seconds
        + work["eigvalsh"] * _factorisation("eigvalsh", p)
        + work["eigh"] * _factorisation("eigh", p)
    )


def bench_layer_matrix(n=5000, p=500, layers=12):
    """A 12 × 12 layer-pair matrix with shared factors vs its 12 per-layer factorisations and
    144 cross-products alone, and vs those plus the per-pair solves the metrics need."""
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, p), dtype=np.float32) for _ in range(layers)]
    groups = {
        "linear CKA, debiased CKA, NBS": ("cka_linear", "cka_debiased", "nbs"),
        "cca_mean, svcca, pwcca": ("cca_mean", "svcca", "pwcca"),
        "all but RBF CKA": tuple(m for m in METRICS if m != "cka_rbf"),
    }

    def parts():
        factors = [layer_factors(x) for x in xs]
        for f in factors:
            f.basis(standardized=True), f.basis(standardized=False), f.self_hsic
        for a in factors:
            for b in factors:
                a.stats.data.T @ b.stats.data
        return factors

    t_parts = best_of(parts)[0]
    print(f"\n{layers} × {layers} layer-pair matrix, n = {n:,}, p = {p}, in memory:\n")
    print("| metrics | time | × the parts | × parts + per-pair solves |\n|---|---|---|---|")
    print(f"| 12 factorisations + 144 cross-products alone | {t_parts:.2f} s | 1.00 | |")
    for name, metrics in groups.items():

        def matrix(metrics=metrics):
            # as compare does: one PairFactors per pair, shared by the metrics
            factors = [layer_factors(x) for x in xs]
            pairs = [
                PairFactors(a, b, keep_directions="pwcca" in metrics)
                for a in factors
                for b in factors
            ]
            return [evaluate(pair, m).value for pair in pairs for m in metrics]

        t_matrix = best_of(matrix)[0]
        floor = t_parts + layers**2 * pair_floor_seconds(metrics, p)
        print(
            f"| {name} | {t_matrix:.2f} s | {t_matrix / t_parts:.2f} | {t_matrix / floor:.2f} |",
            flush=True,
        )


def main() -> None:
    global REPEAT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", help="n,p1,p2 (default: the reference shapes)")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset")
    parser.add_argument("--no-baselines", action="store_true", help="skip the naive forms")
    parser.add_argument("--only-all", action="store_true", help="only all metrics together")
    parser.add_argument("--float32", action="store_true", help="also all metrics, float32 products")
    parser.add_argument("--no-matrix", action="store_true", help="skip the layer-pair matrix")
    parser.add_argument("--matrix-only", action="store_true", help="only the layer-pair matrix")
    parser.add_argument(
        "--device",
        default="cpu",
        help="also all metrics on this metrics device (cuda, cuda:N, torch:cpu), against the CPU",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=REPEAT,
        help=f"prunesim's timings: best of this many calls (default {REPEAT}; baselines: one call)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    REPEAT = args.repeat
    shapes = [tuple(int(v) for v in a.split(",")) for a in args.shapes] or REFERENCE_SHAPES
    rate = matmul_rate()
    print(
        f"float64 matmul rate: {rate:.0f} GFLOP/s; float32: {matmul_rate(np.float32):.0f} GFLOP/s; "
        f"load average before: {open('/proc/loadavg').read().split()[0]}\n"
    )
    if not args.matrix_only:
        print(
            "| n, p₁, p₂ | metric | time | peak MiB | baseline | speed-up | % matmul | × floor |"
            " \\|diff\\| |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for shape in shapes:
            bench_shape(
                *shape,
                rate,
                metrics=args.metrics.split(","),
                baselines=not args.no_baselines,
                individual=not args.only_all,
                float32=args.float32,
                device=args.device,
            )
    if not args.no_matrix:
        bench_layer_matrix()
    print(f"\nload average after: {open('/proc/loadavg').read().split()[0]}")


if __name__ == "__main__":
    main()
