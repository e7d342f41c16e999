"""One in-memory float64 pair without centred copies: the products of the raw data, centred
afterwards, for the metrics that are well-conditioned functions of them (linear and debiased
CKA, NBS: :attr:`prunesim.metrics.Metric.raw_products`) and where that is as good as centring
first.

The streaming passes (:mod:`prunesim.metrics.streaming`) centre every block twice: once to find
the neurons that do not vary, once to accumulate the products of the centred data. For two
float64 arrays already in memory, with at most n neurons each (the covariance route), the
products of the raw data give the same statistics after one pass for the means:

    XcᵀYc = XᵀY − n μ_X μ_Yᵀ,    ‖xc_j‖² = ‖x_j‖² − n μ_j²   (the diagonal of XcᵀXc),

so a single call reads each array for its means and then only in the products, and writes no
centred copy. The subtraction cancels leading digits where a neuron's mean is large against its
spread: the rounding of the raw products, about ε n (σ_j² + μ_j²) for a neuron of std σ_j and
mean μ_j, is 1 + (μ_j/σ_j)² times that of centred products. This route is therefore taken only
when every neuron either is zero on every sample (inactive: its column and mean are exactly 0)
or has |μ_j| <= ``MEAN_TO_STD_MAX`` × σ_j, which bounds that factor by 1 + 8² = 65. Measured at
the bound (every neuron's mean 7.9 stds from 0, on twelve data sets of 300–5,000 samples and
9–100 neurons), linear and debiased CKA and NBS stayed within 7e-14 of the reference formulas
(2e-14 at 3.9 stds; 1.7e-13 on one of them at 15.9), against ~1e-15 when centring first.
Metrics that whiten (the CCA family) amplify that rounding by the layers' condition numbers
(on one data set up to 4e-13 at 8 stds and 3e-12 at 16) and the Procrustes angle's arccos
amplifies it near 0: they always centre first.

A neuron with a constant non-zero value has σ_j = 0 and always fails the test, as does one
whose computed variance is rounding (true σ_j ≈ 0 shows as |μ_j|/σ_j >= 1/√(ε n) ≫ 8), so every
constant-neuron decision stays with the exact two-pass test. So do non-finite values, data
that the scale check would rescale (largest magnitude outside [2⁻²⁰⁰, 2²⁰⁰], bounded here by
the largest column norm), more neurons than samples, and any dtype but float64 (which needs a
converted copy anyway): for those :func:`raw_pair` returns None and the caller streams.
"""

from __future__ import annotations

import numpy as np

from prunesim.metrics.stats import LayerStats

# |mean| / std at most this for every varying neuron (see the module docstring)
MEAN_TO_STD_MAX = 8.0
# the scale check's safe range for the largest magnitude (prunesim.metrics._SAFE_PEAK), squared
_SAFE_PEAK_SQ = (2.0**-400, 2.0**400)
# each sample's norm from blocks of this many centred rows (a buffer that stays in cache)
_ROW_BLOCK = 256


def raw_pair(
    x: np.ndarray, y: np.ndarray, covariances: bool, cross: bool, row_norms: bool
) -> tuple[LayerStats, LayerStats, np.ndarray | None] | None:
    """(statistics of x, of y, XcᵀYc or None) from the raw products, or None when this route
    does not apply (the module docstring says when). ``covariances``: each side's XcᵀXc;
    ``cross``: XcᵀYc; ``row_norms``: each sample's centred squared norm (debiased CKA), else
    only each side's ``trace``."""
    n = len(x)
    if len(y) != n or any(a.dtype != np.float64 or a.shape[1] > n for a in (x, y)):
        return None
    sides = [_raw_side(a, covariances, row_norms) for a in (x, y)]
    if sides[0] is None or sides[1] is None:
        return None
    (stats_x, mean_x, live_x), (stats_y, mean_y, live_y) = sides
    centred_cross = None
    if cross:
        centred_cross = x.T @ y
        centred_cross -= n * np.outer(mean_x, mean_y)
        if not (live_x.all() and live_y.all()):
            centred_cross = centred_cross[np.ix_(live_x, live_y)]
    return stats_x, stats_y, centred_cross


def _raw_side(a: np.ndarray, covariance: bool, row_norms: bool):
    """(LayerStats, every neuron's mean, the live mask) of one side, or None when the route
    does not apply to it."""
    n = len(a)
    mean = a.mean(axis=0)
    if not np.isfinite(mean).all():
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # data beyond the safe range: checked
        gram = a.T @ a if covariance else None  # numpy forms AᵀA with one symmetric product
        sq = np.diag(gram).copy() if covariance else np.einsum("ij,ij->j", a, a)
    # the largest magnitude m satisfies m² <= max ‖x_j‖² <= n m² (an overflow makes it inf)
    if not _SAFE_PEAK_SQ[0] * n <= float(sq.max()) <= _SAFE_PEAK_SQ[1]:
        return None
    m2 = sq - n * mean**2
    live = (sq != 0.0) | (mean != 0.0)  # the rest is zero on every sample: inactive
    if not (
        (m2[live] > 0.0).all() and (n * mean[live] ** 2 <= MEAN_TO_STD_MAX**2 * m2[live]).all()
    ):
        return None
    cov = None
    if gram is not None:
        gram -= n * np.outer(mean, mean)
        cov = gram if live.all() else gram[np.ix_(live, live)]
    stats = LayerStats(
        n,
        mean[live],
        constant=0,
        inactive=int((~live).sum()),
        cov=cov,
        data=None,
        row_sq=_row_norms(a, mean) if row_norms else None,
        trace=float(m2[live].sum()),
    )
    return stats, mean, live


def _row_norms(a: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each sample's squared norm after centring, as the two passes take it: centred rows in
    small blocks (an inactive neuron contributes exact zeros)."""
    out = np.empty(len(a))
    buffer = np.empty((min(_ROW_BLOCK, len(a)), a.shape[1]))
    for start in range(0, len(a), _ROW_BLOCK):
        block = a[start : start + _ROW_BLOCK]
        centred = buffer[: len(block)]
        np.subtract(block, mean, out=centred)
        out[start : start + len(block)] = np.einsum("ij,ij->i", centred, centred)
    return out
