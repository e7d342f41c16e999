"""Per-layer factors and per-pair products that every metric is computed from.

A :class:`LayerFactors` wraps one layer's streamed statistics (:class:`LayerStats`) and derives,
lazily and once, what the metrics need: Frobenius norms, the trace, the eigendecomposition of
``XᵀX`` (p <= n) or of the Gram matrix ``XXᵀ`` (p > n), whitening maps, RBF kernels. These
are shared by every layer pair and every metric of a comparison. A :class:`PairFactors` holds
the one cross-product ``XᵀY`` of a pair (streamed, or formed from kept data) and the canonical
correlation analysis derived from it.

Notation: X is n × p, centred, live neurons only; ``X = U diag(s) Vᵀ`` its thin SVD truncated
to the numerical rank r (singular values s > sqrt(rank_tol) × the largest).

Speed: symmetric eigendecompositions and SVDs are LAPACK's slow, memory-bound part (for p =
4,096 one takes as long as ten p × p matrix products on two cores), so they are avoided where
an exact equivalent exists: a full-rank layer is whitened for CCA by the Cholesky factor of its
correlation matrix, and singular values come from the eigenvalues of the smaller Gram matrix
(:func:`singular_values`). See docs/metrics.md, "Where the time goes".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from prunesim.metrics.backend import NUMPY
from prunesim.metrics.stats import LayerStats, product

RANK_TOL = 1e-10  # eigenvalues of XᵀX (or XXᵀ) <= RANK_TOL × the largest are treated as zero
# singular_values: the LAPACK SVD is used when the Gram-eigenvalue route could be off by more
# than this fraction of the sum of the singular values (the metrics' values: NBS's nuclear norm,
# CCA's mean). The estimate is pessimistic: on the benchmark's (10,000, 4,096, 4,096) pair it
# was 1.1e-12 where the measured error was 1.1e-14, and at 1e-12 it sent that pair to a full SVD.
SPECTRUM_RTOL = 1e-10


@dataclass(frozen=True)
class Repeats:
    """Rows of a layer that repeat (a bootstrap draw): ``first`` holds the position of one
    copy of each of the m distinct rows, ``inverse`` each row's distinct row (0..m-1) and
    ``counts`` each distinct row's copies."""

    first: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, rows: np.ndarray) -> Repeats | None:
        """The repeats of the sample indices ``rows``; None when every row is distinct."""
        _, first, inverse, counts = np.unique(
            rows, return_index=True, return_inverse=True, return_counts=True
        )
        return None if len(first) == len(rows) else cls(first, inverse.ravel(), counts)


