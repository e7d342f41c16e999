"""Per-layer factors and per-pair products that every metric is computed from.

A :class:`LayerFactors` wraps one layer's streamed statistics (:class:`LayerStats`) and derives,
lazily and once, what the metrics need: Frobenius norms, the trace, the eigendecomposition of
``XᵀX`` (p <= n) or of the Gram matrix ``XXᵀ`` (p > n), whitening maps, RBF kernels. These
are shared by every layer pair and every metric of a comparison. A :class:`PairFactors` holds
the one cross-product ``XᵀY`` of a pair (streamed, or formed from kept data) and the canonical
correlation analysis derived from it.

Notation: X is n × p, centred, live neurons only; ``X = U diag(s) Vᵀ`` its thin SVD truncated
to the numerical rank r (singular values s > sqrt(rank_tol) × the largest).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from prunesim.metrics.stats import LayerStats

RANK_TOL = 1e-10  # eigenvalues of XᵀX (or XXᵀ) <= RANK_TOL × the largest are treated as zero


@dataclass
class LayerFactors:
    stats: LayerStats
    rank_tol: float = RANK_TOL

    @property
    def n(self) -> int:
        return self.stats.n

    @property
    def p(self) -> int:
        return self.stats.p

    @property
    def dead(self) -> int:
        return self.stats.dead

    @property
    def constant(self) -> bool:
        """No live neuron (or no sample): every metric is undefined."""
        return self.p == 0 or self.n < 2

    @property
    def has_data(self) -> bool:
        return self.stats.data is not None

    @property
    def gram_route(self) -> bool:
        """Work with the n × n Gram matrix instead of the p × p covariance (p > n)."""
        return self.stats.cov is None and self.p > self.n

    @cached_property
    def cov(self) -> np.ndarray:
        """``XᵀX`` (p × p)."""
        if self.stats.cov is not None:
            return self.stats.cov
        return self.stats.data.T @ self.stats.data

    @cached_property
    def gram(self) -> np.ndarray:
        """``XXᵀ`` (n × n), the centred linear-kernel Gram matrix. Needs the kept data."""
        if self.stats.data is None:
            raise ValueError("this layer kept no data: its Gram matrix is not available")
        return self.stats.data @ self.stats.data.T

    @property
    def row_sq(self) -> np.ndarray:
        return self.stats.row_sq

    @cached_property
    def trace(self) -> float:
        """``tr XᵀX = tr XXᵀ = Σ_i ‖x_i‖²``."""
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
    def _eigen(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-negligible eigenpairs (descending) of XᵀX (feature route) or XXᵀ (Gram route)."""
        evals, evecs = np.linalg.eigh(self.gram if self.gram_route else self.cov)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        keep = evals > self.rank_tol * max(evals[0] if len(evals) else 0.0, 0.0)
        return evals[keep], evecs[:, keep]

    @property
    def rank(self) -> int:
        return len(self._eigen[0])

    @cached_property
    def singular_values(self) -> np.ndarray:
        """s (length r, descending)."""
        return np.sqrt(self._eigen[0])

    @cached_property
    def right_vectors(self) -> np.ndarray:
        """V (p × r): principal directions in neuron space."""
        if not self.gram_route:
            return self._eigen[1]
        return self.stats.data.T @ (self._eigen[1] / self.singular_values)

    @cached_property
    def left_vectors(self) -> np.ndarray:
        """U (n × r): orthonormal basis of the column space of X (Gram route only)."""
        if not self.gram_route:
            raise ValueError("U is only formed on the Gram route (p > n)")
        return self._eigen[1]

    def whitener(self, k: int | None = None) -> np.ndarray:
        """``M = V_k diag(1/s_k)`` (p × k): ``X M`` has orthonormal columns. ``k`` keeps the
        leading k directions (SVCCA); ``None`` keeps all r."""
        k = self.rank if k is None else k
        return self.right_vectors[:, :k] / self.singular_values[:k]

    def variance_rank(self, fraction: float) -> int:
        """Fewest leading directions whose variance is at least ``fraction`` of the total."""
        variance = self._eigen[0]
        if not len(variance):
            return 0
        cumulative = np.cumsum(variance) / variance.sum()
        return int(min(np.searchsorted(cumulative, fraction - 1e-12) + 1, len(variance)))

    def rbf_kernel(self, sigma_factor: float) -> tuple[np.ndarray | None, str]:
        """Centred RBF kernel ``H K H`` with bandwidth σ = sigma_factor × median pairwise
        distance between distinct samples, and its Frobenius norm; or None and a reason."""
        cached = self.__dict__.setdefault("_rbf", {})
        if sigma_factor not in cached:
            if not self.has_data:
                cached[sigma_factor] = (
                    None,
                    "the RBF kernel needs the n × n Gram matrix, which "
                    "this layer did not keep (n above rbf_max_samples)",
                )
            else:
                gram = self.gram
                sq = np.diag(gram)
                dist = np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0.0)
                median = float(np.median(dist[np.triu_indices(self.n, k=1)]))
                if median <= 0.0:
                    cached[sigma_factor] = (None, "median pairwise distance is zero")
                else:
                    kernel = np.exp(-dist / (2.0 * sigma_factor**2 * median))
                    kernel -= kernel.mean(axis=0, keepdims=True)
                    kernel -= kernel.mean(axis=1, keepdims=True)
                    cached[sigma_factor] = (kernel, "")
        return cached[sigma_factor]


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

    def __post_init__(self) -> None:
        if self.a.n != self.b.n:
            raise ValueError(
                f"representations have different sample counts: {self.a.n} and {self.b.n}"
            )

    @property
    def n(self) -> int:
        return self.a.n

    @property
    def both_gram(self) -> bool:
        return (
            self.streamed_cross is None
            and self.a.has_data
            and self.b.has_data
            and (self.a.gram_route or self.b.gram_route)
        )

    @cached_property
    def cross(self) -> np.ndarray:
        """``XᵀY`` (p1 × p2): streamed, or formed from the kept data."""
        if self.streamed_cross is not None:
            return self.streamed_cross
        if self.a.has_data and self.b.has_data:
            return self.a.stats.data.T @ self.b.stats.data
        raise ValueError("XᵀY was neither streamed nor can be formed from kept data")

    @cached_property
    def cross_hsic(self) -> float:
        """``‖XᵀY‖_F² = ⟨XXᵀ, YYᵀ⟩_F``: via the n × n Grams when both layers have them and
        that is cheaper than the p1 × p2 cross-product."""
        n, pa, pb = self.n, self.a.p, self.b.p
        if self.streamed_cross is None and self.a.has_data and self.b.has_data and pa * pb > n * n:
            return float(np.vdot(self.a.gram, self.b.gram))
        return float(np.vdot(self.cross, self.cross))

    @cached_property
    def row_sq_product(self) -> float:
        return float(self.a.row_sq @ self.b.row_sq)

    def whitened_cross(self, ka: int | None = None, kb: int | None = None) -> np.ndarray:
        """``Q_aᵀ Q_b`` (ka × kb) for orthonormal bases of the leading ka, kb principal
        directions: its singular values are the canonical correlations."""
        if self.both_gram and self.a.gram_route and self.b.gram_route:
            ka = self.a.rank if ka is None else ka
            kb = self.b.rank if kb is None else kb
            return self.a.left_vectors[:, :ka].T @ self.b.left_vectors[:, :kb]
        return self.a.whitener(ka).T @ self.cross @ self.b.whitener(kb)

    def canonical(self, ka: int | None = None, kb: int | None = None):
        """Canonical correlations (descending, clipped to [0, 1] against rounding) and the
        left singular vectors (canonical directions in the first layer's whitened basis)."""
        u, rho, _ = np.linalg.svd(self.whitened_cross(ka, kb), full_matrices=False)
        return np.clip(rho, 0.0, 1.0), u
