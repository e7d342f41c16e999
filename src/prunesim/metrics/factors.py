"""Per-layer factors and per-pair products that every metric is computed from.

A representation is an ``n × p`` matrix (rows = samples). It is converted to float64, centred
column-wise, and its dead (zero-variance) neurons are dropped with an explicit tolerance and
counted. The factors that metrics need — the covariance ``XᵀX``, the Gram matrix ``XXᵀ``, the
whitening basis for CCA — are computed lazily and once per layer, and shared by every layer pair
and metric of a comparison; the cross-product ``XᵀY`` is computed once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

DEAD_TOL = 1e-6  # a neuron is dead if its std <= DEAD_TOL * the layer's largest neuron std
RANK_TOL = 1e-10  # covariance eigenvalues <= RANK_TOL * the largest are treated as zero
CONSTANT_RTOL = 1e-12  # std <= CONSTANT_RTOL * |mean| is rounding residue of a constant neuron


def as_float64_matrix(x) -> np.ndarray:
    """numpy or torch ``n × p`` array (any float dtype) -> float64 numpy array."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"a representation must be a 2-D n × p array, got shape {x.shape}")
    return x


@dataclass
class LayerFactors:
    """A centred representation with its dead neurons removed, and its cached factors."""

    x: np.ndarray  # centred, float64, n × p (live neurons only)
    dead: int  # neurons dropped for zero variance
    dead_tol: float = DEAD_TOL
    rank_tol: float = RANK_TOL

    @classmethod
    def from_array(cls, x, dead_tol: float = DEAD_TOL, rank_tol: float = RANK_TOL) -> LayerFactors:
        x = as_float64_matrix(x)
        mean = x.mean(axis=0, keepdims=True) if x.shape[0] else np.zeros((1, x.shape[1]))
        x = x - mean
        std = np.sqrt((x * x).mean(axis=0)) if x.shape[0] else np.zeros(x.shape[1])
        # Dead: negligible next to the layer's largest neuron, or below the rounding residue
        # that centring leaves on a constant column (which is not exactly zero in float64).
        largest = std.max(initial=0.0)
        live = (std > dead_tol * largest) & (std > CONSTANT_RTOL * np.abs(mean[0]))
        return cls(np.ascontiguousarray(x[:, live]), int((~live).sum()), dead_tol, rank_tol)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def p(self) -> int:
        return self.x.shape[1]

    @property
    def constant(self) -> bool:
        """No live neuron: every metric is undefined."""
        return self.p == 0

    @property
    def prefer_gram(self) -> bool:
        """Gram (n × n) products are cheaper than feature (p × p) products when p > n."""
        return self.p > self.n

    @cached_property
    def cov(self) -> np.ndarray:
        """Uncentred-by-n covariance ``XᵀX`` (p × p)."""
        return self.x.T @ self.x

    @cached_property
    def gram(self) -> np.ndarray:
        """Linear-kernel Gram matrix ``XXᵀ`` (n × n) of the centred data (hence centred)."""
        return self.x @ self.x.T

    @cached_property
    def self_hsic(self) -> float:
        """``‖XᵀX‖_F = ‖XXᵀ‖_F``, from whichever matrix is smaller."""
        return float(np.linalg.norm(self.gram if self.prefer_gram else self.cov))

    @cached_property
    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Non-negligible eigenpairs of ``XᵀX`` (p <= n) or ``XXᵀ`` (p > n): eigenvalues
        <= rank_tol × the largest are dropped, so their count is the numerical rank."""
        evals, evecs = np.linalg.eigh(self.gram if self.prefer_gram else self.cov)
        keep = evals > self.rank_tol * max(evals.max(initial=0.0), 0.0)
        return evals[keep], evecs[:, keep]

    @property
    def rank(self) -> int:
        return len(self.spectrum[0])

    @cached_property
    def whitener(self) -> np.ndarray:
        """``V_r Λ_r^{-1/2}`` (p × r): ``X @ whitener`` has orthonormal columns (p <= n only)."""
        if self.prefer_gram:
            raise ValueError("the feature-space whitener is only formed for p <= n")
        evals, evecs = self.spectrum
        return evecs / np.sqrt(evals)

    @cached_property
    def basis(self) -> np.ndarray:
        """Orthonormal basis (n × r) of the column space of X."""
        return self.spectrum[1] if self.prefer_gram else self.x @ self.whitener


@dataclass
class PairFactors:
    """Products of two layers' factors, computed once and shared by the metrics of the pair."""

    a: LayerFactors
    b: LayerFactors

    def __post_init__(self) -> None:
        if self.a.n != self.b.n:
            raise ValueError(
                f"representations have different sample counts: {self.a.n} and {self.b.n}"
            )

    @property
    def n(self) -> int:
        return self.a.n

    @property
    def prefer_gram(self) -> bool:
        """Compare via n × n Grams when forming the p1 × p2 cross-product costs more."""
        return self.a.p * self.b.p > self.n * self.n

    @cached_property
    def cross(self) -> np.ndarray:
        """``XᵀY`` (p1 × p2)."""
        return self.a.x.T @ self.b.x

    @cached_property
    def cross_hsic(self) -> float:
        """``‖XᵀY‖_F² = ⟨XXᵀ, YYᵀ⟩_F``, from the cheaper side."""
        if self.prefer_gram:
            return float(np.vdot(self.a.gram, self.b.gram))
        return float(np.vdot(self.cross, self.cross))

    @cached_property
    def canonical_correlations(self) -> np.ndarray:
        """All min(r_a, r_b) canonical correlations, descending, clipped to [0, 1] against
        rounding: singular values of ``W_aᵀ XᵀY W_b`` (feature space, reusing the pair's
        cross-product) or of ``Q_aᵀ Q_b`` (orthonormal bases, where a layer has p > n)."""
        if self.a.prefer_gram or self.b.prefer_gram:
            m = self.a.basis.T @ self.b.basis
        else:
            m = self.a.whitener.T @ self.cross @ self.b.whitener
        rho = np.linalg.svd(m, compute_uv=False)
        return np.clip(rho, 0.0, 1.0)
