"""Layer-similarity metrics: a registry of metric definitions and the public API.

``METRICS`` names the metrics; ``similarity(X, Y, metric, **options)`` compares two in-memory
``n × p`` representations (numpy or torch, any float dtype); ``evaluate(pair, metric, options)``
is the form that :mod:`prunesim.comparison` uses on streamed statistics, sharing per-layer factors
across all pairs and metrics.

Every metric is computed in float64 on column-centred data without the neurons that do not
vary (constant, or zero on every sample), which are counted. An undefined value (a constant layer, a degenerate CCA) is NaN with a reason, never an
error. Definitions, references and where other implementations differ: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from prunesim.metrics import rbf_blocks
from prunesim.metrics.backend import NUMPY, get_backend
from prunesim.metrics.calibration import (
    Calibration,
    bootstrap_draws,
    permutation_draws,
    summarize,
)
from prunesim.metrics.factors import (
    RANK_TOL,
    LayerFactors,
    PairFactors,
    unbiased_hsic,
)
from prunesim.metrics.raw_products import raw_pair
from prunesim.metrics.stats import SAFE_PEAK, as_matrix
from prunesim.metrics.streaming import Policy, array_side, stream, wants_samples
from prunesim.metrics.views import VIEWS, apply_view, rows_per_sample


@dataclass(frozen=True)
class MetricOptions:
    """Options of the metrics; recorded in every output's attributes."""

    cca_threshold: float | None = None  # cca_mean and svcca: average only the leading
    # correlations whose cumulative sum reaches this fraction of the total (0.98 reproduces
    # google/svcca's "mean")
    svcca_variance: float = 0.99  # svcca: keep the leading directions explaining this variance
    rbf_sigma: float = 1.0  # cka_rbf: σ² = rbf_sigma² × median squared distance between samples
    # metrics of sample pairs (cka_rbf, knn_jaccard, rsa_spearman): NaN above this many rows
    # (their n × n matrices take 8 n² bytes each), but for a single similarity() call of
    # cka_rbf, which is then computed exactly in tiles of sample pairs
    pairwise_max_samples: int = 10_000
    knn_k: int = 10  # knn_jaccard: neighbours per sample

    def __post_init__(self) -> None:
        if self.cca_threshold is not None and not 0.0 < self.cca_threshold <= 1.0:
            raise ValueError(f"cca_threshold must be in (0, 1] or None, got {self.cca_threshold}")
        if not 0.0 < self.svcca_variance <= 1.0:
            raise ValueError(f"svcca_variance must be in (0, 1], got {self.svcca_variance}")
        if not self.rbf_sigma > 0.0:
            raise ValueError(f"rbf_sigma must be positive, got {self.rbf_sigma}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be >= 1, got {self.knn_k}")
        if self.pairwise_max_samples < 4:
            raise ValueError(f"pairwise_max_samples must be >= 4, got {self.pairwise_max_samples}")


@dataclass(frozen=True)
class MetricResult:
    value: float
    reason: str = ""  # why the value is NaN; empty when defined


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[PairFactors, MetricOptions], MetricResult]
    symmetric: bool
    needs_pairwise: bool  # needs each layer's n × n Gram matrix whatever p is (RBF)
    definition: str
    reference: str
    perfect: float = 1.0  # the value for identical representations (0 for a distance)
    # a note on a defined value that needs care in reading (e.g. CCA at ranks near n)
    caution: Callable[[PairFactors, MetricOptions], str] | None = None
    # why a bootstrap over probe images says nothing about this metric (empty: it does)
    no_bootstrap: str = ""
    # needs each layer's p × p covariance XᵀX where p <= n (NBS and Procrustes use only XᵀY
    # and the traces: a single call then skips two of its three products)
    covariances: bool = True
    # needs each sample's squared norm (debiased CKA); the others need at most their sum
    row_norms: bool = False
    # a well-conditioned function of XᵀX, YᵀY and XᵀY (norms, no whitening, no arccos near 0),
    # so a single call may form them from the raw data (prunesim.metrics.raw_products)
    raw_products: bool = False


