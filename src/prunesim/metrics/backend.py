"""Where the metrics' heavy linear algebra runs: numpy (OpenBLAS) on the CPU, or torch on a device.

The metrics code (:mod:`prunesim.metrics.factors`, :mod:`prunesim.metrics`) is written once.
It hands every operation whose cost grows with n, p or p² (data products, matrix products,
eigendecompositions, Cholesky factors, SVDs, RBF kernels) to a backend; what is left (vectors,
scalars, the rank and variance decisions) stays numpy. Both backends compute in float64 and
return numpy arrays, except RBF kernels, which stay where they were made (n × n, shared by
every pair of a comparison) and are only ever reduced there.

``device``: ``"cpu"`` is numpy (faster than torch's CPU eigensolver where it was measured;
``benchmarks/metrics.py --device torch:cpu`` compares the two on your machine); ``"cuda"`` /
``"cuda:N"`` is torch on that GPU; ``"auto"`` a GPU when torch sees one, else numpy. ``"torch:cpu"`` runs the torch code on the CPU, so the GPU
code path is tested on machines without one.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import scipy.linalg
from threadpoolctl import ThreadpoolController

from prunesim.device import check_setting, check_visible, resolve

FLOAT32_BLOCK = 1024  # summation length of one float32 product; the blocks are summed in float64
MEDIAN_GATHER_MAX = 1_000_000  # above this many pairs the RBF median brackets, then selects
KERNEL_ROW_BLOCK = 128  # rows of an n × n kernel processed at once (n = 10,000: 10 MB, in cache)
TORCH_CPU = "torch:cpu"  # the metrics' test-only device, besides prunesim.device's words
# Cholesky factorisations up to this size run on one BLAS thread (see NumpyBackend.cholesky_inverse)
SINGLE_THREAD_CHOLESKY_MAX = 2048


@functools.cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


def _float32_blocks(a, b, matmul, cast, add):
    """``aᵀb`` formed over blocks of ``FLOAT32_BLOCK`` rows in float32, summed in float64, so the
    float32 rounding stays near 1e-7 relative instead of growing with the number of rows."""
    total = None
    for start in range(0, len(a), FLOAT32_BLOCK):
        block_a = cast(a[start : start + FLOAT32_BLOCK])
        block_b = block_a if b is a else cast(b[start : start + FLOAT32_BLOCK])
        block = matmul(block_a, block_b)
        total = block if total is None else add(total, block)
    return total


def _upper_triangle_median(matrix: np.ndarray) -> float:
    """numpy's median (the mean of the two middle values for an even count) of the entries
    above the diagonal, without gathering them all (0.4 GB at n = 10,000).

    Every ``step``-th row's entries are an unbiased sample of the triangle; its 49th and
    51st percentiles bracket the median, which one pass confirms by counting the entries
    below the bracket and keeping those inside it. If the bracket missed (the count says
    so), all entries are gathered: the result is exact either way."""
    n = len(matrix)
    count = n * (n - 1) // 2
    if count == 0:
        return 0.0
    rows = [matrix[i, i + 1 :] for i in range(n - 1)]
    if count > MEDIAN_GATHER_MAX:
        step = max(1, n // 200)
        lo, hi = np.quantile(np.concatenate(rows[::step]), [0.49, 0.51])
        median = bracketed_median(lambda: rows, count, lo, hi)
        if median is not None:
            return median
    upper = np.concatenate(rows)
    return float(np.median(upper, overwrite_input=True))


def bracketed_median(chunks, count: int, low: float, high: float) -> float | None:
    """numpy's median (the mean of the two middle values for an even count) of the ``count``
    values that ``chunks()`` yields in arrays, found in one pass that counts the values below
    ``low`` and keeps those in ``[low, high]``; None when the median is not in the bracket
    (the counts say so)."""
    ranks = [count // 2] if count % 2 else [count // 2 - 1, count // 2]
    below, inside = 0, []
    for values in chunks():
        below += int(np.count_nonzero(values < low))
        inside.append(values[(values >= low) & (values <= high)])
    kept = np.concatenate(inside) if inside else np.zeros(0)
    if not (below <= ranks[0] and ranks[-1] < below + len(kept)):
        return None
    middle = np.partition(kept, [r - below for r in ranks])
    return float(np.mean(middle[[r - below for r in ranks]]))


class NumpyBackend:
    """numpy and scipy with the system's BLAS (threads capped by the caller, see
    :func:`prunesim.jobs.compare.compare`)."""

    name = "numpy"

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a @ b

    def product(self, a: np.ndarray, b: np.ndarray, float32: bool = False) -> np.ndarray:
        """``aᵀb`` (float64) of the centred data ``a`` (m × p) and ``b`` (m × q)."""
        if not float32:
            return a.T @ b
        total = _float32_blocks(
            a,
            b,
            matmul=lambda x, y: (x.T @ y).astype(np.float64),
            cast=lambda x: x.astype(np.float32),
            add=lambda t, x: np.add(t, x, out=t),
        )
        return total if total is not None else np.zeros((a.shape[1], b.shape[1]))

    def eigh(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ascending eigenvalues and eigenvectors of a symmetric matrix. numpy's solver, not
        scipy's: scipy's default driver (syevr) took twice as long at k = 500, and alternating
        scipy's and numpy's separate OpenBLAS thread pools made the 12 × 12 CCA matrix 2.7×
        slower (both measured on the quiet machine)."""
        return np.linalg.eigh(matrix)

    def eigvalsh(self, matrix: np.ndarray) -> np.ndarray:
        return np.linalg.eigvalsh(matrix)

    def svd(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Singular values (descending) and left singular vectors of a thin SVD."""
        u, sigma, _ = np.linalg.svd(matrix, full_matrices=False)
        return sigma, u

    def svdvals(self, matrix: np.ndarray) -> np.ndarray:
        return np.linalg.svd(matrix, compute_uv=False)

    def cholesky_inverse(self, matrix: np.ndarray, overwrite: bool = False):
        """``(L, L⁻¹)`` for the lower Cholesky factor of a symmetric positive definite
        matrix, or None when it is not (numerically) positive definite.

        scipy's LAPACK (numpy has no triangular inverse, and its Cholesky was slower) brings its
        own OpenBLAS, whose threads are not numpy's. An OpenBLAS pool's idle threads busy-wait
        after each call, so alternating the two pools on few cores makes each wait for time
        slices at every synchronisation; on one thread, this factorisation leaves no thread of
        scipy's pool spinning. Up to ``SINGLE_THREAD_CHOLESKY_MAX`` one thread loses less than
        a switch of pools costs; above it the switch is the smaller loss
        (``benchmarks/metrics.py`` measures CCA at such sizes)."""
        single = len(matrix) <= SINGLE_THREAD_CHOLESKY_MAX
        with _blas_threads().limit(limits=1) if single else contextlib.nullcontext():
            try:
                factor = scipy.linalg.cholesky(
                    matrix, lower=True, overwrite_a=overwrite, check_finite=False
                )
            except np.linalg.LinAlgError:
                return None
            inverse, info = scipy.linalg.lapack.dtrtri(factor, lower=1)
        if info != 0 or not np.isfinite(inverse).all():
            return None
        return factor, inverse

    def rbf_kernel(self, gram: np.ndarray, sigma_factor: float, overwrite: bool = False):
        """Centred RBF kernel ``H K H`` from the linear Gram matrix, with ``σ² = sigma_factor²
        ×`` the median squared distance between distinct samples; or None when that median
        is 0. ``overwrite``: build it in the Gram matrix's memory (a new n × n array costs
        more than the arithmetic: 0.8 GB of first-touch page faults at n = 10,000).

        Computed in blocks of rows that stay in cache: whole-matrix passes over the n × n
        array are bound by memory bandwidth, about ten times slower. The kernel is
        symmetric, so its column means are its row means: ``HKH = K − m1ᵀ − 1mᵀ + m̄``."""
        n = len(gram)
        sq = np.diag(gram).copy()
        kernel = gram if overwrite else np.empty_like(gram)
        blocks = [slice(start, start + KERNEL_ROW_BLOCK) for start in range(0, n, KERNEL_ROW_BLOCK)]
        for rows in blocks:  # squared distances
            block = kernel[rows]
            np.multiply(gram[rows], -2.0, out=block)
            block += sq[rows, None]
            block += sq[None, :]
            np.maximum(block, 0.0, out=block)
        median = _upper_triangle_median(kernel)
        if median <= 0.0:
            return None
        factor = -1.0 / (2.0 * sigma_factor**2 * median)
        row_means = np.empty(n)
        for rows in blocks:
            block = kernel[rows]
            block *= factor
            np.exp(block, out=block)
            row_means[rows] = block.mean(axis=1)
        overall = row_means.mean()
        for rows in blocks:
            block = kernel[rows]
            block -= row_means[rows, None]
            block -= row_means[None, :]
            block += overall
        return kernel

    def alignment(self, kernel_a, kernel_b) -> float:
        """``⟨K, L⟩_F / (‖K‖_F ‖L‖_F)``."""
        return float(
            np.vdot(kernel_a, kernel_b) / (np.linalg.norm(kernel_a) * np.linalg.norm(kernel_b))
        )


class TorchBackend:
    """The same operations with torch on one device, in float64. Inputs arrive as numpy
    arrays and results return as numpy arrays, so the transfers are the operands and results
    of each operation (on a GPU, milliseconds against the seconds a CPU spends on them)."""

    def __init__(self, device) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.name = f"torch:{self.device}"

    def _t(self, a):
        if isinstance(a, self.torch.Tensor):
            return a
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    @staticmethod
    def _n(t) -> np.ndarray:
        return t.cpu().numpy()

    def matmul(self, a, b) -> np.ndarray:
        return self._n(self._t(a) @ self._t(b))

    def product(self, a, b, float32: bool = False) -> np.ndarray:
        ta = self._t(a)
        tb = ta if b is a else self._t(b)
        if not float32:
            return self._n(ta.T @ tb)
        torch = self.torch
        # TF32 would round the float32 products to 10-bit mantissas: never here.
        with _no_tf32(torch):
            total = _float32_blocks(
                ta,
                tb,
                matmul=lambda x, y: (x.T @ y).double(),
                cast=lambda x: x.float(),
                add=lambda t, x: t.add_(x),
            )
        if total is None:
            return np.zeros((a.shape[1], b.shape[1]))
        return self._n(total)

    def eigh(self, matrix) -> tuple[np.ndarray, np.ndarray]:
        evals, evecs = self.torch.linalg.eigh(self._t(matrix))
        return self._n(evals), self._n(evecs)

    def eigvalsh(self, matrix) -> np.ndarray:
        return self._n(self.torch.linalg.eigvalsh(self._t(matrix)))

    def svd(self, matrix) -> tuple[np.ndarray, np.ndarray]:
        u, sigma, _ = self.torch.linalg.svd(self._t(matrix), full_matrices=False)
        return self._n(sigma), self._n(u)

    def svdvals(self, matrix) -> np.ndarray:
        return self._n(self.torch.linalg.svdvals(self._t(matrix)))

    def cholesky_inverse(self, matrix, overwrite: bool = False):
        torch = self.torch
        factor, info = torch.linalg.cholesky_ex(self._t(matrix))
        if int(info) != 0:
            return None
        identity = torch.eye(len(factor), dtype=factor.dtype, device=factor.device)
        inverse = torch.linalg.solve_triangular(factor, identity, upper=False)
        if not bool(torch.isfinite(inverse).all()):
            return None
        return self._n(factor), self._n(inverse)

    def rbf_kernel(self, gram, sigma_factor: float, overwrite: bool = False):
        # overwrite: the host Gram matrix is copied to the device anyway
        torch = self.torch
        gram = self._t(gram)
        sq = torch.diagonal(gram)
        kernel = gram * -2.0
        kernel += sq[:, None]
        kernel += sq[None, :]
        kernel.clamp_(min=0.0)
        n = len(kernel)
        upper = kernel[torch.triu(torch.ones(n, n, dtype=torch.bool, device=kernel.device), 1)]
        median = _torch_median(torch, upper)
        del upper
        if median <= 0.0:
            return None
        kernel *= -1.0 / (2.0 * sigma_factor**2 * median)
        kernel.exp_()
        kernel -= kernel.mean(dim=0, keepdim=True)
        kernel -= kernel.mean(dim=1, keepdim=True)
        return kernel

    def alignment(self, kernel_a, kernel_b) -> float:
        torch = self.torch
        inner = torch.dot(kernel_a.reshape(-1), kernel_b.reshape(-1))
        return float(inner / (torch.linalg.norm(kernel_a) * torch.linalg.norm(kernel_b)))


def _torch_median(torch, values) -> float:
    """numpy's median of a 1-D tensor: the mean of the two middle values for an even count
    (torch.median returns the lower one)."""
    m = len(values)
    if m == 0:
        return 0.0
    ordered = torch.sort(values).values
    if m % 2:
        return float(ordered[m // 2])
    return float((ordered[m // 2 - 1] + ordered[m // 2]) / 2)


@contextlib.contextmanager
def _no_tf32(torch):
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


NUMPY = NumpyBackend()
_TORCH_BACKENDS: dict[str, TorchBackend] = {}


def check_device(device: str) -> None:
    """A :class:`prunesim.device.DeviceError` unless ``device`` is a word of the device
    vocabulary (:mod:`prunesim.device`) or the metrics' test-only ``torch:cpu``."""
    if device != TORCH_CPU:
        check_setting(device)


def get_backend(device: str = "cpu"):
    """The backend for a ``device`` setting (see the module docstring); a
    :class:`prunesim.device.DeviceError` for an unknown device or a GPU this machine cannot
    see."""
    check_device(device)
    if device == TORCH_CPU:
        torch_device = "cpu"
    else:
        check_visible(device)
        torch_device = resolve(device)
        if torch_device == "cpu":
            return NUMPY
    if torch_device not in _TORCH_BACKENDS:
        _TORCH_BACKENDS[torch_device] = TorchBackend(torch_device)
    return _TORCH_BACKENDS[torch_device]
