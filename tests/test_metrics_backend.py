"""The metrics' torch backend (the GPU code path) computes what the numpy backend computes.

Without a GPU the torch code runs on the CPU (``device="torch:cpu"``): the same operations
that run on CUDA, so every branch of the metrics (covariance and Gram routes, Cholesky and
eigen whitening, the SVD fallback, RBF kernels, NaN reasons) is checked against numpy here.
The ``cuda`` tests run only where torch sees a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prunesim.comparison import CompareSettings, compare_stores
from prunesim.metrics import METRICS, backend, evaluate, pair_factors, similarity
from prunesim.metrics.backend import NUMPY, TorchBackend, _torch_median, get_backend

CUDA = torch.cuda.is_available()
TORCH_DEVICES = ["torch:cpu"] + (["cuda"] if CUDA else [])


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((120, 15))
    related = x[:, :4] @ rng.standard_normal((4, 12)) + 0.5 * rng.standard_normal((120, 12))
    dead = x.copy()
    dead[:, [2, 7]] = 3.0  # two dead neurons
    rank_deficient = rng.standard_normal((120, 3)) @ rng.standard_normal((3, 10))
    wide = rng.standard_normal((40, 90))  # p > n: the Gram route
    graded = rng.standard_normal((120, 8)) * np.geomspace(1.0, 1e-7, 8)  # tiny values: SVD
    return {
        "covariance_route": (x, related),
        "dead_neurons": (dead, related),
        "rank_deficient_eigen_whitening": (rank_deficient, related),
        "p_above_n_gram_route": (wide, wide[:, :30] @ rng.standard_normal((30, 20))),
        "both_gram_route": (wide, rng.standard_normal((40, 70))),
        "graded_spectrum": (graded, related),
        "constant_layer": (np.ones((120, 6)), related),
    }


CASES = _cases()


def _all_metrics(x, y, device, float32=False):
    pair = pair_factors(
        x, y, keep_data=True, keep_directions=True, float32_products=float32, device=device
    )
    return {m: evaluate(pair, m) for m in METRICS}


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_torch_backend_equals_numpy_for_every_metric_and_nan_reason(case, device):
    x, y = CASES[case]
    expected, got = _all_metrics(x, y, "cpu"), _all_metrics(x, y, device)
    for metric in METRICS:
        assert got[metric].reason == expected[metric].reason, metric
        if np.isnan(expected[metric].value):
            assert np.isnan(got[metric].value), metric
        else:
            assert got[metric].value == pytest.approx(expected[metric].value, abs=1e-10), metric


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_torch_backend_streamed_equals_in_memory(device):
    """Several row blocks on the device, against one block in numpy."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9000, 20))
    y = np.tanh(x[:, :10] @ rng.standard_normal((10, 16)))
    for metric in ("cca_mean", "pwcca", "cka_linear", "cka_debiased", "nbs"):
        assert similarity(x, y, metric, device=device) == pytest.approx(
            similarity(x, y, metric), abs=1e-10
        )


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_torch_float32_products_stay_within_1e6_of_float64(device):
    x, y = CASES["covariance_route"]
    exact = _all_metrics(x, y, "cpu")
    fast = _all_metrics(x, y, device, float32=True)
    for metric in ("cka_linear", "cka_rbf", "cka_debiased", "nbs"):
        assert fast[metric].value == pytest.approx(exact[metric].value, abs=1e-6), metric


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_torch_median_is_numpys_median_for_odd_and_even_counts(n):
    values = np.random.default_rng(n).standard_normal(n * (n - 1) // 2)
    assert _torch_median(torch, torch.from_numpy(values)) == pytest.approx(np.median(values))


def test_torch_rbf_kernel_of_identical_samples_is_undefined():
    gram = np.full((5, 5), 2.0)  # every sample the same: all distances 0
    assert TorchBackend("cpu").rbf_kernel(gram, 1.0) is None
    assert NUMPY.rbf_kernel(gram, 1.0) is None


def test_torch_inputs_on_the_torch_backend():
    x, y = CASES["covariance_route"]
    value = similarity(torch.from_numpy(x).float(), torch.from_numpy(y), "cka_linear")
    assert similarity(x.astype(np.float32), y, "cka_linear", device="torch:cpu") == pytest.approx(
        value, abs=1e-12
    )


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_compare_on_torch_backend_equals_numpy(lenet_stores, device):
    a, b = str(lenet_stores["a"]), str(lenet_stores["b"])
    expected = compare_stores(
        a,
        b,
        CompareSettings(
            permutations=0,
            bootstrap=0,
        ),
    )
    got = compare_stores(a, b, CompareSettings(permutations=0, bootstrap=0, device=device))
    np.testing.assert_allclose(
        got["similarity"].values, expected["similarity"].values, rtol=0, atol=1e-10
    )
    assert (got["nan_reason"].values == expected["nan_reason"].values).all()


def test_device_selection():
    assert get_backend("cpu") is NUMPY
    assert get_backend("torch:cpu").name == "torch:cpu"
    assert get_backend("torch:cpu") is get_backend("torch:cpu")  # one backend per device
    if CUDA:
        assert get_backend("auto").name.startswith("torch:cuda")
    else:
        assert get_backend("auto") is NUMPY


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_absent_gpu_is_a_clear_error(device):
    with pytest.raises(RuntimeError, match=f"'{device}'.*no CUDA (device|GPU).*'cpu' or 'auto'"):
        get_backend(device)
    with pytest.raises(RuntimeError, match="no CUDA (device|GPU)"):
        CompareSettings(permutations=0, bootstrap=0, device=device).backend  # noqa: B018


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:x", ""])
def test_unknown_device_is_rejected_with_the_expected_values(device):
    with pytest.raises(ValueError, match=f"unknown device '{device}'.*'auto', 'cpu', 'cuda'"):
        CompareSettings(permutations=0, bootstrap=0, device=device)
    with pytest.raises(ValueError, match="unknown device"):
        get_backend(device)


def _triangle_median(matrix):
    return np.median(matrix[np.triu_indices(len(matrix), 1)])


@pytest.mark.parametrize("n", [400, 401])  # even and odd pair counts
def test_bracketed_rbf_median_is_numpys_median_of_the_pairs(n, monkeypatch):
    monkeypatch.setattr(backend, "MEDIAN_GATHER_MAX", 1000)
    gathered = []
    monkeypatch.setattr(backend.np, "median", lambda *a, **k: gathered.append(1) or np.nan)
    matrix = np.random.default_rng(n).standard_normal((n, n)) ** 2
    matrix[: n // 3] += 1.0  # rows of different scales, as for a probe set sorted by class
    value = backend._upper_triangle_median(matrix)
    monkeypatch.undo()
    assert not gathered  # the bracket held: no full gather
    assert value == _triangle_median(matrix)


def test_bracketed_rbf_median_falls_back_when_the_sample_misses(monkeypatch):
    """Sampled rows (every second one here) all small, the others all large: the sample's
    bracket misses the median, the count notices, and all pairs are gathered."""
    monkeypatch.setattr(backend, "MEDIAN_GATHER_MAX", 1000)
    n = 400
    matrix = np.random.default_rng(0).random((n, n))
    matrix[1::2] += 10.0
    gathered, median = [], np.median
    monkeypatch.setattr(backend.np, "median", lambda *a, **k: gathered.append(1) or median(*a, **k))
    value = backend._upper_triangle_median(matrix)
    monkeypatch.undo()
    assert gathered
    assert value == _triangle_median(matrix)


@pytest.mark.parametrize("device", ["cpu", *TORCH_DEVICES])
def test_rbf_kernel_built_in_the_gram_memory_leaves_the_other_metrics_unchanged(device):
    """On the covariance route the RBF kernel reuses the Gram matrix's memory; linear and
    debiased CKA of a wide partner (which use the Gram matrices) give the same values whether
    they run before or after it."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 250)), rng.standard_normal((300, 500))
    order = ("cka_linear", "cka_debiased", "cka_rbf")
    values = []
    for metrics in (order, order[::-1]):
        pair = pair_factors(x, y, keep_data=True, device=device)
        values.append({m: evaluate(pair, m).value for m in metrics})
    assert values[0] == values[1]