@dataclass
class Basis:
    """Thin SVD ``Z = U diag(s) Vᵀ`` of Z = X (or X with neurons scaled to unit norm, then
    ``scale`` holds the neuron norms), truncated to its numerical rank r."""

    singular_values: np.ndarray  # s, descending
    left_vectors: np.ndarray | None  # U (n × r): only on the Gram route
    scale: np.ndarray | None  # neuron norms when Z = X / scale
    _right: np.ndarray | None = None  # V (p × r), from the covariance route
    _data: np.ndarray | None = None  # Z (Gram route), to form V only if a metric needs it
    backend: object = NUMPY
    # The basis this one is a reordering of (Gram route): V and the whitening of a neuron-space
    # matrix are sums over samples, the same in any order, so they are the original's.
    _origin: Basis | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_cov(cls, cov: np.ndarray, rank_tol: float, scale=None, backend=NUMPY) -> Basis:
        evals, evecs = _leading_eigen(cov, rank_tol, backend)
        return cls(np.sqrt(evals), None, scale, _right=evecs, backend=backend)

    @classmethod
    def from_gram(
        cls, gram: np.ndarray, data: np.ndarray, rank_tol: float, scale=None, backend=NUMPY
    ) -> Basis:
        evals, evecs = _leading_eigen(gram, rank_tol, backend)
        return cls(np.sqrt(evals), evecs, scale, _data=data, backend=backend)

    @classmethod
    def from_repeated_rows(
        cls,
        distinct_gram: np.ndarray,
        repeats: Repeats,
        data: np.ndarray,
        rank_tol: float,
        scale=None,
        backend=NUMPY,
    ) -> Basis:
        """The Gram-route basis of data whose n rows repeat m < n distinct ones (a bootstrap
        draw), from the m × m Gram matrix ``G_d`` of the distinct rows.

        With E the n × m indicator of each row's distinct row and ``W = EᵀE`` the copies, the
        n × n Gram matrix is ``E G_d Eᵀ``; its nonzero eigenpairs are those of
        ``W^½ G_d W^½ = V Λ Vᵀ``, with eigenvectors ``E W^-½ V`` (orthonormal, since
        ``Vᵀ W^-½ EᵀE W^-½ V = I``). An m³ eigendecomposition replaces an n³ one: m is about
        0.63 n in a bootstrap draw, so it costs a quarter."""
        root = np.sqrt(repeats.counts)
        weighted = distinct_gram * root[:, None] * root[None, :]
        evals, evecs = _leading_eigen(weighted, rank_tol, backend)
        left = (evecs / root[:, None])[repeats.inverse]
        return cls(np.sqrt(evals), left, scale, _data=data, backend=backend)

    @cached_property
    def right_vectors(self) -> np.ndarray:
        """V (p × r): principal directions in neuron space (``Zᵀ U diag(1/s)`` on the Gram
        route, formed on first use: a degenerate CCA never needs it)."""
        if self._right is not None:
            return self._right
        origin = self._origin or self
        if "right_vectors" in origin.__dict__:
            return origin.__dict__["right_vectors"]
        # formed here, not cached on the origin: its whitening's route stays as it was
        return self.backend.matmul(origin._data.T, origin.left_vectors / self.singular_values)

    @property
    def rank(self) -> int:
        return len(self.singular_values)

    def whitener(self, k: int | None = None) -> np.ndarray:
        """``M`` (p × k) such that ``X M`` is the orthonormal basis of the leading k
        directions: ``V_k diag(1/s_k)``, divided row-wise by the neuron norms if standardised."""
        k = self.rank if k is None else k
        m = self.right_vectors[:, :k] / self.singular_values[:k]
        return m / self.scale[:, None] if self.scale is not None else m

    def whiten(self, matrix: np.ndarray, k: int | None = None) -> np.ndarray:
        """``Mᵀ A`` (k × m) for a p × m matrix A. On the Gram route, where V is not formed, as
        ``diag(s_k)⁻² U_kᵀ Z D⁻¹ A`` (M = D⁻¹ Zᵀ U_k diag(s_k)⁻²): for m < p that is cheaper
        than forming the p × r matrix V."""
        if self._origin is not None:
            return self._origin.whiten(matrix, k)
        k = self.rank if k is None else k
        if self._right is None and "right_vectors" not in self.__dict__:
            scaled = matrix / self.scale[:, None] if self.scale is not None else matrix
            matmul = self.backend.matmul
            projected = matmul(self.left_vectors[:, :k].T, matmul(self._data, scaled))
            return projected / self.singular_values[:k, None] ** 2
        return self.backend.matmul(self.whitener(k).T, matrix)

    def neuron_loadings(self) -> np.ndarray:
        """``Qᵀ X`` (r × p) for the orthonormal basis Q = X M: ``diag(s) Vᵀ`` (times the neuron
        norms if standardised), the projection of every neuron on every basis vector."""
        loadings = self.singular_values[:, None] * self.right_vectors.T
        return loadings * self.scale if self.scale is not None else loadings

    def reordered(self, rows: np.ndarray) -> Basis:
        """The basis of the same data with its samples in the order ``rows``: only U, the
        sample-space part, moves; what is formed from the kept data is this basis's (the data
        is not copied)."""
        moved = Basis(
            self.singular_values,
            None if self.left_vectors is None else self.left_vectors[rows],
            self.scale,
            _right=self._right,
            backend=self.backend,
            _origin=None if self._right is not None else (self._origin or self),
        )
        if "right_vectors" in self.__dict__:
            moved.__dict__["right_vectors"] = self.__dict__["right_vectors"]
        return moved


