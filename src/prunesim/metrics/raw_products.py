"""One in-memory float64 pair without centred copies: the products of the raw data, centred
afterwards, for the metrics that are well-conditioned functions of them (linear and debiased
CKA, NBS: :attr:`prunesim.metrics.Metric.raw_products`) and where that is as good as centring
first.

The streaming passes (:mod:`prunesim.metrics.streaming`) centre every block twice: once to find
the neurons that do not vary, once to accumulate the products of the centred data. For two
float64 arrays already in memory, with at most n neurons each (the covariance route), the
products of the raw data give the same statistics after a pass for the means:

    XcᵀYc = XᵀY − n μ_X μ_Yᵀ,    ‖xc_j‖² = ‖x_j‖² − n μ_j²   (the diagonal of XcᵀXc),
    ‖x_i − μ‖² = ‖x_i‖² − 2 x_i·μ + ‖μ‖²   (each sample's centred norm, for debiased CKA),

so a single call reads each array for its means and sums of squares and then only in the
products, and writes no centred copy. The subtraction cancels leading digits where a neuron's
mean is large against its spread: the rounding of the raw products, about ε √n (σ_j² + μ_j²)
for a neuron of std σ_j and mean μ_j over n samples, is 1 + (μ_j/σ_j)² times that of centred
products, and the mean's own rounding enters at first order (centring first, only at second):
it is summed in blocks of rows, so that its rounding grows with the blocks, not with n. This
route is therefore taken only when every neuron either is zero on every sample (inactive: its
column and mean are exactly 0) or has |μ_j| <= ``MEAN_TO_STD_MAX`` × σ_j = 8 σ_j (a factor of at
most 65) and (1 + (μ_j/σ_j)²) √n <= ``CANCELLATION_SQRT_N_MAX`` (45,036: the model
2 (1 + (μ/σ)²) √n ε below 1e-11, ten times inside the 1e-10 asked of the metrics; it binds from
about 480,000 samples on), and only from ``MIN_SAMPLES`` = 16 samples on: the terms of
debiased CKA's estimator nearly cancel at the smallest n (up to 5.9e-11 at n = 4).
benchmarks/raw_products_accuracy.py measures the route against the two passes at that bound
(|mean| 7.9–7.99 stds on every neuron, two seeds): at most 4.7e-14 for 16 to 2,000 samples of
up to 64 neurons; 1.6e-13, 2.4e-13 and 9.5e-13 for one neuron against two at n = 2,000, 5,000
and 50,000, where nothing averages the rounding out; at most 1e-14 at 1,024 and 4,096 samples
of as many neurons. The two passes agree with exact arithmetic to ~1e-15. Metrics that whiten
(the CCA family) amplify the rounding by the layers' condition numbers (on one data set up to
4e-13 at 8 stds and 3e-12 at 16) and the Procrustes angle's arccos amplifies it near 0: they
always centre first.

A neuron with a constant non-zero value has σ_j = 0 and always fails the test, as does one
whose computed variance is rounding (true σ_j ≈ 0 shows as |μ_j|/σ_j >= 1/√(ε n) ≫ 8), so every
constant-neuron decision stays with the exact two-pass test. So do non-finite values, data
whose largest magnitude may lie outside [2⁻²⁰⁰, 2²⁰⁰] (where the scale check would rescale;
bounded here by the column norms), more neurons than samples, fewer than ``MIN_SAMPLES``
samples, and any dtype but float64 (which needs a converted copy anyway): for those
:func:`raw_pair` returns None, before any product is formed, and the caller streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prunesim.metrics.stats import SAFE_PEAK, LayerStats

# |mean| / std at most this for every varying neuron (see the module docstring)
MEAN_TO_STD_MAX = 8.0
# ... and (1 + (mean/std)²) √n at most this: the rounding model 2 (1 + (μ/σ)²) √n ε of the
# products' relative error then stays below 1e-11 (ε = 2⁻⁵³), ten times inside the 1e-10 the
# metrics are held to; it binds from about 480,000 samples on
CANCELLATION_SQRT_N_MAX = 1e-11 / (2 * 2.0**-53)
# fewer samples than this always centre first: the terms of debiased CKA's estimator nearly
# cancel at the smallest n, which amplifies the products' rounding (benchmarks/
# raw_products_accuracy.py at the bound: 5.9e-11 at n = 4, 4.9e-13 at 5, 6.7e-14 at 8), and a
# call that small gains nothing from the route
MIN_SAMPLES = 16
# rows per block of the column sums: their rounding then grows with the block and the number
# of blocks, not with n
_ROW_BLOCK = 256


@dataclass
class _Side:
    """One side's checked moments: every neuron's mean, its centred sum of squares, the live
    mask (all but the neurons that are zero on every sample)."""

    data: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    live: np.ndarray


def raw_pair(
    x: np.ndarray,
    y: np.ndarray,
    covariances: bool,
    cross: bool,
    row_norms: bool,
    min_samples: int | None = None,
) -> tuple[LayerStats, LayerStats, np.ndarray | None] | None:
    """(statistics of x, of y, XcᵀYc or None) from the raw products, or None when this route
    does not apply (the module docstring says when; the check reads each side twice and forms
    no product). ``covariances``: each side's XcᵀXc; ``cross``: XcᵀYc; ``row_norms``: each
    sample's centred squared norm (debiased CKA), else only each side's ``trace``.
    ``min_samples`` (default ``MIN_SAMPLES``) is lowered only to measure the route where it is
    refused (benchmarks/raw_products_accuracy.py)."""
    n = len(x)
    if n < (MIN_SAMPLES if min_samples is None else min_samples) or len(y) != n:
        return None
    if any(a.dtype != np.float64 or a.shape[1] > n for a in (x, y)):
        return None
    sides = []
    for a in (x, y):
        side = _checked(a)
        if side is None:
            return None
        sides.append(side)
    stats = [_stats(side, covariances, row_norms) for side in sides]
    centred_cross = None
    if cross:
        sx, sy = sides
        centred_cross = x.T @ y
        centred_cross -= n * np.outer(sx.mean, sy.mean)
        if not (sx.live.all() and sy.live.all()):
            centred_cross = centred_cross[np.ix_(sx.live, sy.live)]
    return stats[0], stats[1], centred_cross


def _checked(a: np.ndarray) -> _Side | None:
    """One side's moments, or None when the route does not apply to it."""
    n = len(a)
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite or out of range: refused
        mean = _column_sums(a) / n
        if not np.isfinite(mean).all():
            return None
        sq = np.einsum("ij,ij->j", a, a)
    # the largest magnitude m satisfies m² <= max ‖x_j‖² <= n m² (an overflow makes it inf)
    if not SAFE_PEAK[0] ** 2 * n <= float(sq.max()) <= SAFE_PEAK[1] ** 2:
        return None
    m2 = sq - n * mean**2
    live = (sq != 0.0) | (mean != 0.0)  # the rest is zero on every sample: inactive
    ratio_sq = min(MEAN_TO_STD_MAX**2, CANCELLATION_SQRT_N_MAX / math.sqrt(n) - 1.0)
    if not ((m2[live] > 0.0).all() and (n * mean[live] ** 2 <= ratio_sq * m2[live]).all()):
        return None
    return _Side(a, mean, m2, live)


