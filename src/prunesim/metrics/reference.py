"""The metrics in their textbook forms: dense n × n matrices, written from the papers' formulas
and sharing no code with the streamed library (nothing here imports it).

The tests check the library against these (to 1e-10 or better) and ``benchmarks/metrics.py``
times them as baselines. They hold every n × n matrix in memory: for small problems only.
"""

from __future__ import annotations

import math

import numpy as np


def centring_matrix(n: int) -> np.ndarray:
    """``H = I − 11ᵀ/n``."""
    return np.eye(n) - np.ones((n, n)) / n


def centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


def centred_grams(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``HXXᵀH`` and ``HYYᵀH`` with the explicit centring matrix."""
    h = centring_matrix(len(x))
    return h @ (x @ x.T) @ h, h @ (y @ y.T) @ h


def cka_linear(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) in Gram space: HSIC(K, L) = tr(KHLH) = ⟨HKH, HLH⟩."""
    k, l_ = centred_grams(x, y)
    return float(np.vdot(k, l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


def unbiased_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    """Song et al. (2012), eq. 5, in full: K̃, L̃ are the Gram matrices with zeroed diagonals,
    HSIC_1 = [tr(K̃L̃) + 1ᵀK̃1 1ᵀL̃1 / ((n-1)(n-2)) - 2/(n-2) 1ᵀK̃L̃1] / (n(n-3))."""
    n = len(k)
    kt, lt = k - np.diag(np.diag(k)), l_ - np.diag(np.diag(l_))
    one = np.ones(n)
    return float(
        (
            np.vdot(kt, lt)
            + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ kt @ lt @ one)
        )
        / (n * (n - 3))
    )


def cka_debiased(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased CKA: CKA with Song et al.'s unbiased HSIC of the linear Gram matrices (of the
    centred data; the U-statistic is the same for the raw data, up to rounding)."""
    x, y = centred(x), centred(y)
    k, l_ = x @ x.T, y @ y.T
    return unbiased_hsic(k, l_) / math.sqrt(unbiased_hsic(k, k) * unbiased_hsic(l_, l_))


def psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; eigenvalues below 1e-10 × the largest (rounding
    residue of exact zeros) are set to zero first."""
    evals, evecs = np.linalg.eigh((m + m.T) / 2)
    evals = np.where(evals > 1e-10 * evals.max(), evals, 0.0)
    return (evecs * np.sqrt(evals)) @ evecs.T


def nbs(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised Bures similarity of the centred Gram matrices K, L (n × n):
    tr((K^½ L K^½)^½) / √(tr K tr L)."""
    k, l_ = centred_grams(x, y)
    k_half = psd_sqrt(k)
    fidelity = np.trace(psd_sqrt(k_half @ l_ @ k_half))
    return float(fidelity / math.sqrt(np.trace(k) * np.trace(l_)))


def squared_distances(a: np.ndarray, from_differences: bool = False) -> np.ndarray:
    """``d_ij²`` of the rows of ``a``: from the Gram matrix (``‖a_i‖² + ‖a_j‖² − 2⟨a_i, a_j⟩``,
    clipped at 0), or from the differences themselves (n × n × p memory: tiny inputs only)."""
    if from_differences:
        return ((a[:, None, :] - a[None, :, :]) ** 2).sum(axis=-1)
    sq = (a * a).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * a @ a.T, 0.0)


def cka_rbf(
    x: np.ndarray, y: np.ndarray, rbf_sigma: float = 1.0, from_differences: bool = False
) -> float:
    """RBF CKA with K_ij = exp(−d_ij² / (2σ²)), σ² = rbf_sigma² × the median over pairs i < j
    of the *squared* distances (which equals (rbf_sigma × median distance)² only when the
    number of pairs is odd)."""

    def centred_kernel(a: np.ndarray) -> np.ndarray:
        sq = squared_distances(a, from_differences)
        median_sq = np.median(sq[np.triu_indices(len(a), k=1)])
        h = centring_matrix(len(a))
        return h @ np.exp(-sq / (2.0 * rbf_sigma**2 * median_sq)) @ h

    k, l_ = centred_kernel(x), centred_kernel(y)
    return float(np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_)))


def canonical(qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical correlations (descending) of two orthonormal bases, and the canonical
    variates h_i = Q_x u_i of the first."""
    u, rho, _ = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return rho, qx @ u[:, : len(rho)]


def svd_basis(x: np.ndarray, variance: float | None = None, rank_rtol: float = 1e-5):
    """An orthonormal basis of the centred columns of ``x`` (singular values above
    ``rank_rtol`` × the largest); with ``variance``, only the fewest leading directions whose
    squared singular values reach that fraction of the total (SVCCA's first step)."""
    u, s, _ = np.linalg.svd(centred(x), full_matrices=False)
    keep = s > rank_rtol * s[0]
    u, s = u[:, keep], s[keep]
    if variance is not None:
        share = np.cumsum(s**2) / np.sum(s**2)
        u = u[:, : int(np.searchsorted(share, variance - 1e-12)) + 1]
    return u


def pwcca_from_bases(x: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> float:
    """PWCCA (Morcos et al. 2018) with bases of X and Y given: α_i = Σ_j |⟨h_i, x_j⟩| over
    the centred neurons x_j of X."""
    rho, h = canonical(qx, qy)
    alpha = np.abs(h.T @ centred(x)).sum(axis=1)
    return float(alpha @ rho / alpha.sum())


def cca_mean(x: np.ndarray, y: np.ndarray) -> float:
    return float(canonical(svd_basis(x), svd_basis(y))[0].mean())


def svcca(x: np.ndarray, y: np.ndarray, variance: float = 0.99) -> float:
    return float(canonical(svd_basis(x, variance), svd_basis(y, variance))[0].mean())


def pwcca(x: np.ndarray, y: np.ndarray) -> float:
    return pwcca_from_bases(x, svd_basis(x), svd_basis(y))


def procrustes(x: np.ndarray, y: np.ndarray) -> float:
    """The angle between the centred, unit-norm representations after scipy's best rotation
    of one onto the other (both zero-padded to a common width, so that it is square)."""
    from scipy.linalg import orthogonal_procrustes

    n, width = len(x), max(x.shape[1], y.shape[1])
    padded = []
    for data in (centred(x), centred(y)):
        full = np.zeros((n, width))
        full[:, : data.shape[1]] = data
        padded.append(full / np.linalg.norm(full))
    rotation, _ = orthogonal_procrustes(*padded)
    return math.acos(min(float(np.sum((padded[0] @ rotation) * padded[1])), 1.0))


def knn_jaccard(x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """Mean Jaccard index of each sample's k nearest other samples, found by scikit-learn."""
    from sklearn.neighbors import NearestNeighbors

    def neighbour_sets(data):
        found = NearestNeighbors(n_neighbors=k + 1).fit(data).kneighbors(data)[1]
        return [set(row) - {i} if i in row else set(row[:k]) for i, row in enumerate(found)]

    pairs = zip(neighbour_sets(x), neighbour_sets(y), strict=True)
    return float(np.mean([len(a & b) / len(a | b) for a, b in pairs]))


def rsa_spearman(x: np.ndarray, y: np.ndarray) -> float:
    """scipy's Spearman correlation of scipy's pairwise Euclidean distances."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    return float(spearmanr(pdist(x), pdist(y)).statistic)


REFERENCES = {
    "cca_mean": cca_mean,
    "svcca": svcca,
    "pwcca": pwcca,
    "cka_linear": cka_linear,
    "cka_rbf": cka_rbf,
    "cka_debiased": cka_debiased,
    "nbs": nbs,
    "procrustes": procrustes,
    "knn_jaccard": knn_jaccard,
    "rsa_spearman": rsa_spearman,
}