@dataclass
class CholeskyBasis:
    """Whitening of a full-rank layer from the Cholesky factor of its correlation matrix,
    ``R = D⁻¹ XᵀX D⁻¹ = L Lᵀ`` (D the neuron norms): ``Q = X D⁻¹ L⁻ᵀ`` is an orthonormal basis
    of the layer, which is all CCA needs; a Cholesky factorisation costs a tenth of an
    eigendecomposition."""

    factor: np.ndarray  # L (p × p, lower)
    inverse: np.ndarray  # L⁻¹
    scale: np.ndarray  # D
    backend: object = NUMPY

    left_vectors = None  # only eigen bases on the Gram route have them

    @property
    def rank(self) -> int:
        return len(self.scale)

    def whitener(self, k: int | None = None) -> np.ndarray:
        """``M = D⁻¹ L⁻ᵀ`` (p × p): ``X M`` is orthonormal. Only the full basis exists (the
        directions are not principal ones, so there is no leading k of them)."""
        if k not in (None, self.rank):
            raise ValueError("a Cholesky basis has no leading directions to truncate to")
        return (self.inverse / self.scale).T

    def whiten(self, matrix: np.ndarray, k: int | None = None) -> np.ndarray:
        """``Mᵀ A = L⁻¹ D⁻¹ A`` for a p × m matrix A."""
        return self.backend.matmul(self.whitener(k).T, matrix)

    def neuron_loadings(self) -> np.ndarray:
        """``Qᵀ X = L⁻¹ D⁻¹ XᵀX = Lᵀ D`` (p × p)."""
        return self.factor.T * self.scale

    def reordered(self, rows: np.ndarray) -> CholeskyBasis:
        """Nothing of it is indexed by samples."""
        return self


def squared_norm(matrix: np.ndarray) -> float:
    """``‖A‖²_F`` in either memory order: ``np.vdot`` first copies a Fortran-ordered matrix,
    such as LAPACK's triangular inverse, which costs far more than the sum itself."""
    return float(np.einsum("ij,ij->", matrix, matrix))


def cholesky_basis(
    corr: np.ndarray, scale: np.ndarray, rank_tol: float, backend=NUMPY
) -> CholeskyBasis | None:
    """The Cholesky basis of a correlation matrix that is certainly of full rank under
    ``rank_tol``, else None (then the eigendecomposition decides the rank, as documented).

    Certificate: ``λ_min(R) >= 1 / tr(R⁻¹) = 1 / ‖L⁻¹‖²_F`` and ``λ_max(R) <= ‖R‖_F``, so when
    the first bound exceeds ``rank_tol`` × the second, an eigendecomposition would keep every
    direction too. It holds for condition numbers up to about rank_tol⁻¹ / p^1.5 at worst, and
    much higher when only a few eigenvalues are small."""
    factors = backend.cholesky_inverse(corr)
    if factors is None:
        return None
    factor, inverse = factors
    if not 1.0 / squared_norm(inverse) > rank_tol * np.linalg.norm(corr):
        return None
    return CholeskyBasis(factor, inverse, scale, backend)


def gram_has_full_rank(gram: np.ndarray, scale: np.ndarray, rank_tol: float, backend=NUMPY) -> bool:
    """Whether the centred data with Gram matrix ``gram`` (n × n) certainly has rank n − 1
    with its neurons scaled to unit norm (``scale`` their norms), without an eigendecomposition.

    ``G' = G + (tr G / n) 11ᵀ / n`` replaces the zero eigenvalue of the centring direction 1;
    its Cholesky factor bounds ``λ_min(G on 1⊥) >= 1 / ‖L⁻¹‖²_F``, and ``λ_max(G) <= ‖G‖_F``.
    Scaling neurons by ``1 / scale`` moves these by at most ``max scale²`` and ``min scale²``."""
    n = len(gram)
    factors = backend.cholesky_inverse(gram + np.trace(gram) / n**2, overwrite=True)
    if factors is None:
        return False
    inverse = factors[1]
    lower = (scale.min() / scale.max()) ** 2 / squared_norm(inverse)
    return bool(lower > rank_tol * np.linalg.norm(gram))


def singular_values(matrix: np.ndarray, left_vectors: bool = False, backend=NUMPY):
    """Singular values (descending) of a k1 × k2 matrix A and, with ``left_vectors``, its
    left singular vectors (k1 × min(k1, k2)); else None.

    They come from the eigendecomposition of the smaller of AAᵀ and AᵀA, which costs a
    third to a half of an SVD. Its eigenvalues are exact to about eps·σ₁², so each σᵢ to
    eps·σ₁² / 2σᵢ: when those errors could add up to more than ``SPECTRUM_RTOL`` of Σσᵢ (some
    singular values are tiny, or exactly zero), the LAPACK SVD is used instead."""
    k1, k2 = matrix.shape
    if min(k1, k2) == 0:
        return np.zeros(0), (np.zeros((k1, 0)) if left_vectors else None)
    wide = k1 <= k2  # AAᵀ is the smaller Gram matrix; its eigenvectors are the left vectors
    gram = backend.matmul(matrix, matrix.T) if wide else backend.matmul(matrix.T, matrix)
    if left_vectors:
        evals, evecs = backend.eigh(gram)
        evecs = evecs[:, ::-1]
    else:
        evals = backend.eigvalsh(gram)
    sigma = np.sqrt(np.maximum(evals[::-1], 0.0))
    if sigma[-1] > 0 and _gram_error(sigma) <= SPECTRUM_RTOL * sigma.sum():
        if not left_vectors:
            return sigma, None
        return sigma, (evecs if wide else backend.matmul(matrix, evecs / sigma))
    if left_vectors:
        return backend.svd(matrix)
    return backend.svdvals(matrix), None


