"""RBF CKA of two in-memory representations in blocks of sample pairs: exact, in O(n × block)
memory instead of the n × n kernels (8 n² bytes each: 20 GB at n = 50,000).

The kernel matrices are never held. With K, L the RBF kernels, k, l their row sums and H the
centring matrix, ``⟨HKH, HLH⟩ = ΣK∘L − (2/n) k·l + (Σk)(Σl)/n²`` (likewise ``‖HKH‖²`` with L = K),
and every sum is accumulated over square tiles of sample pairs on and above the diagonal
(a tile below it is the transpose of one above). σ² is Kornblith et al.'s rule as in the
in-memory path: ``rbf_sigma² ×`` the median squared distance between distinct samples (i < j),
found exactly by selection: a sample of rows brackets the median, one pass over all tiles
counts the distances below the bracket and keeps those inside it, and a bracket that missed
(the counts say so) is widened and the pass repeated.

Cost: two passes over the tiles per representation (the median, then the kernel sums), each
``n² p`` multiply-adds for the distances (half of ``X Xᵀ``'s, by symmetry), against one such
product and the n × n passes of an in-memory kernel.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from prunesim.metrics.backend import bracketed_median

TILE = 1024  # samples per side of a tile of sample pairs: two 8 MiB float64 tiles in flight
SAMPLE_ROWS = 200  # rows whose distances bracket the median (every n // SAMPLE_ROWS-th row)
BRACKETS = ((0.49, 0.51), (0.45, 0.55), (0.25, 0.75), (0.0, 1.0))  # widened after a miss


def _tiles(n: int, tile: int) -> Iterator[tuple[slice, slice]]:
    """Tiles (rows, columns) on and above the diagonal of the n × n pairs."""
    starts = range(0, n, tile)
    for i in starts:
        for j in starts:
            if j >= i:
                yield slice(i, min(i + tile, n)), slice(j, min(j + tile, n))


def _distances(x: np.ndarray, sq: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """Squared distances between samples ``rows`` and ``cols`` from their Gram block, as the
    in-memory path forms them (``G_ii + G_jj − 2 G_ij``, clipped at 0)."""
    block = x[rows] @ x[cols].T
    block *= -2.0
    block += sq[rows, None]
    block += sq[None, cols]
    np.maximum(block, 0.0, out=block)
    return block


def _upper(block: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """The entries of a tile with row index < column index (all of them off the diagonal)."""
    if rows.start != cols.start:
        return block.ravel()
    return block[np.triu_indices(len(block), k=1, m=block.shape[1])]


def median_sq_distance(x: np.ndarray, tile: int = TILE) -> float:
    """numpy's median (mean of the two middle values for an even count) of the squared
    distances between samples i < j of the centred ``x`` (n × p), exactly."""
    n = len(x)
    count = n * (n - 1) // 2
    if count == 0:
        return 0.0
    sq = np.einsum("ij,ij->i", x, x)
    sampled = np.arange(0, n - 1, max(1, n // SAMPLE_ROWS))
    sample = np.concatenate(
        [_distances(x, sq, slice(i, i + 1), slice(i + 1, n)).ravel() for i in sampled]
    )

    def chunks():
        for rows, cols in _tiles(n, tile):
            yield _upper(_distances(x, sq, rows, cols), rows, cols)

    for low_q, high_q in BRACKETS:
        low, high = (
            (-np.inf, np.inf)
            if (low_q, high_q) == (0.0, 1.0)
            else np.quantile(sample, [low_q, high_q])
        )
        median = bracketed_median(chunks, count, low, high)
        if median is not None:
            return median
    raise AssertionError("the widest bracket holds every distance")  # pragma: no cover


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma_factor: float, tile: int = TILE):
    """(RBF CKA, reason) of centred ``x`` (n × p1) and ``y`` (n × p2), float64; the value is
    NaN with a reason when a median distance is 0 (as the in-memory kernel) or a centred
    kernel is zero."""
    n = len(x)
    factors = []
    for data in (x, y):
        median = median_sq_distance(data, tile)
        if median <= 0.0:
            return float("nan"), "median squared distance between samples is 0"
        factors.append(-1.0 / (2.0 * sigma_factor**2 * median))
    sq_x, sq_y = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    row_k, row_l = np.zeros(n), np.zeros(n)
    kl = kk = ll = 0.0
    for rows, cols in _tiles(n, tile):
        k = _distances(x, sq_x, rows, cols)
        k *= factors[0]
        np.exp(k, out=k)
        l_ = _distances(y, sq_y, rows, cols)
        l_ *= factors[1]
        np.exp(l_, out=l_)
        # a tile above the diagonal stands for its transpose below it too
        twice = 1.0 if rows.start == cols.start else 2.0
        kl += twice * float(np.vdot(k, l_))
        kk += twice * float(np.vdot(k, k))
        ll += twice * float(np.vdot(l_, l_))
        row_k[rows] += k.sum(axis=1)
        row_l[rows] += l_.sum(axis=1)
        if twice == 2.0:
            row_k[cols] += k.sum(axis=0)
            row_l[cols] += l_.sum(axis=0)
    sum_k, sum_l = row_k.sum(), row_l.sum()
    hsic = kl - 2.0 / n * float(row_k @ row_l) + sum_k * sum_l / n**2
    self_k = kk - 2.0 / n * float(row_k @ row_k) + sum_k**2 / n**2
    self_l = ll - 2.0 / n * float(row_l @ row_l) + sum_l**2 / n**2
    if not (self_k > 0.0 and self_l > 0.0):
        return float("nan"), "a centred RBF kernel is zero"
    return hsic / float(np.sqrt(self_k * self_l)), ""
