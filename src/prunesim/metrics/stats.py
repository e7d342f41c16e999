"""Streamed float64 sufficient statistics of representations, accumulated chunk by chunk.

Two passes over the samples. Pass 1 (:class:`ColumnMoments`) finds each neuron's mean and
variance (Chan et al.'s pairwise update, stable in float64) and so the neurons that do not
vary: constant ones, and inactive ones (zero on every sample: ReLUs that never fire). Pass 2
(:class:`LayerAccumulator`, :func:`accumulate_cross`) sees exactly centred chunks of the live
neurons and sums what the metrics need:

* ``cov = XᵀX`` (p × p) for layers with p <= n: memory does not grow with n (not when no
  metric asks for it: ``Policy.covariances``);
* the centred data itself for layers with p > n (or when a kernel metric needs the n × n Gram
  matrix): memory n × p, which is small exactly when p > n;
* each sample's squared norm ``‖x_i‖²`` (n floats), for debiased CKA;
* ``XᵀY`` (p1 × p2) per layer pair, whenever one side keeps only its covariance.

Which representations keep their data, and the passes themselves, are the streaming driver's
(:mod:`prunesim.metrics.streaming`), for stores and in-memory arrays alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from prunesim.metrics.backend import NUMPY
from prunesim.metrics.views import to_numpy

# A neuron is constant when its std is within the rounding of its own values: std <= rtol ×
# |mean|, a rule that depends on no other neuron (so on no scale). float64 (and integer) data:
# 1e-12, the residue that centring leaves on an exactly constant column whose mean is inexact.
# float32/float16 data: 4 units in the last place, the jitter of a value that is constant but
# computed in different orders (batched GPU kernels).
CONSTANT_RTOL = 1e-12

# Every metric is invariant to scaling either representation, and the fourth powers in CKA's
# norms overflow above ~1e76 and underflow below ~1e-77 in float64: data whose largest
# magnitude lies outside this range is scaled by a power of two first (exact, no rounding;
# prunesim.metrics._power_of_two_scaled), or not taken by the raw products (raw_products).
SAFE_PEAK = (2.0**-200, 2.0**200)


def constant_rtol(dtype) -> float:
    """The relative std below which a neuron stored as ``dtype`` is constant."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating) and dtype.itemsize < 8:
        return 4.0 * float(np.finfo(dtype).eps)
    return CONSTANT_RTOL


def product(a: np.ndarray, b: np.ndarray, float32: bool = False, backend=NUMPY) -> np.ndarray:
    """``aᵀ b`` in float64 for ``a`` (m × p) and ``b`` (m × q), the centred data.

    With ``float32`` the m rows are taken in blocks of ``backend.FLOAT32_BLOCK``, each block's product
    formed in float32 (about twice the float64 rate) and the blocks summed in float64: the
    float32 rounding then stays near 1e-7 relative instead of growing with m."""
    return backend.product(a, b, float32)


def as_matrix(x) -> np.ndarray:
    """numpy or torch ``n × p`` array of real numbers -> numpy array; a ValueError for
    anything that is not an activation matrix (wrong rank, empty, complex, non-numeric)."""
    x = to_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"a representation must be a 2-D n × p array, got shape {x.shape}")
    if np.iscomplexobj(x) or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(f"a representation must hold real numbers, got dtype {x.dtype}")
    if 0 in x.shape:
        raise ValueError(
            f"a representation needs at least one sample and one neuron, got shape {x.shape}"
        )
    return x


def centre_into(chunk: np.ndarray, mean: np.ndarray, buffer: np.ndarray | None) -> tuple:
    """``chunk − mean`` in float64, converted and centred in one pass into ``buffer`` (reused
    from chunk to chunk, grown when a chunk is larger). Returns (centred view, buffer).

    Why a reused buffer: a fresh chunk-sized temporary is page-faulted in on every chunk, which
    can cost as much as the chunk's own products at p ~ 1,000."""
    rows, width = chunk.shape
    if buffer is None or buffer.shape[0] < rows or buffer.shape[1] != width:
        buffer = np.empty((rows, width))
    out = buffer[:rows]
    np.subtract(chunk, mean, out=out, dtype=np.float64)
    return out, buffer


@dataclass
class ColumnMoments:
    """Pass 1: per-neuron count, mean and sum of squared deviations, merged chunk by chunk."""

    p: int
    n: int = 0
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)
    # Neurons holding a NaN or an infinity somewhere: their chunk mean is not finite, so the
    # check costs nothing beyond the mean that pass 1 computes anyway.
    nonfinite: np.ndarray = field(init=False)
    rtol: float = field(default=CONSTANT_RTOL, init=False)  # of the coarsest dtype seen
    buffer: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.p)
        self.m2 = np.zeros(self.p)
        self.nonfinite = np.zeros(self.p, dtype=bool)

    def add(self, chunk: np.ndarray) -> None:
        chunk = as_matrix(chunk)
        k = len(chunk)
        if k == 0:
            return
        self.rtol = max(self.rtol, constant_rtol(chunk.dtype))
        with np.errstate(invalid="ignore"):  # +inf and −inf in one neuron: NaN, reported below
            chunk_mean = chunk.mean(axis=0, dtype=np.float64)
        bad = ~np.isfinite(chunk_mean)
        if bad.any():  # keep the statistics finite: those neurons are reported, not used
            self.nonfinite |= bad
            chunk = np.where(bad, 0.0, chunk)
            chunk_mean = np.where(bad, 0.0, chunk_mean)
        deviation, self.buffer = centre_into(chunk, chunk_mean, self.buffer)
        chunk_m2 = np.einsum("ij,ij->j", deviation, deviation)
        total = self.n + k
        delta = chunk_mean - self.mean
        self.mean += delta * (k / total)
        self.m2 += chunk_m2 + delta**2 * (self.n * k / total)
        self.n = total

    def accumulator(
        self,
        keep_data: bool,
        float32_products: bool = False,
        backend=NUMPY,
        covariance: bool = True,
    ) -> LayerAccumulator:
        """Pass 2 for this representation's live neurons, with its means and row count
        (``covariance=False``: without XᵀX unless the data is kept). The chunk buffer goes
        with it: memory already paged in."""
        buffer, self.buffer = self.buffer, None
        live = self.live()
        still = ~live & ~self.nonfinite
        inactive = int((still & (self.mean == 0.0)).sum())
        return LayerAccumulator(
            self.mean,
            live,
            keep_data,
            float32_products,
            backend,
            self.n,
            buffer=buffer,
            nonfinite=int(self.nonfinite.sum()),
            constant=int(still.sum()) - inactive,
            inactive=inactive,
            covariance=covariance,
        )

    def live(self) -> np.ndarray:
        """Neurons that vary: finite, with a std above the rounding of their own values
        (``rtol`` × |mean|; an all-zero neuron has std 0 and is not live)."""
        std = np.sqrt(self.m2 / max(self.n, 1))
        return ~self.nonfinite & (std > self.rtol * np.abs(self.mean))