def _nan(reason: str) -> MetricResult:
    return MetricResult(math.nan, reason)


def _undefined(pair: PairFactors) -> MetricResult | None:
    for side, layer in (("first", pair.a), ("second", pair.b)):
        if layer.nonfinite:
            return _nan(
                f"{side} representation has non-finite values (NaN or infinity) in "
                f"{layer.nonfinite} neuron{'s' if layer.nonfinite != 1 else ''}"
            )
    for side, layer in (("first", pair.a), ("second", pair.b)):
        if layer.n < 2:
            return _nan(f"{side} representation has {layer.n} sample: nothing can vary")
        if layer.p == 0:
            return _nan(
                f"{side} representation does not vary: its {layer.stats.constant} constant and "
                f"{layer.stats.inactive} inactive (zero on every sample) neurons were dropped"
            )
    return None


def _degenerate(pair: PairFactors, ra: int, rb: int) -> MetricResult | None:
    if ra + rb >= pair.n:
        return _nan(
            f"CCA degenerate: rank {ra} + rank {rb} >= n = {pair.n} forces canonical "
            "correlations of 1; use a view with fewer features (gap, channels) or more samples"
        )
    return None


def cka_linear(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    return _undefined(pair) or MetricResult(pair.cross_hsic / (pair.a.self_hsic * pair.b.self_hsic))


def cka_debiased(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair):
        return undefined
    if pair.n < 4:
        return _nan(f"debiased HSIC needs n >= 4 samples, got {pair.n}")
    hsic = unbiased_hsic(pair.cross_hsic, pair.row_sq_product, pair.a.trace, pair.b.trace, pair.n)
    self_a, self_b = pair.a.self_hsic_unbiased, pair.b.self_hsic_unbiased
    if not (self_a > 0.0 and self_b > 0.0):
        return _nan("unbiased self-HSIC is not positive (too few samples for the features)")
    # the roots apart: their product would overflow (or underflow) for data beyond ~1e±38,
    # inside the range that the scale check leaves as it is
    return MetricResult(hsic / (math.sqrt(self_a) * math.sqrt(self_b)))


def cka_rbf(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair):
        return undefined
    if too_many := _too_many_for_pairs(pair, opts, "RBF CKA"):
        return too_many
    kernel_a, reason_a = pair.a.rbf_kernel(opts.rbf_sigma)
    kernel_b, reason_b = pair.b.rbf_kernel(opts.rbf_sigma)
    if kernel_a is None or kernel_b is None:
        return _nan(f"RBF kernel undefined: {reason_a or reason_b}")
    return MetricResult(pair.backend.alignment(kernel_a, kernel_b))


def _too_many_for_pairs(pair: PairFactors, opts: MetricOptions, name: str) -> MetricResult | None:
    if pair.n > opts.pairwise_max_samples:
        return _nan(
            f"{name} needs n × n matrices of sample pairs: n = {pair.n} rows exceeds "
            f"pairwise_max_samples = {opts.pairwise_max_samples}"
        )
    return None


def nbs(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair):
        return undefined
    return MetricResult(pair.nuclear_norm / math.sqrt(pair.a.trace * pair.b.trace))


def procrustes(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    # The angle whose cosine is NBS: after the best rotation, the normalised data's inner
    # product is ‖XᵀY‖_* / (‖X‖_F ‖Y‖_F).
    if undefined := _undefined(pair):
        return undefined
    cosine = pair.nuclear_norm / math.sqrt(pair.a.trace * pair.b.trace)
    return MetricResult(math.acos(min(max(cosine, 0.0), 1.0)))


def knn_jaccard(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair) or _too_many_for_pairs(pair, opts, "k-NN Jaccard"):
        return undefined
    k = opts.knn_k
    if k >= pair.n:
        return _nan(f"k-NN Jaccard needs more than knn_k = {k} samples, got {pair.n}")
    near_a, near_b = pair.a.neighbours(k), pair.b.neighbours(k)
    member = np.zeros((pair.n, pair.n), dtype=bool)
    np.put_along_axis(member, near_a, True, axis=1)
    shared = np.take_along_axis(member, near_b, axis=1).sum(axis=1)
    return MetricResult(float(np.mean(shared / (2 * k - shared))))


def rsa_spearman(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair) or _too_many_for_pairs(pair, opts, "RSA"):
        return undefined
    if pair.n < 3:
        return _nan(f"RSA needs at least 3 samples (2 distances), got {pair.n}")
    for side, layer in (("first", pair.a), ("second", pair.b)):
        if layer.distance_rank_profile is None:
            return _nan(f"RSA undefined: all distances between samples of the {side} are equal")
    return MetricResult(float(pair.a.distance_rank_profile @ pair.b.distance_rank_profile))


# A bootstrap resample repeats images, and an image and its copy are at distance 0 in both
# representations: they are each other's nearest neighbours and share the smallest distance
# rank, which pushes these measures up by construction rather than by sampling variability.
COPIES_ARE_NEIGHBOURS = (
    "a bootstrap resample repeats images, whose copies are each other's nearest neighbours at "
    "distance 0 in both representations: the resampled values are inflated by construction"
)


def _mean_leading(rho: np.ndarray, threshold: float | None) -> float:
    if threshold is None or not rho.sum() > 0:
        return float(rho.mean())
    cumulative = np.cumsum(rho) / rho.sum()
    count = int(np.searchsorted(cumulative, threshold - 1e-12) + 1)
    return float(rho[:count].mean())


# CCA of unrelated data is far from 0 when the ranks are a sizeable share of n (the expected
# squared canonical correlations grow like rank / n): from this share on, a value carries a note.
CCA_RANK_CAUTION = 0.5


def _cca_caution(ra: int, rb: int, n: int) -> str:
    share = (ra + rb) / n
    if share < CCA_RANK_CAUTION:
        return ""
    return (
        f"CCA ranks {ra} + {rb} are {share:.0%} of n = {n}: unrelated data would give large "
        "canonical correlations here; read the value against its chance level (null_mean)"
    )


def _full_cca_caution(pair: PairFactors, opts: MetricOptions) -> str:
    return _cca_caution(pair.a.rank, pair.b.rank, pair.n)


def _svcca_caution(pair: PairFactors, opts: MetricOptions) -> str:
    ka = pair.a.variance_rank(opts.svcca_variance)
    kb = pair.b.variance_rank(opts.svcca_variance)
    return _cca_caution(ka, kb, pair.n)


def caution(pair: PairFactors, metric: str, options: MetricOptions | None = None) -> str:
    """A note on a defined value of ``metric`` that needs care in reading; empty if none."""
    spec = get_metric(metric)
    return spec.caution(pair, options or MetricOptions()) if spec.caution else ""


def cca_mean(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair) or _degenerate(pair, pair.a.rank, pair.b.rank):
        return undefined
    rho, _ = pair.canonical()
    return MetricResult(_mean_leading(rho, opts.cca_threshold))


def svcca(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair):
        return undefined
    # Degenerate for certain already by lower bounds on the kept directions: then no
    # eigendecomposition at all (for a p > n layer it is n × n, cubic in n).
    bound_a = pair.a.variance_rank_bound(opts.svcca_variance)
    bound_b = pair.b.variance_rank_bound(opts.svcca_variance)
    if bound_a + bound_b >= pair.n:
        return _nan(
            f"CCA degenerate: at least {bound_a} + {bound_b} directions explain "
            f"svcca_variance = {opts.svcca_variance} of each layer's variance, >= n = {pair.n}, "
            "which forces canonical correlations of 1; use a view with fewer features (gap, "
            "channels), more samples or a lower svcca_variance"
        )
    ka = pair.a.variance_rank(opts.svcca_variance)
    kb = pair.b.variance_rank(opts.svcca_variance)
    if degenerate := _degenerate(pair, ka, kb):
        return degenerate
    rho, _ = pair.canonical(standardized=False, ka=ka, kb=kb)
    return MetricResult(_mean_leading(rho, opts.cca_threshold))


def pwcca(pair: PairFactors, opts: MetricOptions) -> MetricResult:
    if undefined := _undefined(pair) or _degenerate(pair, pair.a.rank, pair.b.rank):
        return undefined
    rho, directions = pair.canonical(directions=True)
    k = len(rho)
    # ⟨h_i, x_j⟩ for canonical variates h_i = Q_a u_i and neurons x_j of the first layer:
    # u_iᵀ (Q_aᵀ X), with Q_aᵀ X the neuron loadings of the basis.
    loadings = pair.a.basis(standardized=True).neuron_loadings()
    projections = pair.backend.matmul(directions[:, :k].T, loadings)
    weights = np.abs(projections).sum(axis=1)
    return MetricResult(float(weights @ rho / weights.sum()))


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "cca_mean",
            cca_mean,
            symmetric=True,
            needs_pairwise=False,
            definition="mean of all min(rank X, rank Y) canonical correlations (with "
            "cca_threshold: of the leading ones up to that fraction of their sum); NaN when "
            "rank X + rank Y >= n",
            reference="Hotelling 1936; Raghu et al. 2017",
            caution=_full_cca_caution,
        ),
        Metric(
            "svcca",
            svcca,
            symmetric=True,
            needs_pairwise=False,
            definition="mean canonical correlation after keeping each side's leading principal "
            "directions that explain svcca_variance of its variance (with cca_threshold: of the "
            "leading correlations up to that fraction of their sum)",
            reference="Raghu et al. 2017, SVCCA",
            caution=_svcca_caution,
        ),
        Metric(
            "pwcca",
            pwcca,
            symmetric=False,
            needs_pairwise=False,
            definition="sum_i a_i rho_i / sum_i a_i with a_i = sum_j |<h_i, x_j>|, h_i the "
            "first representation's canonical variates, x_j its centred neurons",
            reference="Morcos, Raghu & Bengio 2018",
            caution=_full_cca_caution,
        ),
        Metric(
            "cka_linear",
            cka_linear,
            symmetric=True,
            needs_pairwise=False,
            definition="||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)",
            reference="Kornblith et al. 2019",
            raw_products=True,
        ),
        Metric(
            "cka_rbf",
            cka_rbf,
            symmetric=True,
            needs_pairwise=True,
            definition="<HKH, HLH>_F / (||HKH||_F ||HLH||_F), K_ij = exp(-||x_i - x_j||^2 / "
            "(2 sigma^2)), sigma^2 = rbf_sigma^2 x median squared distance between distinct "
            "samples; in a comparison NaN above pairwise_max_samples rows (a single "
            "similarity() call computes it in tiles there)",
            reference="Kornblith et al. 2019",
        ),
        Metric(
            "cka_debiased",
            cka_debiased,
            symmetric=True,
            needs_pairwise=False,
            definition="linear CKA with the unbiased HSIC estimator; can be slightly negative",
            reference="Song et al. 2012; Kornblith et al. 2019; Nguyen et al. 2021",
            row_norms=True,
            raw_products=True,
        ),
        Metric(
            "nbs",
            nbs,
            symmetric=True,
            needs_pairwise=False,
            definition="||X^T Y||_* / sqrt(tr(X^T X) tr(Y^T Y)) = tr((K^1/2 L K^1/2)^1/2) / "
            "sqrt(tr K tr L)",
            reference="Tang et al. 2020 (Normalized Bures Similarity)",
            covariances=False,
            raw_products=True,
        ),
        Metric(
            "procrustes",
            procrustes,
            symmetric=True,
            needs_pairwise=False,
            definition="angular Procrustes shape distance arccos(||X^T Y||_* / (||X||_F "
            "||Y||_F)) = arccos(nbs): the angle between the centred representations after the "
            "best rotation; a distance, 0 for identical ones up to rotation and scale, at most "
            "pi/2",
            reference="Williams, Kunz, Kornblith & Linderman 2021 (generalized shape metrics)",
            perfect=0.0,
            covariances=False,
        ),
        Metric(
            "knn_jaccard",
            knn_jaccard,
            symmetric=True,
            needs_pairwise=True,
            definition="mean over samples of the Jaccard index |N_X(i) & N_Y(i)| / |N_X(i) | "
            "N_Y(i)| of the knn_k nearest other samples (Euclidean; equal distances ordered by "
            "sample index) in each representation; NaN above pairwise_max_samples rows",
            reference="mutual k-nearest-neighbour overlap (Huh et al. 2024 use |N_X & N_Y| / k); "
            "Jaccard form as surveyed by Klabunde et al. 2023",
            no_bootstrap=COPIES_ARE_NEIGHBOURS,
        ),
        Metric(
            "rsa_spearman",
            rsa_spearman,
            symmetric=True,
            needs_pairwise=True,
            definition="Spearman correlation between the two representations' Euclidean "
            "distances over all pairs of distinct samples (their representational dissimilarity "
            "matrices' upper triangles); NaN above pairwise_max_samples rows",
            reference="Kriegeskorte, Mur & Bandettini 2008 (RSA)",
            no_bootstrap=COPIES_ARE_NEIGHBOURS,
        ),
    )
}