def _gram_error(sigma: np.ndarray) -> float:
    """Bound on the summed error of singular values ``sigma`` (all > 0) obtained as square
    roots of Gram-matrix eigenvalues."""
    return float(np.finfo(np.float64).eps * sigma[0] ** 2 / 2 * np.sum(1.0 / sigma))


def _leading_eigen(
    matrix: np.ndarray, rank_tol: float, backend=NUMPY
) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a symmetric PSD matrix, descending, eigenvalues <= rank_tol × the largest
    dropped."""
    evals, evecs = backend.eigh(matrix)
    evals, evecs = evals[::-1], evecs[:, ::-1]  # views: every use makes a new array anyway
    rank = int(np.count_nonzero(evals > rank_tol * max(evals[0] if len(evals) else 0.0, 0.0)))
    return evals[:rank], evecs[:, :rank]  # descending, so the kept ones are a prefix


@dataclass
class LayerFactors:
    stats: LayerStats
    rank_tol: float = RANK_TOL
    repeats: Repeats | None = None  # rows that repeat (a bootstrap draw): a cheaper Gram route

    @property
    def n(self) -> int:
        return self.stats.n

    @property
    def p(self) -> int:
        return self.stats.p

    @property
    def nonfinite(self) -> int:
        return self.stats.nonfinite

    @property
    def has_data(self) -> bool:
        return self.stats.data is not None

    @property
    def backend(self):
        return self.stats.backend

    @property
    def gram_route(self) -> bool:
        """Work with the n × n Gram matrix instead of the p × p covariance (p > n)."""
        return self.stats.cov is None and self.p > self.n

    @cached_property
    def cov(self) -> np.ndarray:
        """``XᵀX`` (p × p)."""
        if self.stats.cov is not None:
            return self.stats.cov
        if self.stats.data is None:
            raise ValueError("this layer's XᵀX was not accumulated (covariances=False)")
        return product(self.stats.data, self.stats.data, self.stats.float32_products, self.backend)

    @cached_property
    def gram(self) -> np.ndarray:
        """``XXᵀ`` (n × n), the centred linear-kernel Gram matrix. Needs the kept data."""
        if (carried := self._carried("gram")) is not None:
            return carried
        if self.stats.data is None:
            raise ValueError("this layer kept no data: its Gram matrix is not available")
        data_t = self.stats.data.T
        return product(data_t, data_t, self.stats.float32_products, self.backend)

    @property
    def has_gram(self) -> bool:
        """Whether the Gram matrix is at hand (formed, or carried over to be permuted, and not
        consumed by an RBF kernel)."""
        return "gram" in self.__dict__ or "gram" in self.__dict__.get("_pending", {})

    @property
    def row_sq(self) -> np.ndarray:
        """Each sample's squared norm (centred)."""
        if self.stats.row_sq is None:
            raise ValueError("this layer's row norms were not taken (row_norms=False)")
        return self.stats.row_sq

    @cached_property
    def trace(self) -> float:
        """``tr XᵀX = tr XXᵀ = Σ_i ‖x_i‖²``."""
        if self.stats.row_sq is None:
            return self.stats.trace
        return float(self.row_sq.sum())

    @cached_property
    def self_hsic(self) -> float:
        """``‖XᵀX‖_F = ‖XXᵀ‖_F``, from whichever matrix is smaller."""
        return float(np.linalg.norm(self.gram if self.gram_route else self.cov))

    @cached_property
    def self_hsic_unbiased(self) -> float:
        """Unbiased HSIC of the layer with itself (Song et al. 2012), linear kernel."""
        return unbiased_hsic(
            self.self_hsic**2, self.row_sq @ self.row_sq, self.trace, self.trace, self.n
        )

    @cached_property
    def scale(self) -> np.ndarray:
        """Each live neuron's norm ‖x_j‖ (centred): standardising by it makes CCA's rank
        decision independent of how neurons are scaled, as CCA itself is."""
        if self.gram_route:
            return np.sqrt(np.einsum("ij,ij->j", self.stats.data, self.stats.data))
        return np.sqrt(np.diag(self.cov))

    def basis(self, standardized: bool) -> Basis | CholeskyBasis:
        """Principal basis of X (``standardized=False``: SVCCA, NBS) or of X with unit-norm
        neurons (``True``: CCA, PWCCA), computed once each."""
        cache = self.__dict__.setdefault("_bases", {})
        if standardized not in cache:
            scale = self.scale if standardized else None
            if self.gram_route and self.repeats is not None:
                data = self.stats.data / scale if standardized else self.stats.data
                first = self.repeats.first
                distinct = (
                    self.backend.matmul(data[first], data[first].T)
                    if standardized
                    else self.gram[np.ix_(first, first)]
                )
                cache[standardized] = Basis.from_repeated_rows(
                    distinct, self.repeats, data, self.rank_tol, scale, self.backend
                )
            elif self.gram_route:
                data = self.stats.data / scale if standardized else self.stats.data
                gram = self.backend.matmul(data, data.T) if standardized else self.gram
                cache[standardized] = Basis.from_gram(
                    gram, data, self.rank_tol, scale, self.backend
                )
            elif standardized:
                corr = np.outer(scale, scale)  # D⁻¹ XᵀX D⁻¹ in one new p × p array
                np.divide(self.cov, corr, out=corr)
                cache[standardized] = cholesky_basis(
                    corr, scale, self.rank_tol, self.backend
                ) or Basis.from_cov(corr, self.rank_tol, scale, self.backend)
            else:
                cache[standardized] = Basis.from_cov(self.cov, self.rank_tol, None, self.backend)
        return cache[standardized]

    @cached_property
    def rank(self) -> int:
        """Numerical rank of X, decided on standardised neurons (scale-free, like CCA)."""
        # Repeated rows leave rank m - 1 < n - 1 at most: the certificate cannot hold.
        if (
            self.gram_route
            and self.repeats is None
            and gram_has_full_rank(self.gram, self.scale, self.rank_tol, self.backend)
        ):
            return self.n - 1  # the most centred data can have; CCA is then degenerate
        return self.basis(standardized=True).rank

    def variance_rank(self, fraction: float) -> int:
        """Fewest leading principal directions whose variance reaches ``fraction`` of the total."""
        variance = self.basis(standardized=False).singular_values ** 2
        if not len(variance):
            return 0
        cumulative = np.cumsum(variance) / variance.sum()
        return int(min(np.searchsorted(cumulative, fraction - 1e-12) + 1, len(variance)))

    def variance_rank_bound(self, fraction: float) -> int:
        """A lower bound on :meth:`variance_rank` from the trace T and ``‖XᵀX‖²_F`` = F alone
        (no eigendecomposition): k leading variances sum to at most ``sqrt(k F)`` (Cauchy-
        Schwarz), and must reach ``fraction × T``, so ``k >= (fraction T)² / F``."""
        frobenius_sq = self.self_hsic**2
        if not frobenius_sq > 0.0:
            return 0
        # variance_rank sums only eigenvalues above rank_tol × the largest (<= sqrt(F)), and
        # compares cumulative fractions with a 1e-12 slack; the 1e-9 covers rounding.
        total = self.trace - min(self.n, self.p) * self.rank_tol * math.sqrt(frobenius_sq)
        share = max(fraction - 1e-12, 0.0) * max(total, 0.0)
        return int(math.floor(share * share / frobenius_sq * (1.0 - 1e-9)))

    @cached_property
    def sq_distances(self) -> np.ndarray:
        """Squared Euclidean distances between samples (n × n), ``G_ii + G_jj − 2 G_ij`` from
        the Gram matrix (clipped at 0 against rounding, exact 0 on the diagonal). Needs the
        kept data.

        Where rows repeat (a bootstrap draw), the distances are those of the distinct rows,
        made symmetric and spread to every copy: the distances from copies of one sample are
        then equal bit for bit, ties that RSA's ranks average and k-NN orders by index, as
        they are in exact arithmetic (from the Gram matrix itself, rounding would break them
        by the copies' positions)."""
        if (carried := self._carried("sq_distances")) is not None:
            return carried
        gram = self.gram
        if self.repeats is not None:
            first, inverse = self.repeats.first, self.repeats.inverse
            gram = gram[np.ix_(first, first)]
            gram = (gram + gram.T) / 2
        diag = np.diag(gram).copy()
        distances = diag[:, None] + diag[None, :] - 2.0 * gram
        np.maximum(distances, 0.0, out=distances)
        np.fill_diagonal(distances, 0.0)
        if self.repeats is not None:
            distances = distances[np.ix_(inverse, inverse)]
        return distances

    def neighbours(self, k: int) -> np.ndarray:
        """Each sample's ``k`` nearest other samples (n × k indices, nearest first; equal
        distances ordered by sample index)."""
        cached = self.__dict__.setdefault("_neighbours", {})
        if k not in cached:
            distances = self.sq_distances.copy()
            np.fill_diagonal(distances, np.inf)
            cached[k] = nearest(distances, k)
        return cached[k]

    @cached_property
    def distance_ranks(self) -> np.ndarray:
        """The representational dissimilarity matrix as RSA compares it: n × n, symmetric,
        entry (i, j) the rank (1-based, ties averaged) of the distance between samples i and j
        among all pairs i < j (the diagonal is unused)."""
        if (carried := self._carried("distance_ranks")) is not None:
            return carried
        upper = upper_mask(self.n)
        ranks = np.zeros((self.n, self.n))
        ranks[upper] = average_ranks(self.sq_distances[upper])
        ranks += ranks.T
        return ranks

    @cached_property
    def distance_rank_profile(self) -> np.ndarray | None:
        """The ranks of :attr:`distance_ranks` over the pairs i < j, centred and scaled to
        unit norm (so RSA of two layers is one dot product); None when every distance is
        equal."""
        profile = self.distance_ranks[upper_mask(self.n)]
        profile -= profile.mean()
        norm = float(np.sqrt(profile @ profile))
        return profile / norm if norm > 0.0 else None

    # Cached values that do not depend on the order of the samples.
    _ORDER_FREE = ("cov", "trace", "self_hsic", "self_hsic_unbiased", "scale", "rank")

    def reordered(self, rows: np.ndarray) -> LayerFactors:
        """This layer with its samples in the order ``rows`` (a permutation of them), for
        permutation tests: what the order does not change (covariance, norms, rank, spectra) is
        shared, what it does (data, row norms, Gram matrix, left singular vectors, kernels) is
        permuted, so no factor is computed again. Needs the kept data."""
        if self.stats.data is None:
            raise ValueError("reordering a layer's samples needs its kept data")
        stats = replace(self.stats, data=self.stats.data[rows], row_sq=self.stats.row_sq[rows])
        moved = LayerFactors(stats, self.rank_tol)
        cached = self.__dict__
        for name in self._ORDER_FREE:
            if name in cached:
                moved.__dict__[name] = cached[name]
        # n × n matrices are permuted on first use only (a draw rarely needs all of them)
        moved.__dict__["_pending"] = {
            name: (cached[name], rows)
            for name in ("gram", "sq_distances", "distance_ranks")
            if name in cached
        }
        if "_neighbours" in cached:
            # sample i of the moved layer is sample rows[i]: its neighbours, renumbered (equal
            # distances stay ordered as in the original order)
            renumber = np.empty_like(rows)
            renumber[rows] = np.arange(len(rows))
            moved.__dict__["_neighbours"] = {
                k: renumber[near[rows]] for k, near in cached["_neighbours"].items()
            }
        if "_bases" in cached:
            moved.__dict__["_bases"] = {k: b.reordered(rows) for k, b in cached["_bases"].items()}
        for sigma, (kernel, reason) in cached.get("_rbf", {}).items():
            moved.__dict__["_pending"][sigma] = ((kernel, reason), rows)
        return moved

    def _carried(self, name):
        """A sample-indexed n × n matrix (or an RBF kernel and its reason, under its σ factor)
        of the layer this one was reordered from, permuted now; None if there is none."""
        pending = self.__dict__.get("_pending", {})
        if name not in pending:
            return None
        matrix, rows = pending.pop(name)
        if isinstance(matrix, tuple):  # an RBF kernel (on the backend's device) and its reason
            kernel, reason = matrix
            return (None if kernel is None else kernel[rows][:, rows], reason)
        return matrix[np.ix_(rows, rows)]

    def rbf_kernel(self, sigma_factor: float) -> tuple[object | None, str]:
        """Centred RBF kernel ``H K H`` with ``σ² = sigma_factor² ×`` the median squared
        distance between distinct samples (Kornblith et al.'s rule, without the diagonal's
        zeros); or None and a reason. The kernel stays on the backend's device."""
        cached = self.__dict__.setdefault("_rbf", {})
        if sigma_factor not in cached and (carried := self._carried(sigma_factor)) is not None:
            cached[sigma_factor] = carried
        if sigma_factor not in cached:
            if not self.has_data:
                cached[sigma_factor] = (
                    None,
                    "the RBF kernel needs the n × n Gram matrix, which this layer did not keep "
                    "(n above pairwise_max_samples)",
                )
            else:
                # Layers on the covariance route need their Gram matrix only for this kernel,
                # which is then built in its memory (recomputed if anything asks again).
                consume = not self.gram_route
                gram = self.gram
                if consume:
                    del self.__dict__["gram"]
                kernel = self.backend.rbf_kernel(gram, sigma_factor, overwrite=consume)
                del gram
                reason = "median squared distance between samples is 0" if kernel is None else ""
                cached[sigma_factor] = (kernel, reason)
        return cached[sigma_factor]