def _stats(side: _Side, covariance: bool, row_norms: bool) -> LayerStats:
    """A checked side's statistics, with its centred XᵀX of the live neurons if asked for."""
    a, mean, live = side.data, side.mean, side.live
    cov = None
    if covariance:
        cov = a.T @ a  # numpy forms AᵀA with one symmetric product
        cov -= len(a) * np.outer(mean, mean)
        if not live.all():
            cov = cov[np.ix_(live, live)]
    return LayerStats(
        len(a),
        mean[live],
        constant=0,
        inactive=int((~live).sum()),
        cov=cov,
        data=None,
        row_sq=_row_norms(a, mean) if row_norms else None,
        trace=None if row_norms else float(side.m2[live].sum()),  # else the rows' sum
    )


def _column_sums(a: np.ndarray) -> np.ndarray:
    """Each column's sum, block by block of rows (np.add.reduceat along rows took 25 times
    as long as this loop at 20,000 × 512)."""
    total = np.zeros(a.shape[1])
    for start in range(0, len(a), _ROW_BLOCK):
        total += a[start : start + _ROW_BLOCK].sum(axis=0)
    return total


def _row_norms(a: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each sample's squared norm after centring, from the raw rows: ‖x_i − μ‖² = ‖x_i‖² −
    2 x_i·μ + ‖μ‖², with no centred block (docs/metrics.md has its time against centring
    them). Its rounding grows with the neurons summed, as the products' with the samples, and
    p <= n here: it cancels like the products under the same bound (module docstring). An
    inactive neuron contributes exact zeros."""
    rows = np.einsum("ij,ij->i", a, a)
    rows -= 2.0 * (a @ mean)
    rows += mean @ mean
    return rows