METRICS: tuple[str, ...] = tuple(REGISTRY)


def get_metric(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; expected one of {list(METRICS)}") from None


def evaluate(pair: PairFactors, metric: str, options: MetricOptions | None = None) -> MetricResult:
    return get_metric(metric).compute(pair, options or MetricOptions())


def definitions(metrics, options: MetricOptions) -> dict:
    """Definitions, references and options of ``metrics``, for output attributes."""
    return {
        "metrics": {
            m: {"definition": REGISTRY[m].definition, "reference": REGISTRY[m].reference}
            for m in metrics
        },
        "options": asdict(options),
    }


def layer_factors(
    x,
    rank_tol: float = RANK_TOL,
    float32_products: bool = False,
    device: str = "cpu",
) -> LayerFactors:
    """Factors of one in-memory representation (both streaming passes over its blocks). The
    data is in memory anyway, so it is kept: cross-products are formed from it."""
    policy = Policy(pairwise=True, float32_products=float32_products, backend=get_backend(device))
    stats = stream(array_side(as_matrix(x)), None, [], policy).stats_a["x"]
    return LayerFactors(stats, rank_tol)


def _power_of_two_scaled(x: np.ndarray) -> np.ndarray:
    """``x`` itself, or ``x × 2^-e`` with its largest magnitude brought near 1 when it lies
    outside the range in which the metrics' float64 products neither overflow nor underflow."""
    # from the largest and the smallest element: two reads, no |x| temporary as large as x
    extremes = np.array([x.max(), x.min()], dtype=np.float64) if x.dtype != np.bool_ else [1.0]
    peak = float(np.max(np.abs(extremes)))
    if not math.isfinite(peak):
        # pass 1 reports the neurons with a NaN or an infinity; the others are scaled like any
        # data, so that a huge finite neighbour's sum does not overflow and count as one of them
        # (a copy of the finite values: only for data that holds a non-finite one)
        finite = np.abs(x[np.isfinite(x)])
        peak = float(finite.max()) if finite.size else 0.0
    if peak == 0.0 or SAFE_PEAK[0] <= peak <= SAFE_PEAK[1]:
        return x  # all-zero data is constant
    return np.ldexp(np.asarray(x, dtype=np.float64), -math.frexp(peak)[1])


def pair_factors(
    X,
    Y,
    rank_tol: float = RANK_TOL,
    keep_data: bool = False,
    keep_directions: bool = False,
    float32_products: bool = False,
    device: str = "cpu",
    covariances: bool = True,
    cross: bool = True,
    raw_products: bool = False,
    row_norms: bool = True,
) -> PairFactors:
    """Factors of two in-memory representations, streamed block by block by the driver that
    streams two stores (:mod:`prunesim.metrics.streaming`, which states the memory policy):
    ``keep_data`` keeps the samples for kernel metrics; ``covariances=False`` leaves out each
    layer's XᵀX where p <= n (for metrics that need only XᵀY: :attr:`Metric.covariances`),
    ``cross=False`` XᵀY (for what needs only each layer's statistics). ``float32_products``:
    see :func:`prunesim.metrics.stats.product`; ``device``: where the linear algebra runs, see
    :mod:`prunesim.metrics.backend`.

    ``raw_products`` (for metrics that are well-conditioned functions of the products,
    :attr:`Metric.raw_products`): two float64 arrays on the CPU with at most n neurons each,
    whose neurons' means are not large against their spread, are then not streamed; their
    statistics come from the products of the raw data (:mod:`prunesim.metrics.raw_products`
    says when, and how exact), with each sample's norm only if ``row_norms``."""
    X, Y = as_matrix(X), as_matrix(Y)
    if len(X) != len(Y):
        raise ValueError(f"representations have different sample counts: {len(X)} and {len(Y)}")
    backend = get_backend(device)
    if raw_products and not keep_data and not float32_products and backend is NUMPY:
        raw = raw_pair(X, Y, covariances, cross, row_norms)
        if raw is not None:
            stats_x, stats_y, centred_cross = raw
            return PairFactors(
                LayerFactors(stats_x, rank_tol),
                LayerFactors(stats_y, rank_tol),
                centred_cross,
                keep_directions=keep_directions,
            )
    X, Y = _power_of_two_scaled(X), _power_of_two_scaled(Y)
    policy = Policy(
        pairwise=keep_data,
        float32_products=float32_products,
        backend=backend,
        covariances=covariances,
    )
    streamed = stream(array_side(X), array_side(Y), [("x", "x")] if cross else [], policy)
    return PairFactors(
        LayerFactors(streamed.stats_a["x"], rank_tol),
        LayerFactors(streamed.stats_b["x"], rank_tol),
        streamed.crosses.get(("x", "x")),
        keep_directions=keep_directions,
    )


class Similarity(float):
    """A metric's value: a float, with ``reason`` saying why it is NaN (empty when defined)."""

    reason: str

    def __new__(cls, value: float, reason: str = "") -> Similarity:
        obj = super().__new__(cls, value)
        obj.reason = reason if math.isnan(value) else ""
        return obj

    def __repr__(self) -> str:
        return f"Similarity(nan, reason={self.reason!r})" if self.reason else float.__repr__(self)


def similarity(
    X,
    Y,
    metric: str,
    rank_tol: float = RANK_TOL,
    float32_products: bool = False,
    device: str = "cpu",
    view: str | None = None,
    **options,
) -> Similarity:
    """Similarity of two representations (``n × p1`` and ``n × p2``, rows = the same samples).

    A layer's raw output (a conv layer's ``n × C × H × W``) needs a ``view`` ("flatten",
    "gap", "channels"; :mod:`prunesim.metrics.views`), applied to both. Returns a float; when it is NaN (a constant layer, a degenerate CCA, non-finite input),
    its ``reason`` attribute says why. Arrays that are not activation matrices (empty,
    complex, non-numeric, different row counts) raise ValueError.

    ``options`` are :class:`MetricOptions` fields (e.g. ``svcca_variance=0.99``).
    ``float32_products`` forms the data's products in float32 blocks summed in float64
    (faster; agreement with float64 is tested to 1e-6, see docs/metrics.md). ``device``:
    ``"cpu"`` (numpy), ``"cuda"``/``"cuda:N"`` (torch on that GPU), ``"auto"`` (a GPU when
    torch sees one), or ``"torch:cpu"``; see :mod:`prunesim.metrics.backend`.
    """
    spec, opts = get_metric(metric), MetricOptions(**options)
    X, Y = apply_view(X, view), apply_view(Y, view)
    keep = wants_samples(spec.needs_pairwise, len(X), opts.pairwise_max_samples)
    # above pairwise_max_samples the arrays are here anyway: tiles of sample pairs give RBF
    # CKA exactly without the n × n kernels (prunesim.metrics.rbf_blocks); the streaming
    # passes then only say whether the pair is defined, without forming any product
    tiled = metric == "cka_rbf" and not keep
    pair = pair_factors(
        X,
        Y,
        rank_tol,
        keep,
        float32_products=float32_products,
        device=device,
        covariances=spec.covariances and not tiled,
        cross=not tiled,
        raw_products=spec.raw_products,
        row_norms=spec.row_norms,
    )
    if tiled and _undefined(pair) is None:
        centred = [_power_of_two_scaled(as_matrix(a)).astype(np.float64) for a in (X, Y)]
        value, reason = rbf_blocks.rbf_cka(*(a - a.mean(axis=0) for a in centred), opts.rbf_sigma)
        return Similarity(value, reason)
    result = evaluate(pair, metric, opts)
    return Similarity(result.value, result.reason)


def calibrated(
    X,
    Y,
    metric: str,
    permutations: int = 100,
    bootstrap: int = 100,
    seed: int = 0,
    confidence: float = 0.95,
    rows_per_image: int | None = None,
    rank_tol: float = RANK_TOL,
    device: str = "cpu",
    view: str | None = None,
    **options,
) -> dict[str, float]:
    """``similarity(X, Y, metric)`` with its calibration (:mod:`prunesim.metrics.calibration`):
    a dict of ``value`` and the summaries ``null_mean``, ``null_std``, ``p_value``,
    ``corrected``, ``bootstrap_std``, ``bootstrap_bias``, ``ci_low``, ``ci_high`` (NaN where
    the value is). ``view`` as in :func:`similarity`. ``rows_per_image``: consecutive rows that
    belong to one sample and move together (the channels view's positions of an image);
    by default H × W under the channels view of a conv output, else 1."""
    spec, opts = get_metric(metric), MetricOptions(**options)
    calibration = Calibration(permutations, bootstrap, seed, confidence)
    if rows_per_image is None:
        rows_per_image = rows_per_sample(X, view)
    X, Y = apply_view(X, view), apply_view(Y, view)
    X, Y = _power_of_two_scaled(as_matrix(X)), _power_of_two_scaled(as_matrix(Y))
    if len(X) != len(Y):
        raise ValueError(f"representations have different sample counts: {len(X)} and {len(Y)}")
    if len(X) % rows_per_image:
        raise ValueError(f"{len(X)} rows are not whole images of {rows_per_image} rows")
    pairwise = wants_samples(spec.needs_pairwise, len(X), opts.pairwise_max_samples)
    policy = Policy(pairwise=pairwise, keep_samples=True, backend=get_backend(device))
    streamed = stream(array_side(X), array_side(Y), [], policy)
    layers = [
        (
            LayerFactors(streamed.stats_a["x"], rank_tol),
            LayerFactors(streamed.stats_b["x"], rank_tol),
        )
    ]
    keep = metric == "pwcca"
    value = evaluate(PairFactors(*layers[0], keep_directions=keep), metric, opts).value

    def values(index: int, pair: PairFactors) -> list[float]:
        return [evaluate(pair, metric, opts).value]

    images = len(X) // rows_per_image
    null = boot = None
    if permutations and not math.isnan(value):
        orders = calibration.orders(images)
        null = permutation_draws(layers, values, orders, rows_per_image, keep)[0, 0]
    if bootstrap and not math.isnan(value) and not spec.no_bootstrap:
        draws = calibration.resamples(images)
        boot = bootstrap_draws(layers, values, draws, rows_per_image, policy, keep)[0, 0]
    summary = summarize(np.array(value), null, boot, np.array(spec.perfect), confidence)
    return {"value": value, **{k: float(v) for k, v in asdict(summary).items()}}


__all__ = [
    "METRICS",
    "RANK_TOL",
    "REGISTRY",
    "VIEWS",
    "Similarity",
    "calibrated",
    "caution",
    "LayerFactors",
    "Metric",
    "MetricOptions",
    "MetricResult",
    "PairFactors",
    "definitions",
    "evaluate",
    "get_metric",
    "layer_factors",
    "pair_factors",
    "similarity",
    "apply_view",
]