def upper_mask(n: int) -> np.ndarray:
    """n × n booleans, true at the pairs i < j of n samples (row by row: the order of
    ``np.triu_indices``; a boolean mask reads them several times faster than those indices)."""
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, tied values given the mean of their ranks
    (``scipy.stats.rankdata``'s default, exactly: every rank is a multiple of 1/2). Ties are
    averaged, so any sort order serves: numpy's default sort is several times faster than
    the stable sort that scipy uses."""
    order = np.argsort(values)
    ordered = values[order]
    if len(values) and np.isnan(ordered[-1]):  # sorted last: as rankdata, NaN everywhere
        return np.full(len(values), np.nan)
    starts_group = np.empty(len(values), dtype=bool)
    starts_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    start = np.flatnonzero(starts_group)
    end = np.append(start[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((start + end + 1) / 2, end - start)
    return ranks


def nearest(distances: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` smallest entries' columns, smallest first, equal values by column:
    ``np.argsort(distances, axis=1, kind="stable")[:, :k]``, exactly, without sorting whole
    rows. A partial partition finds each row's k smallest; only rows where values equal to
    the k-th smallest lie beyond it (the partition's choice among them would be arbitrary)
    are sorted in full."""
    n_rows, n_cols = distances.shape
    if k >= n_cols:
        return np.argsort(distances, axis=1, kind="stable")[:, :k]
    chosen = np.argpartition(distances, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(distances, chosen, axis=1)
    kth = values.max(axis=1, keepdims=True)
    order = np.lexsort((chosen, values), axis=1)  # by value, then by column
    chosen = np.take_along_axis(chosen, order, axis=1)
    ambiguous = np.flatnonzero((distances <= kth).sum(axis=1) > k)
    if len(ambiguous):
        chosen[ambiguous] = np.argsort(distances[ambiguous], axis=1, kind="stable")[:, :k]
    return chosen


def unbiased_hsic(kl: float, ab: float, trace_a: float, trace_b: float, n: int) -> float:
    """Song et al. (2012) unbiased HSIC of linear kernels of centred X, Y, from
    ``kl = ⟨XXᵀ, YYᵀ⟩``, ``ab = Σ_i ‖x_i‖²‖y_i‖²`` and the traces. On centred data
    ``1ᵀK̃1 = −tr K`` and ``K̃1 = −diag K``, which reduces the estimator to these terms."""
    if n < 4:
        return float("nan")
    return (kl - ab * n / (n - 2) + trace_a * trace_b / ((n - 1) * (n - 2))) / (n * (n - 3))


@dataclass
class PairFactors:
    """Products of two layers' factors, computed once and shared by the metrics of the pair."""

    a: LayerFactors
    b: LayerFactors
    streamed_cross: np.ndarray | None = None  # XᵀY accumulated while streaming, if any
    # Compute canonical directions with the first SVD (set when PWCCA will ask for them, so
    # mean CCA and PWCCA share one SVD).
    keep_directions: bool = False

    def __post_init__(self) -> None:
        if self.a.n != self.b.n:
            raise ValueError(
                f"representations have different sample counts: {self.a.n} and {self.b.n}"
            )
        if self.a.backend is not self.b.backend:
            raise ValueError(
                f"layers on different backends: {self.a.backend.name} and {self.b.backend.name}"
            )

    @property
    def n(self) -> int:
        return self.a.n

    @property
    def backend(self):
        return self.a.backend

    @property
    def both_gram(self) -> bool:
        return (
            self.streamed_cross is None
            and self.a.has_data
            and self.b.has_data
            and (self.a.gram_route or self.b.gram_route)
        )

    @property
    def float32_products(self) -> bool:
        return self.a.stats.float32_products or self.b.stats.float32_products

    @cached_property
    def cross(self) -> np.ndarray:
        """``XᵀY`` (p1 × p2): streamed, or formed from the kept data."""
        if self.streamed_cross is not None:
            return self.streamed_cross
        if self.a.has_data and self.b.has_data:
            return product(
                self.a.stats.data, self.b.stats.data, self.float32_products, self.backend
            )
        raise ValueError("XᵀY was neither streamed nor can be formed from kept data")

    @cached_property
    def cross_hsic(self) -> float:
        """``‖XᵀY‖_F² = ⟨XXᵀ, YYᵀ⟩_F``: via the n × n Grams when both layers have them and
        that is cheaper than the p1 × p2 cross-product, counting a Gram matrix that must be
        formed (again: an RBF kernel may have been built in its memory) at n² p."""
        n, pa, pb = self.n, self.a.p, self.b.p
        if self.streamed_cross is None and self.a.has_data and self.b.has_data and pa * pb > n * n:
            to_form = sum(n * n * layer.p for layer in (self.a, self.b) if not layer.has_gram)
            if to_form <= 2 * n * pa * pb:
                return float(np.vdot(self.a.gram, self.b.gram))
        return float(np.vdot(self.cross, self.cross))

    @cached_property
    def nuclear_norm(self) -> float:
        """``‖XᵀY‖_*`` (NBS and the Procrustes angle)."""
        if self.both_gram and self.a.gram_route and self.b.gram_route and not self.float32_products:
            # ‖XᵀY‖_* = ‖diag(s_a) U_aᵀ U_b diag(s_b)‖_*, from the Gram eigendecompositions. Not
            # from float32 Grams: their eigenvalue noise (1e-7 of the largest) would become
            # singular values of 3e-4 in the square root, while XᵀY's stay float32-accurate.
            s_a = self.a.basis(standardized=False).singular_values
            s_b = self.b.basis(standardized=False).singular_values
            core = (s_a[:, None] * self.whitened_cross(standardized=False)) * s_b
        else:
            core = self.cross
        return float(singular_values(core, backend=self.backend)[0].sum())

    @cached_property
    def row_sq_product(self) -> float:
        return float(self.a.row_sq @ self.b.row_sq)

    def whitened_cross(
        self, standardized: bool, ka: int | None = None, kb: int | None = None
    ) -> np.ndarray:
        """``Q_aᵀ Q_b`` (ka × kb) for orthonormal bases of the leading ka, kb principal
        directions: its singular values are the canonical correlations."""
        basis_a, basis_b = self.a.basis(standardized), self.b.basis(standardized)
        if self.both_gram and self.a.gram_route and self.b.gram_route:
            return self.backend.matmul(basis_a.left_vectors[:, :ka].T, basis_b.left_vectors[:, :kb])
        return basis_b.whiten(basis_a.whiten(self.cross, ka).T, kb).T

    def canonical(
        self,
        standardized: bool = True,
        ka: int | None = None,
        kb: int | None = None,
        directions: bool = False,
    ):
        """Canonical correlations (descending, clipped to [0, 1] against rounding) and, with
        ``directions``, the left singular vectors (canonical directions in the first layer's
        orthonormal basis; else None). Cached: metrics of a pair share one SVD, and a cached
        SVD with vectors also serves a request without them."""
        cache = self.__dict__.setdefault("_canonical", {})
        key = (standardized, ka, kb)
        if key not in cache or (directions and cache[key][1] is None):
            matrix = self.whitened_cross(standardized, ka, kb)
            # keep_directions serves PWCCA, whose directions are the full standardised CCA's;
            # SVCCA's truncated CCA never needs vectors.
            keep = self.keep_directions and key == (True, None, None)
            rho, u = singular_values(matrix, directions or keep, self.backend)
            cache[key] = (np.clip(rho, 0.0, 1.0), u)
        return cache[key]
