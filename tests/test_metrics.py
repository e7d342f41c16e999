"""Tests for the layer-similarity metrics (prunesim.metrics), checked against independent
naive formulas and the invariances each metric is defined to have."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunesim.metrics import (
    METRICS,
    LayerFactors,
    PairFactors,
    evaluate,
    get_metric,
    similarity,
)


def _pair(x, y) -> PairFactors:
    return PairFactors(LayerFactors.from_array(x), LayerFactors.from_array(y))


def _related(rng, n: int, p: int, q: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two representations sharing a latent signal (so similarities are well inside (0, 1))."""
    x = rng.standard_normal((n, p)) @ rng.standard_normal((p, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def _orthogonal(rng, p: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.sign(np.diag(r))


# --- independent reference implementations -----------------------------------------------------


def _naive_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA in Gram space with the explicit centring matrix H = I - 11ᵀ/n."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def _orthonormal_basis(x: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Column space of the centred ``x``: QR where x has full column rank, else truncated SVD."""
    xc = x - x.mean(axis=0)
    if np.linalg.matrix_rank(xc) == xc.shape[1]:
        return np.linalg.qr(xc)[0]
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    return u[:, s > tol * s[0]]


def _naive_canonical_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    qx, qy = _orthonormal_basis(x), _orthonormal_basis(y)
    return np.linalg.svd(qx.T @ qy, compute_uv=False)


# --- basic properties of every metric ---------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_self_similarity_is_one(metric, rng):
    x = rng.standard_normal((120, 12)) @ rng.standard_normal((12, 12))
    assert similarity(x, x, metric) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_self_similarity_is_one_with_more_features_than_samples(metric, rng):
    # Low rank, so that CCA is defined even though p > n.
    x = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 90))
    assert similarity(x, x, metric) == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("metric", METRICS)
def test_metric_is_symmetric(metric, rng):
    x, y = _related(rng, 100, 8, 11)
    assert get_metric(metric).symmetric
    assert similarity(x, y, metric) == pytest.approx(similarity(y, x, metric), abs=1e-12)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("noise", [0.0, 0.3, 3.0, 100.0])
def test_values_lie_in_unit_interval(metric, noise, rng):
    x, y = _related(rng, 80, 6, 9, noise=noise)
    value = similarity(x, y, metric)
    assert 0.0 <= value <= 1.0
    independent = similarity(rng.standard_normal((80, 6)), rng.standard_normal((80, 9)), metric)
    assert 0.0 <= independent <= 1.0


@pytest.mark.parametrize("metric", METRICS)
def test_related_representations_are_more_similar_than_independent_ones(metric, rng):
    x, y = _related(rng, 200, 5, 5, noise=0.5)
    z = rng.standard_normal((200, 5))
    assert similarity(x, y, metric) > similarity(x, z, metric) + 0.3


# --- invariances ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cka_linear", "cca_mean"])
def test_invariant_to_orthogonal_transform(metric, rng):
    x, y = _related(rng, 100, 10, 7)
    before = similarity(x, y, metric)
    after = similarity(x @ _orthogonal(rng, 10), y @ _orthogonal(rng, 7), metric)
    assert after == pytest.approx(before, abs=1e-10)


@pytest.mark.parametrize("metric", ["cka_linear", "cca_mean"])
def test_invariant_to_isotropic_scaling(metric, rng):
    x, y = _related(rng, 100, 10, 7)
    assert similarity(3.7 * x, 0.02 * y, metric) == pytest.approx(
        similarity(x, y, metric), abs=1e-10
    )


def _anisotropic_invertible(rng, p: int) -> np.ndarray:
    """A well-conditioned but strongly anisotropic invertible map."""
    return _orthogonal(rng, p) @ np.diag(np.linspace(0.2, 5.0, p)) @ _orthogonal(rng, p)


def test_cca_invariant_to_invertible_linear_maps(rng):
    x, y = _related(rng, 100, 10, 7)
    a, b = _anisotropic_invertible(rng, 10), _anisotropic_invertible(rng, 7)
    assert similarity(x @ a, y @ b, "cca_mean") == pytest.approx(
        similarity(x, y, "cca_mean"), abs=1e-10
    )


def test_cka_is_not_invariant_to_anisotropic_linear_maps(rng):
    x, y = _related(rng, 100, 10, 7)
    a = _anisotropic_invertible(rng, 10)
    assert abs(similarity(x @ a, y, "cka_linear") - similarity(x, y, "cka_linear")) > 1e-3


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("offset", [1e3, -5e4])
def test_invariant_to_a_constant_offset_of_all_features(metric, offset, rng):
    x, y = _related(rng, 90, 6, 8)
    before = similarity(x, y, metric)
    assert similarity(x + offset, y, metric) == pytest.approx(before, abs=1e-9)
    assert similarity(x + offset, y - offset, metric) == pytest.approx(before, abs=1e-9)


@pytest.mark.parametrize("metric", METRICS)
def test_invariant_to_per_feature_offsets(metric, rng):
    x, y = _related(rng, 90, 6, 8)
    shifted = x + rng.uniform(-1e3, 1e3, size=(1, 6))
    assert similarity(shifted, y, metric) == pytest.approx(similarity(x, y, metric), abs=1e-9)


# --- against naive reference formulas ---------------------------------------------------------

# (n, p_a, p_b): both p < n with a small cross-product; both p > n (Gram path in every
# factor); one layer on each side of n, with the cross-product below and above n² in size.
SHAPES = [(60, 10, 8), (20, 50, 40), (30, 5, 100), (30, 20, 100)]


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_linear_cka_equals_naive_gram_formula(n, pa, pb, rng):
    x = rng.standard_normal((n, pa)) + 0.5
    y = x[:, :1] * rng.standard_normal((1, pb)) + rng.standard_normal((n, pb))
    pair = _pair(x, y)
    assert (pair.a.prefer_gram, pair.b.prefer_gram) == (pa > n, pb > n)
    assert pair.prefer_gram == (pa * pb > n * n)
    assert evaluate(pair, "cka_linear").value == pytest.approx(_naive_cka(x, y), abs=1e-12)


@pytest.mark.parametrize(("n", "pa", "pb"), [(100, 10, 8), (60, 3, 20), (50, 1, 1)])
def test_cca_mean_equals_mean_of_naive_canonical_correlations(n, pa, pb, rng):
    x, y = _related(rng, n, pa, pb)
    expected = _naive_canonical_correlations(x, y)
    pair = _pair(x, y)
    np.testing.assert_allclose(pair.canonical_correlations, expected, atol=1e-10)
    assert evaluate(pair, "cca_mean").value == pytest.approx(expected.mean(), abs=1e-10)


@pytest.mark.parametrize(("pa", "pb"), [(80, 6), (80, 120)])
def test_cca_mean_with_low_rank_wide_layers_equals_naive_formula(pa, pb, rng):
    """p > n but low rank: the Gram-space (orthonormal basis) path of CCA."""
    n = 50
    z = rng.standard_normal((n, 4))
    x = z @ rng.standard_normal((4, pa))
    y = z[:, :2] @ rng.standard_normal((2, pb)) + 0.5 * (
        rng.standard_normal((n, 3)) @ rng.standard_normal((3, pb))
    )
    pair = _pair(x, y)
    assert pair.a.prefer_gram and pair.a.rank == 4
    expected = _naive_canonical_correlations(x, y)
    assert evaluate(pair, "cca_mean").value == pytest.approx(expected.mean(), abs=1e-9)


# --- dead neurons, constant layers, degenerate CCA --------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_dead_neurons_are_dropped_counted_and_do_not_change_the_value(metric, rng):
    x, y = _related(rng, 100, 6, 7)
    n = len(x)
    with_dead = np.column_stack([x[:, :2], np.zeros(n), x[:, 2:], np.full(n, 0.3), np.ones(n)])
    layer = LayerFactors.from_array(with_dead)
    assert layer.dead == 3 and layer.p == 6
    value = evaluate(PairFactors(layer, LayerFactors.from_array(y)), metric).value
    assert value == pytest.approx(similarity(x, y, metric), abs=1e-10)


def test_float32_dead_relu_units_are_dropped(rng):
    x = np.maximum(rng.standard_normal((64, 10)), 0).astype(np.float32)
    x[:, [1, 4]] = 0.0  # dead ReLUs
    x[:, 7] = np.float32(0.1)  # a unit stuck at a constant
    assert LayerFactors.from_array(torch.from_numpy(x)).dead == 3


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("side", ["first", "second"])
def test_constant_layer_gives_nan_with_a_reason(metric, side, rng):
    x = rng.standard_normal((50, 5))
    constant = np.zeros((50, 4))
    pair = _pair(constant, x) if side == "first" else _pair(x, constant)
    result = evaluate(pair, metric)
    assert math.isnan(result.value)
    assert side in result.reason and "constant" in result.reason
    assert math.isnan(similarity(x, constant, metric))


@pytest.mark.parametrize("metric", METRICS)
def test_constant_layer_with_inexact_values_gives_nan_with_a_reason(metric, rng):
    x = rng.standard_normal((50, 5))
    constant = np.tile(rng.uniform(-1, 1, size=(1, 4)), (50, 1))  # e.g. a fully pruned layer's bias
    result = evaluate(_pair(constant, x), metric)
    assert math.isnan(result.value) and "constant" in result.reason


def test_cca_mean_is_nan_with_degenerate_reason_when_ranks_reach_n(rng):
    x, y = rng.standard_normal((20, 12)), rng.standard_normal((20, 10))
    result = evaluate(_pair(x, y), "cca_mean")
    assert math.isnan(result.value)
    assert "degenerate" in result.reason
    assert not math.isnan(evaluate(_pair(x, y), "cka_linear").value)  # CKA stays defined


def test_cca_mean_degeneracy_boundary_is_rank_sum_equal_to_n(rng):
    x = rng.standard_normal((20, 10))
    at_boundary = evaluate(_pair(x, rng.standard_normal((20, 10))), "cca_mean")
    below = evaluate(_pair(x, rng.standard_normal((20, 9))), "cca_mean")
    assert math.isnan(at_boundary.value) and "degenerate" in at_boundary.reason
    assert 0.0 <= below.value <= 1.0 and below.reason == ""


def test_cca_rank_ignores_redundant_features(rng):
    z = rng.standard_normal((30, 4))
    x = z @ rng.standard_normal((4, 12))  # 12 features, rank 4
    layer = LayerFactors.from_array(x)
    assert layer.rank == 4
    y = rng.standard_normal((30, 5))
    result = evaluate(PairFactors(layer, LayerFactors.from_array(y)), "cca_mean")
    assert result.reason == "" and 0.0 <= result.value <= 1.0


# --- inputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_torch_float32_tensors_agree_with_float64_numpy(metric, rng):
    x, y = _related(rng, 100, 8, 6)
    x, y = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    assert similarity(tx, ty, metric) == pytest.approx(similarity(x, y, metric), abs=1e-6)
    raw_x, raw_y = _related(np.random.default_rng(1), 100, 8, 6)
    as_f32 = similarity(torch.tensor(raw_x, dtype=torch.float32), raw_y, metric)
    assert as_f32 == pytest.approx(similarity(raw_x, raw_y, metric), abs=1e-6)


def test_different_sample_counts_raise(rng):
    with pytest.raises(ValueError, match="sample counts"):
        similarity(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)), "cka_linear")


def test_non_matrix_input_raises(rng):
    with pytest.raises(ValueError, match="2-D"):
        similarity(rng.standard_normal((10, 3, 2)), rng.standard_normal((10, 3)), "cka_linear")


def test_unknown_metric_raises_naming_known_metrics(rng):
    x = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="unknown metric 'rsa'") as err:
        similarity(x, x, "rsa")
    for name in METRICS:
        assert name in str(err.value)