@dataclass
class LayerStats:
    """Pass-2 results for one representation (one layer under one view)."""

    n: int
    mean: np.ndarray  # of the live neurons
    constant: int  # neurons dropped for a constant non-zero value
    inactive: int  # neurons dropped for being zero on every sample (ReLUs that never fire)
    # XᵀX of the centred live neurons; None when the data is kept or XᵀX was not asked for
    cov: np.ndarray | None
    data: np.ndarray | None  # the centred live data (n × p), kept when p > n or a Gram is needed
    row_sq: np.ndarray | None  # ‖x_i‖² of each centred sample (None: not taken, see trace)
    float32_products: bool = False  # products of the data in float32, summed in float64
    backend: object = NUMPY  # where the heavy linear algebra runs (prunesim.metrics.backend)
    nonfinite: int = 0  # neurons with a NaN or an infinity: every metric of the layer is NaN
    # ‖X‖²_F of the centred live neurons where the row norms were not taken (a single call's
    # raw products, prunesim.metrics.raw_products); None where row_sq holds them
    trace: float | None = None

    @property
    def p(self) -> int:
        return len(self.mean)

    @property
    def dropped(self) -> int:
        """Neurons left out for not varying (constant or inactive)."""
        return self.constant + self.inactive


@dataclass
class LayerAccumulator:
    """Pass 2 for one representation: centres each chunk and accumulates its statistics."""

    mean: np.ndarray  # full-width means from pass 1
    live: np.ndarray  # boolean mask from pass 1
    keep_data: bool
    float32_products: bool = False
    backend: object = NUMPY
    # Rows pass 1 counted: the kept data is then written into one preallocated array, instead
    # of concatenating the chunks at the end (which held the data twice).
    total_rows: int | None = None
    n: int = 0
    cov: np.ndarray | None = None
    rows: list = field(default_factory=list)
    row_sq: list = field(default_factory=list)
    buffer: np.ndarray | None = field(default=None, repr=False)
    nonfinite: int = 0  # from pass 1; those neurons are excluded from ``live``
    constant: int = 0  # from pass 1: dropped neurons of a constant non-zero value
    inactive: int = 0  # from pass 1: dropped neurons that are zero on every sample
    covariance: bool = True  # accumulate XᵀX when the data is not kept

    def centred(self, chunk: np.ndarray) -> np.ndarray:
        """The chunk's live neurons, centred with the pass-1 means (float64). A view of this
        accumulator's buffer: valid until its next call."""
        chunk = as_matrix(chunk)
        if self.live.all():  # the common case: no copy for column selection
            centred, self.buffer = centre_into(chunk, self.mean, self.buffer)
        else:
            centred, self.buffer = centre_into(
                chunk[:, self.live], self.mean[self.live], self.buffer
            )
        return centred

    def add(self, centred: np.ndarray) -> None:
        self.n += len(centred)
        self.row_sq.append(np.einsum("ij,ij->i", centred, centred))
        if self.keep_data and self.total_rows is not None:
            if not self.rows:
                self.rows.append(np.empty((self.total_rows, centred.shape[1])))
            self.rows[0][self.n - len(centred) : self.n] = centred
        elif self.keep_data:
            self.rows.append(centred.copy())  # centred may be the reused buffer
        elif self.covariance:
            chunk_cov = product(centred, centred, self.float32_products, self.backend)
            if self.cov is None:
                self.cov = chunk_cov
            else:
                self.cov += chunk_cov

    def result(self) -> LayerStats:
        self.buffer = None
        live_mean = self.mean[self.live]
        p = int(self.live.sum())
        if self.total_rows is not None and self.rows and self.n != self.total_rows:
            raise ValueError(f"pass 2 saw {self.n} rows where pass 1 counted {self.total_rows}")
        data = None
        if self.keep_data and self.rows:
            data = self.rows[0] if len(self.rows) == 1 else np.concatenate(self.rows)
        if self.keep_data and data is None:
            data = np.zeros((0, p))
        cov = None
        if not self.keep_data and self.covariance:
            cov = self.cov if self.cov is not None else np.zeros((p, p))
        row_sq = np.concatenate(self.row_sq) if self.row_sq else np.zeros(0)
        return LayerStats(
            self.n,
            live_mean,
            self.constant,
            self.inactive,
            cov,
            data,
            row_sq,
            self.float32_products,
            self.backend,
            self.nonfinite,
        )
