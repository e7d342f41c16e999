"""Tests for the layer-similarity metrics (prunesim.metrics).

Every property is asserted for exactly the metrics that have it (and, where a metric lacks a
property one might expect, that it does lack it); every value is checked against an independent
naive implementation in feature space and in Gram space (p < n and p > n)."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch

import prunesim.metrics as metrics_module
from prunesim.metrics import (
    METRICS,
    REGISTRY,
    MetricOptions,
    PairFactors,
    definitions,
    evaluate,
    factors,
    layer_factors,
    pair_factors,
    raw_products,
    reference,
    similarity,
    stats,
)

NEIGHBOURHOOD = ("procrustes", "knn_jaccard", "rsa_spearman")  # the shape and pair measures
SYMMETRIC = ("cca_mean", "svcca", "cka_linear", "cka_rbf", "cka_debiased", "nbs", *NEIGHBOURHOOD)
CCA_FAMILY = ("cca_mean", "svcca", "pwcca")
KERNEL_FAMILY = ("cka_linear", "cka_rbf", "cka_debiased", "nbs")
ORTHOGONAL_INVARIANT = (
    "cka_linear",
    "cka_rbf",
    "cka_debiased",
    "nbs",
    "cca_mean",
    "svcca",
    *NEIGHBOURHOOD,
)


def _identical_value(metric: str) -> tuple[float, float]:
    """The value for identical representations and its tolerance: the Procrustes angle is the
    arccos of a cosine rounded near 1, so it is 0 only to sqrt(eps) ~ 1.5e-8."""
    return (0.0, 3e-8) if metric == "procrustes" else (1.0, 1e-10)


def _more_similar(metric: str, a: float, b: float) -> float:
    """How much more similar ``a`` says than ``b`` (a distance: how much smaller)."""
    return (b - a) if REGISTRY[metric].perfect == 0.0 else (a - b)


def _pair(x, y) -> PairFactors:
    return PairFactors(layer_factors(x), layer_factors(y))


def _related(rng, n: int, p: int, q: int, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Two representations sharing a latent signal (so similarities are well inside (0, 1))."""
    x = rng.standard_normal((n, p)) @ rng.standard_normal((p, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


def _decaying(rng, n: int, p: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned first representation with a decaying spectrum (so SVCCA keeps only some of
    its directions and PWCCA's neuron weights are far from uniform), and a related second one."""
    x = rng.standard_normal((n, p)) * np.geomspace(1.0, 0.05, p)
    y = x @ rng.standard_normal((p, q)) + 0.5 * rng.standard_normal((n, q))
    return x, y


def _low_rank_wide(rng, n: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """p > n but low rank: X = Z_x A (rank 20, 300 features), Y = Z_y B (rank 15, 250
    features), Z_y sharing 10 latent columns with Z_x. Returns X, Y, Z_x, Z_y."""
    zx = rng.standard_normal((n, 20))
    zy = np.column_stack(
        [zx[:, :10] + 0.3 * rng.standard_normal((n, 10)), rng.standard_normal((n, 5))]
    )
    return zx @ rng.standard_normal((20, 300)), zy @ rng.standard_normal((15, 250)), zx, zy


def _orthogonal(rng, p: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((p, p)))
    return q * np.sign(np.diag(r))


def _anisotropic_invertible(rng, p: int) -> np.ndarray:
    """A well-conditioned but strongly anisotropic invertible map."""
    return _orthogonal(rng, p) @ np.diag(np.linspace(0.2, 5.0, p)) @ _orthogonal(rng, p)


def _centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0)


# --- independent reference implementations (with prunesim.metrics.reference) ------------------


def _qr_basis(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the centred columns of a full-column-rank ``x``."""
    return np.linalg.qr(_centre(x))[0]


def _ref_mean_leading(rho: np.ndarray, threshold: float) -> tuple[float, int]:
    """google/svcca's ``sum_threshold``: the first i with sum(rho[:i]) / sum(rho) >= threshold;
    the mean of rho[:i] (and i)."""
    total = rho.sum()
    for i in range(1, len(rho) + 1):
        if rho[:i].sum() / total >= threshold:
            return float(rho[:i].mean()), i
    raise AssertionError("threshold never reached")


# --- self-similarity, symmetry, range -----------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_self_similarity_is_perfect(metric, rng):
    x = rng.standard_normal((120, 12)) @ rng.standard_normal((12, 12))  # n > 2p
    perfect, tolerance = _identical_value(metric)
    assert REGISTRY[metric].perfect == perfect
    assert similarity(x, x, metric) == pytest.approx(perfect, abs=tolerance)


@pytest.mark.parametrize("metric", METRICS)
def test_self_similarity_is_perfect_for_a_low_rank_layer_with_more_features_than_samples(
    metric, rng
):
    x = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 90))
    perfect, tolerance = _identical_value(metric)
    assert similarity(x, x, metric) == pytest.approx(perfect, abs=tolerance)


def test_registry_marks_exactly_pwcca_as_asymmetric():
    assert set(METRICS) == set(REGISTRY) and len(METRICS) == 10
    assert {m for m in METRICS if REGISTRY[m].symmetric} == set(SYMMETRIC)
    pairwise = {"cka_rbf", "knn_jaccard", "rsa_spearman"}
    assert {m for m in METRICS if REGISTRY[m].needs_pairwise} == pairwise
    assert {m for m in METRICS if REGISTRY[m].perfect == 0.0} == {"procrustes"}


@pytest.mark.parametrize("metric", SYMMETRIC)
@pytest.mark.parametrize("shape", ["narrow", "wide"])
def test_symmetric_metric_is_symmetric(metric, shape, rng):
    if shape == "narrow":
        x, y = _related(rng, 100, 8, 11)
    else:
        x, y, _, _ = _low_rank_wide(rng)
    assert similarity(x, y, metric) == pytest.approx(similarity(y, x, metric), abs=1e-12)


def test_pwcca_is_not_symmetric_and_weights_by_the_first_representation(rng):
    x, y = _decaying(rng, 120, 10, 7)
    forward, backward = similarity(x, y, "pwcca"), similarity(y, x, "pwcca")
    qx, qy = _qr_basis(x), _qr_basis(y)
    assert forward == pytest.approx(reference.pwcca_from_bases(x, qx, qy), abs=1e-10)
    assert backward == pytest.approx(reference.pwcca_from_bases(y, qy, qx), abs=1e-10)
    assert abs(forward - backward) > 1e-2


RANGES = {"procrustes": (0.0, math.pi / 2), "rsa_spearman": (-1.0, 1.0)}  # others [0, 1]


@pytest.mark.parametrize("metric", [m for m in METRICS if m != "cka_debiased"])
@pytest.mark.parametrize("noise", [0.0, 0.3, 3.0, 100.0])
def test_values_lie_in_their_range(metric, noise, rng):
    low, high = RANGES.get(metric, (0.0, 1.0))
    x, y = _related(rng, 80, 6, 9, noise=noise)
    assert low <= similarity(x, y, metric) <= high
    independent = similarity(rng.standard_normal((80, 6)), rng.standard_normal((80, 9)), metric)
    assert low <= independent <= high
    wide_x, wide_y, _, _ = _low_rank_wide(rng)  # p > n, low rank
    low_rank_noise = rng.standard_normal((100, 5)) @ rng.standard_normal((5, 250))
    assert low <= similarity(wide_x, wide_y + noise * low_rank_noise, metric) <= high


def test_debiased_cka_of_independent_representations_is_near_zero_and_can_be_negative():
    debiased, biased = [], []
    for seed in range(10):
        gen = np.random.default_rng(seed)
        x, y = gen.standard_normal((200, 10)), gen.standard_normal((200, 10))
        debiased.append(similarity(x, y, "cka_debiased"))
        biased.append(similarity(x, y, "cka_linear"))
    debiased, biased = np.array(debiased), np.array(biased)
    assert np.abs(debiased).max() < 0.05
    assert abs(debiased.mean()) < 0.01
    assert (debiased < 0).any()  # an unbiased estimator of 0 is negative about half the time
    assert biased.min() > 0.03  # the biased estimator is pushed away from 0
    assert (biased > debiased + 0.02).all()


@pytest.mark.parametrize("metric", METRICS)
def test_related_representations_are_more_similar_than_independent_ones(metric, rng):
    x, y = _related(rng, 200, 5, 5, noise=0.5)
    z = rng.standard_normal((200, 5))
    # k-NN sets of 10 among 200 samples overlap little even for related data: a lower bar
    margin = 0.1 if metric == "knn_jaccard" else 0.3
    assert _more_similar(metric, similarity(x, y, metric), similarity(x, z, metric)) > margin


# --- invariances ------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ORTHOGONAL_INVARIANT)
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(metric, rng):
    x, y = _decaying(rng, 120, 10, 7)
    before = similarity(x, y, metric)
    rotated = similarity(x @ _orthogonal(rng, 10), y @ _orthogonal(rng, 7), metric)
    scaled = similarity(3.7 * x, 0.02 * y, metric)
    assert rotated == pytest.approx(before, abs=1e-10)
    assert scaled == pytest.approx(before, abs=1e-10)


def test_pwcca_is_invariant_to_isotropic_scaling_but_not_to_rotating_the_first_representation(rng):
    x, y = _decaying(rng, 120, 10, 7)
    before = similarity(x, y, "pwcca")
    assert similarity(3.7 * x, 0.02 * y, "pwcca") == pytest.approx(before, abs=1e-10)
    assert abs(similarity(x @ _orthogonal(rng, 10), y, "pwcca") - before) > 1e-2
    # Its weights come from the first representation only: any invertible map of the second
    # keeps its canonical variates, so the value.
    assert similarity(x, y @ _anisotropic_invertible(rng, 7), "pwcca") == pytest.approx(
        before, abs=1e-10
    )


def test_only_cca_mean_is_invariant_to_invertible_linear_maps(rng):
    x, y = _decaying(rng, 120, 10, 7)
    a, b = _anisotropic_invertible(rng, 10), _anisotropic_invertible(rng, 7)
    for metric in METRICS:
        before, after = similarity(x, y, metric), similarity(x @ a, y @ b, metric)
        if metric == "cca_mean":
            assert after == pytest.approx(before, abs=1e-10)
        else:
            assert abs(after - before) > 1e-2, metric


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


# --- against naive reference formulas, feature space (p < n) and Gram space (p > n) -------------

# (n, p_a, p_b): both p < n; both p > n (Gram route in every factor); one layer on each side of
# n, with the cross-product below and above n² in size. Every n gives an even number of sample
# pairs, where the median of squared distances and the median distance differ (cka_rbf).
SHAPES = [(60, 10, 8), (40, 60, 50), (40, 5, 100), (40, 30, 100)]


def _kernel_pair(rng, n: int, pa: int, pb: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((n, pa)) + 0.5
    y = x[:, :1] * rng.standard_normal((1, pb)) + rng.standard_normal((n, pb))
    return x, y


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_linear_cka_equals_naive_gram_formula(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    pair = _pair(x, y)
    assert (pair.a.gram_route, pair.b.gram_route) == (pa > n, pb > n)
    assert evaluate(pair, "cka_linear").value == pytest.approx(
        reference.cka_linear(x, y), abs=1e-12
    )


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_debiased_cka_equals_song_unbiased_hsic_on_gram_matrices(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    assert similarity(x, y, "cka_debiased") == pytest.approx(
        reference.cka_debiased(x, y), abs=1e-10
    )


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_nbs_equals_bures_fidelity_of_gram_matrices(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    assert similarity(x, y, "nbs") == pytest.approx(reference.nbs(x, y), abs=1e-12)


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
@pytest.mark.parametrize("rbf_sigma", [1.0, 0.5, 2.0])
def test_rbf_cka_equals_naive_kernel_formula(n, pa, pb, rbf_sigma, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    expected = reference.cka_rbf(x, y, rbf_sigma, from_differences=True)
    assert similarity(x, y, "cka_rbf", rbf_sigma=rbf_sigma) == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(("n", "pa", "pb"), [(100, 10, 8), (60, 3, 20), (60, 20, 3), (50, 1, 1)])
def test_cca_family_equals_naive_qr_formulas(n, pa, pb, rng):
    x, y = _related(rng, n, pa, pb)
    qx, qy = _qr_basis(x), _qr_basis(y)
    rho, _ = reference.canonical(qx, qy)
    pair = _pair(x, y)
    np.testing.assert_allclose(pair.canonical()[0], rho, atol=1e-10)
    assert evaluate(pair, "cca_mean").value == pytest.approx(rho.mean(), abs=1e-10)
    assert evaluate(pair, "pwcca").value == pytest.approx(
        reference.pwcca_from_bases(x, qx, qy), abs=1e-10
    )


@pytest.mark.parametrize("variance", [0.99, 0.9])
def test_svcca_equals_truncated_svd_then_cca(variance, rng):
    x, y = _decaying(rng, 150, 12, 9)
    bx, by = reference.svd_basis(x, variance), reference.svd_basis(y, variance)
    assert bx.shape[1] < 12  # the truncation is active
    expected = reference.canonical(bx, by)[0].mean()
    assert similarity(x, y, "svcca", svcca_variance=variance) == pytest.approx(expected, abs=1e-10)
    assert similarity(x, y, "svcca", svcca_variance=1.0) == pytest.approx(
        similarity(x, y, "cca_mean"), abs=1e-10
    )


def test_cca_threshold_averages_the_leading_correlations_up_to_that_share_of_their_sum(rng):
    x, y = _related(rng, 200, 12, 12, noise=3.0)
    rho, _ = reference.canonical(_qr_basis(x), _qr_basis(y))
    expected, count = _ref_mean_leading(rho, 0.98)
    assert count < len(rho)  # some correlations are left out
    assert similarity(x, y, "cca_mean", cca_threshold=0.98) == pytest.approx(expected, abs=1e-10)
    assert similarity(x, y, "cca_mean", cca_threshold=1.0) == pytest.approx(rho.mean(), abs=1e-10)
    assert similarity(x, y, "cca_mean") == pytest.approx(rho.mean(), abs=1e-10)


def test_svcca_with_cca_threshold_is_the_seed_studys_quantity(rng):
    # 99%-variance SVD of each side, then google/svcca's mean of the leading correlations up
    # to 98% of their sum (docs/metrics.md: the seed study's CCA).
    x, y = _decaying(rng, 300, 16, 12)
    rho, _ = reference.canonical(reference.svd_basis(x, 0.99), reference.svd_basis(y, 0.99))
    expected, count = _ref_mean_leading(rho, 0.98)
    assert count < len(rho)
    value = similarity(x, y, "svcca", svcca_variance=0.99, cca_threshold=0.98)
    assert value == pytest.approx(expected, abs=1e-10)
    assert value != pytest.approx(rho.mean(), abs=1e-6)


def test_cca_family_of_low_rank_layers_with_more_features_than_samples(rng):
    x, y, zx, zy = _low_rank_wide(rng, n=100)
    pair = _pair(x, y)
    assert pair.a.gram_route and pair.b.gram_route
    assert (pair.a.rank, pair.b.rank) == (20, 15)
    qx, qy = _qr_basis(zx), _qr_basis(zy)  # the same column spaces as the centred X, Y
    rho, _ = reference.canonical(qx, qy)
    assert evaluate(pair, "cca_mean").value == pytest.approx(rho.mean(), abs=1e-9)
    assert evaluate(pair, "pwcca").value == pytest.approx(
        reference.pwcca_from_bases(x, qx, qy), abs=1e-9
    )
    svcca = reference.canonical(reference.svd_basis(x, 0.99), reference.svd_basis(y, 0.99))[
        0
    ].mean()
    assert evaluate(pair, "svcca").value == pytest.approx(svcca, abs=1e-9)
    # and with a narrow second layer (feature route on one side only)
    narrow = _pair(x, zy[:, :8])
    expected = reference.canonical(qx, _qr_basis(zy[:, :8]))[0].mean()
    assert evaluate(narrow, "cca_mean").value == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("n", "pa", "pb"), [(40, 60, 50), (40, 5, 100), (20, 12, 10)])
def test_full_rank_wide_layers_give_nan_with_degenerate_reason_for_cca_only(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    pair = _pair(x, y)
    for metric in CCA_FAMILY:
        result = evaluate(pair, metric)
        assert math.isnan(result.value) and "degenerate" in result.reason, metric
    for metric in KERNEL_FAMILY:
        result = evaluate(pair, metric)
        assert 0.0 < result.value <= 1.0 and result.reason == "", metric


def test_cca_degeneracy_boundary_is_rank_sum_equal_to_n(rng):
    x = rng.standard_normal((20, 10))
    at_boundary = _pair(x, rng.standard_normal((20, 10)))
    below = _pair(x, rng.standard_normal((20, 9)))
    for metric in ("cca_mean", "pwcca"):
        assert "degenerate" in evaluate(at_boundary, metric).reason
        result = evaluate(below, metric)
        assert 0.0 <= result.value <= 1.0 and result.reason == ""


def test_cca_rank_ignores_redundant_features(rng):
    z = rng.standard_normal((30, 4))
    layer = layer_factors(z @ rng.standard_normal((4, 12)))  # 12 features, rank 4
    assert layer.rank == 4
    pair = PairFactors(layer, layer_factors(rng.standard_normal((30, 5))))
    for metric in CCA_FAMILY:
        result = evaluate(pair, metric)
        assert result.reason == "" and 0.0 <= result.value <= 1.0


# --- dead neurons, constant layers, too few samples ---------------------------------------------


def _with_dead_columns(x: np.ndarray, rng) -> np.ndarray:
    """``x`` with 4 neurons that do not vary: exact zeros (inactive), an exact constant, ones,
    and a constant whose float64 mean is inexact."""
    n = len(x)
    inexact = np.full(n, rng.uniform(-1, 1))
    return np.column_stack([x[:, :2], np.zeros(n), x[:, 2:], np.full(n, 0.3), np.ones(n), inexact])


@pytest.mark.parametrize("metric", METRICS)
def test_neurons_that_do_not_vary_are_dropped_counted_and_do_not_change_the_value(metric, rng):
    x, y = _related(rng, 100, 6, 7)
    dead_x, dead_y = _with_dead_columns(x, rng), _with_dead_columns(y, rng)
    layer = layer_factors(dead_x)
    assert (layer.stats.constant, layer.stats.inactive, layer.p) == (3, 1, 6)
    expected = similarity(x, y, metric)
    assert similarity(dead_x, y, metric) == pytest.approx(expected, abs=1e-10)
    assert similarity(x, dead_y, metric) == pytest.approx(expected, abs=1e-10)
    assert similarity(dead_x, dead_y, metric) == pytest.approx(expected, abs=1e-10)


def test_float32_relu_units_that_never_fire_are_counted_apart_from_constant_ones(rng):
    x = np.maximum(rng.standard_normal((64, 10)), 0).astype(np.float32)
    x[:, [1, 4]] = 0.0  # ReLUs that never fire
    x[:, 7] = np.float32(0.1)  # a unit stuck at a constant
    # constant up to float32 rounding jitter (a value computed in different orders)
    x[:, 8] = np.float32(3.0) + np.float32(3.0) * np.finfo(np.float32).eps * (np.arange(64) % 2)
    stats = layer_factors(torch.from_numpy(x)).stats
    assert (stats.inactive, stats.constant, stats.p) == (2, 2, 6)


@pytest.mark.parametrize("scale", [1e-9, 1e-30, 1e30])
def test_a_live_neuron_is_kept_whatever_its_scale_relative_to_the_others(scale, rng):
    # The rule is per neuron (std against its own mean's rounding), so a small live neuron
    # next to large ones is kept, and CCA, invariant to scaling single neurons, is unchanged.
    x, y = _related(rng, 200, 5, 4)
    small = x.copy()
    small[:, 0] *= scale
    assert layer_factors(small).p == 5
    assert similarity(small, y, "cca_mean") == pytest.approx(similarity(x, y, "cca_mean"), abs=1e-9)


def test_non_finite_neurons_are_a_reason_of_their_own(rng):
    x, y = _related(rng, 50, 4, 4)
    x[:, 1] = 0.0
    x[7, 2] = np.nan
    stats = layer_factors(x).stats
    assert (stats.nonfinite, stats.inactive, stats.constant, stats.p) == (1, 1, 0, 2)
    value = similarity(x, y, "cka_linear")
    assert math.isnan(value) and "non-finite" in value.reason and "constant" not in value.reason


CONSTANT_LAYERS = {
    "zeros": lambda rng, n: np.zeros((n, 4)),
    "exact": lambda rng, n: np.full((n, 4), 0.5),
    # e.g. a fully pruned layer's bias: the float64 mean of such a column is inexact
    "inexact": lambda rng, n: np.tile(rng.uniform(-1, 1, size=(1, 4)), (n, 1)),
    "inexact_float32": lambda rng, n: np.full((n, 4), np.float32(0.1)),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", list(CONSTANT_LAYERS))
@pytest.mark.parametrize("side", ["first", "second"])
def test_constant_layer_gives_nan_with_a_reason(metric, kind, side, rng):
    x = rng.standard_normal((50, 5))
    constant = CONSTANT_LAYERS[kind](rng, 50)
    stats = layer_factors(constant).stats
    assert stats.p == 0
    assert (stats.inactive, stats.constant) == ((4, 0) if kind == "zeros" else (0, 4))
    pair = _pair(constant, x) if side == "first" else _pair(x, constant)
    result = evaluate(pair, metric)
    assert math.isnan(result.value)
    assert side in result.reason and "does not vary" in result.reason
    assert math.isnan(similarity(x, constant, metric))


def test_debiased_cka_needs_four_samples(rng):
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    result = evaluate(_pair(x, y), "cka_debiased")
    assert math.isnan(result.value) and "n >= 4" in result.reason
    assert not math.isnan(evaluate(_pair(x, y), "cka_linear").value)
    four = evaluate(_pair(rng.standard_normal((4, 1)), rng.standard_normal((4, 1))), "cka_debiased")
    assert not math.isnan(four.value) and four.reason == ""


# --- inputs -----------------------------------------------------------------------------------

# Machine epsilons as Python floats: pytest.approx takes only Python numbers as tolerances.
DTYPES = {
    "numpy_float32": (lambda a: a.astype(np.float32), float(np.finfo(np.float32).eps)),
    "torch_float32": (
        lambda a: torch.tensor(a, dtype=torch.float32),
        float(np.finfo(np.float32).eps),
    ),
    "torch_float16": (
        lambda a: torch.tensor(a, dtype=torch.float16),
        float(np.finfo(np.float16).eps),
    ),
}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_lower_precision_inputs_agree_with_float64(metric, dtype, rng):
    convert, eps = DTYPES[dtype]
    x, y = _related(rng, 100, 8, 6)
    x, y = x / x.std(), y / y.std()
    # Inputs exactly representable in the dtype: computed in float64 all the same.
    rounded_x = np.asarray(convert(x), dtype=np.float64)
    rounded_y = np.asarray(convert(y), dtype=np.float64)
    exact = similarity(rounded_x, rounded_y, metric)
    assert similarity(convert(x), convert(y), metric) == pytest.approx(exact, abs=1e-12)
    # Against the unrounded float64 data: within the dtype's rounding.
    assert similarity(convert(x), y, metric) == pytest.approx(
        similarity(x, y, metric), abs=10 * eps
    )


def test_different_sample_counts_raise(rng):
    with pytest.raises(ValueError, match="sample counts"):
        similarity(rng.standard_normal((10, 3)), rng.standard_normal((11, 3)), "cka_linear")


def test_non_matrix_input_raises(rng):
    with pytest.raises(ValueError, match="2-D"):
        similarity(rng.standard_normal(10), rng.standard_normal((10, 3)), "cka_linear")


def test_layer_output_without_view_asks_for_one(rng):
    with pytest.raises(ValueError, match=r"shape \(10, 3, 2\) needs a view.*flatten"):
        similarity(rng.standard_normal((10, 3, 2)), rng.standard_normal((10, 3)), "cka_linear")


def test_unknown_metric_raises_naming_known_metrics(rng):
    x = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match="unknown metric 'rsa'") as err:
        similarity(x, x, "rsa")
    for name in METRICS:
        assert name in str(err.value)


@pytest.mark.parametrize(
    "options", [{"cca_threshold": 0.0}, {"svcca_variance": 1.5}, {"rbf_sigma": 0.0}]
)
def test_invalid_options_raise(options, rng):
    x = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=next(iter(options))):
        similarity(x, x, "cka_linear", **options)


# --- definitions --------------------------------------------------------------------------------


def test_definitions_name_every_metric_with_a_reference_and_record_the_options():
    options = MetricOptions(cca_threshold=0.98, svcca_variance=0.95, rbf_sigma=0.5)
    recorded = definitions(METRICS, options)
    assert list(recorded["metrics"]) == list(METRICS)
    for metric in METRICS:
        entry = recorded["metrics"][metric]
        assert entry["definition"].strip() and entry["reference"].strip()
        assert any(ch.isdigit() for ch in entry["reference"])  # a year
    assert recorded["options"] == asdict(options)
    assert definitions(METRICS, MetricOptions())["options"] == {
        "cca_threshold": None,
        "svcca_variance": 0.99,
        "rbf_sigma": 1.0,
        "pairwise_max_samples": 10_000,
        "knn_k": 10,
    }


@pytest.mark.parametrize("factor", [5e-6, 1e-4, 1e3])
def test_cca_rank_decision_is_invariant_to_scaling_one_neuron(factor):
    """CCA is invariant to rescaling a neuron; deciding the rank on XᵀX of the raw neurons
    would drop a neuron scaled by 5e-6 (its eigenvalue falls below rank_tol) and change it."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((200, 6))
    y = x @ rng.standard_normal((6, 5)) + rng.standard_normal((200, 5))
    scaled = x.copy()
    scaled[:, -1] *= factor
    assert layer_factors(scaled).rank == 6
    assert similarity(scaled, y, "cca_mean") == pytest.approx(
        similarity(x, y, "cca_mean"), abs=1e-9
    )


# --- fast factorisations agree with the slow ones ---------------------------------------------


def _singular_value_cases(rng) -> dict[str, np.ndarray]:
    wide = rng.standard_normal((30, 50))
    return {
        "wide": wide,
        "tall": wide.T.copy(),
        "square_graded": rng.standard_normal((40, 40)) * np.geomspace(1.0, 1e-3, 40),
        "rank_deficient": rng.standard_normal((30, 5)) @ rng.standard_normal((5, 20)),
        "tiny_value": np.diag([1.0, 0.5, 1e-9]) @ _orthogonal(rng, 3),
    }


@pytest.mark.parametrize("case", ["wide", "tall", "square_graded", "rank_deficient", "tiny_value"])
def test_singular_values_from_the_gram_eigenvalues_equal_lapack_svd(case, rng, monkeypatch):
    matrix = _singular_value_cases(rng)[case]
    lapack_u, lapack_s, _ = np.linalg.svd(matrix, full_matrices=False)
    calls = []
    original = np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **k: calls.append(1) or original(*a, **k))
    sigma, _ = factors.singular_values(matrix)
    np.testing.assert_allclose(sigma, lapack_s, rtol=0, atol=1e-12 * lapack_s[0])
    sigma, u = factors.singular_values(matrix, left_vectors=True)
    np.testing.assert_allclose(sigma, lapack_s, rtol=0, atol=1e-12 * lapack_s[0])
    np.testing.assert_allclose(u.T @ u, np.eye(u.shape[1]), atol=1e-10)
    defined = lapack_s > 1e-6 * lapack_s[0]  # directions of (near-)zero values are arbitrary
    overlap = np.abs(np.sum(u[:, defined] * lapack_u[:, defined], axis=0))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    # tiny or zero singular values are resolved by the LAPACK SVD, the others without it
    assert bool(calls) == (case in ("rank_deficient", "tiny_value"))


def _eigen_whitened(monkeypatch) -> None:
    monkeypatch.setattr(factors, "cholesky_basis", lambda *args: None)


@pytest.mark.parametrize("metric", CCA_FAMILY)
def test_cholesky_whitening_equals_eigen_whitening(metric, rng, monkeypatch):
    x, y = _decaying(rng, 150, 12, 9)
    pair = _pair(x, y)
    assert isinstance(pair.a.basis(standardized=True), factors.CholeskyBasis)
    fast = evaluate(pair, metric).value
    _eigen_whitened(monkeypatch)
    eigen_pair = _pair(x, y)
    assert isinstance(eigen_pair.a.basis(standardized=True), factors.Basis)
    assert fast == pytest.approx(evaluate(eigen_pair, metric).value, abs=1e-12)


def test_cholesky_whitening_is_used_only_where_the_eigen_rank_decision_keeps_every_direction(rng):
    """Correlation matrices whose smallest eigenvalue sweeps across rank_tol × the largest: the
    Cholesky basis is certified only where the eigendecomposition (the documented decision)
    finds full rank too, and it is certified well above the threshold."""
    q = _orthogonal(rng, 6)
    certified = []
    for smallest in np.geomspace(1e-14, 1e-4, 41):
        cov = (q * np.array([3.0, 1.0, 1.0, 0.5, 0.5, smallest])) @ q.T
        scale = np.sqrt(np.diag(cov))
        corr = cov / np.outer(scale, scale)
        full_rank = factors.Basis.from_cov(corr, factors.RANK_TOL).rank == 6
        if factors.cholesky_basis(corr, scale, factors.RANK_TOL) is not None:
            assert full_rank, smallest
            certified.append(smallest)
        elif smallest < 1e-11:
            assert not full_rank, smallest
    assert certified and min(certified) < 1e-8


@pytest.mark.parametrize("case", ["full_rank", "low_rank", "one_neuron_scaled_down"])
def test_gram_rank_certificate_agrees_with_the_eigen_rank_decision(case, rng):
    n = 40
    x = rng.standard_normal((n, 90))
    if case == "low_rank":
        x = rng.standard_normal((n, 12)) @ rng.standard_normal((12, 90))
    elif case == "one_neuron_scaled_down":
        x[:, 0] *= 1e-4  # live, but 1e-8 in the Gram bound
    layer = layer_factors(x)
    assert layer.gram_route
    eigen_rank = layer.basis(standardized=True).rank
    assert eigen_rank == (12 if case == "low_rank" else n - 1)
    # Certified only where the eigendecomposition finds full rank; the bound is conservative
    # under very unequal neuron scales, and the eigendecomposition then decides.
    certified = factors.gram_has_full_rank(layer.gram, layer.scale, factors.RANK_TOL)
    assert certified == (case == "full_rank")
    assert layer.rank == eigen_rank


@pytest.mark.parametrize("variance", [0.99, 0.9])
def test_svcca_of_a_wide_layer_and_a_narrow_one_equals_truncated_svd_then_cca(variance, rng):
    x, _, _, zy = _low_rank_wide(rng, n=100)
    y = zy[:, :8] @ rng.standard_normal((8, 8))
    pair = _pair(x, y)
    assert pair.a.gram_route and not pair.b.gram_route
    bx, by = reference.svd_basis(x, variance), reference.svd_basis(y, variance)
    expected = reference.canonical(bx, by)[0].mean()
    value = evaluate(pair, "svcca", MetricOptions(svcca_variance=variance)).value
    assert value == pytest.approx(expected, abs=1e-9)
    swapped = evaluate(_pair(y, x), "svcca", MetricOptions(svcca_variance=variance)).value
    assert swapped == pytest.approx(expected, abs=1e-9)


def test_degenerate_svcca_is_decided_without_principal_directions(rng, monkeypatch):
    """A wide layer whose 99% of variance needs nearly all n directions: SVCCA is NaN, decided
    from eigenvalues alone (no eigenvectors of the n × n Gram matrix are computed)."""
    x, y = rng.standard_normal((80, 300)), rng.standard_normal((80, 30))
    pair = _pair(x, y)
    calls = []
    original = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda m: calls.append(m.shape) or original(m))
    result = evaluate(pair, "svcca")
    assert np.isnan(result.value) and "CCA degenerate" in result.reason
    assert not calls  # neither layer was eigendecomposed
    assert pair.a.variance_rank(0.99) + pair.b.variance_rank(0.99) >= 80  # and it is degenerate


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize(("n", "p", "decay"), [(200, 30, 0.0), (200, 30, 2.0), (40, 90, 0.5)])
def test_variance_rank_bound_never_exceeds_the_variance_rank(n, p, decay, fraction, rng):
    """The Cauchy-Schwarz bound that lets SVCCA skip eigendecompositions is a lower bound
    (flat and steeply decaying spectra, p < n and p > n)."""
    for _ in range(5):
        x = rng.standard_normal((n, p)) * np.arange(1, p + 1) ** -decay
        layer = layer_factors(x)
        assert 0 <= layer.variance_rank_bound(fraction) <= layer.variance_rank(fraction)


@pytest.mark.parametrize("metric", KERNEL_FAMILY)
@pytest.mark.parametrize(("n", "pa", "pb"), [(3000, 120, 80), (300, 500, 60)])
def test_float32_products_agree_with_float64_within_1e_6(metric, n, pa, pb, rng):
    """Float32 products summed in float64 over blocks of rows: the kernel metrics keep six
    digits (ReLU-like, offset, correlated data; narrow and wide layers, several blocks)."""
    latent = rng.standard_normal((n, 30))
    x = np.maximum(latent @ rng.standard_normal((30, pa)), 0.0) + 3.0
    y = latent[:, :10] @ rng.standard_normal((10, pb)) + rng.standard_normal((n, pb))
    x, y = x.astype(np.float32), y.astype(np.float32)
    exact = similarity(x, y, metric)
    assert similarity(x, y, metric, float32_products=True) == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("total_rows", [True, False])
@pytest.mark.parametrize("keep_data", [True, False])
def test_chunks_centred_in_a_reused_buffer_accumulate_the_whole_centred_data(
    keep_data, total_rows, rng
):
    """Each chunk is converted and centred into one buffer reused from chunk to chunk: the kept
    data, covariance and row norms must still be those of the whole centred matrix (float32
    input, a dead neuron, chunks of unequal length)."""
    x = rng.standard_normal((37, 6)).astype(np.float32)
    x[:, 2] = 3.0  # dead
    blocks = [x[start : start + 8] for start in range(0, len(x), 8)]
    moments = stats.ColumnMoments(x.shape[1])
    for block in blocks:
        moments.add(block)
    live = moments.live()
    acc = moments.accumulator(keep_data)
    if not total_rows:
        acc.total_rows = None
    for block in blocks:
        acc.add(acc.centred(block))
    result = acc.result()
    expected = x[:, live].astype(np.float64) - x[:, live].astype(np.float64).mean(axis=0)
    assert (result.constant, result.inactive) == (1, 0)
    np.testing.assert_allclose(result.row_sq, (expected**2).sum(axis=1), rtol=1e-12)
    if keep_data:
        np.testing.assert_allclose(result.data, expected, rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(result.cov, expected.T @ expected, rtol=1e-12, atol=1e-13)


# --- a single float64 call from the raw products (prunesim.metrics.raw_products) --------------

RAW = [m for m in METRICS if REGISTRY[m].raw_products]
NOT_PAIRWISE = [m for m in METRICS if not REGISTRY[m].needs_pairwise and m not in NEIGHBOURHOOD]


def _spied_raw_pairs(monkeypatch) -> list:
    """The results of every raw_pair call similarity() makes (None: refused)."""
    results = []
    real = raw_products.raw_pair

    def spy(*args, **kwargs):
        results.append(real(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(metrics_module, "raw_pair", spy)
    return results


def test_a_single_float64_call_takes_the_raw_products_with_the_streamed_statistics(
    rng, monkeypatch
):
    x, y = _related(rng, 300, 12, 9)
    x += 3.0 * x.std(axis=0)  # each neuron's mean 3 stds from 0
    x[:, 4] = 0.0  # inactive
    raw = raw_products.raw_pair(x, y, covariances=True, cross=True, row_norms=True)
    assert raw is not None
    streamed = pair_factors(x, y, keep_data=True)  # keep_data: the two passes, centring first
    for got, want in zip(raw[:2], (streamed.a.stats, streamed.b.stats), strict=True):
        assert (got.constant, got.inactive) == (want.constant, want.inactive)
        np.testing.assert_allclose(
            got.mean, want.mean, rtol=0, atol=1e-14 * np.abs(want.data).max()
        )
        cov = want.data.T @ want.data
        np.testing.assert_allclose(got.cov, cov, rtol=0, atol=1e-13 * np.abs(cov).max())
        np.testing.assert_allclose(got.row_sq, want.row_sq, rtol=1e-13)
        assert got.trace is None  # one home: the rows' sum
    # without the row norms, each side's trace from its columns' centred sums of squares
    traces = [s.trace for s in raw_products.raw_pair(x, y, True, True, row_norms=False)[:2]]
    for got, want in zip(traces, (streamed.a.stats, streamed.b.stats), strict=True):
        assert got == pytest.approx(want.row_sq.sum(), rel=1e-13)
    cross = streamed.a.stats.data.T @ streamed.b.stats.data
    np.testing.assert_allclose(raw[2], cross, rtol=0, atol=1e-13 * np.abs(cross).max())
    taken = _spied_raw_pairs(monkeypatch)
    for metric in METRICS:
        expected = evaluate(streamed, metric).value
        assert similarity(x, y, metric) == pytest.approx(expected, abs=1e-12), metric
    assert len(taken) == len(RAW) and all(r is not None for r in taken)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda x: x.__setitem__((slice(None), 2), 7.0),  # a constant neuron
        lambda x: x.__setitem__((slice(None), 1), x[:, 1] + 9.0 * x[:, 1].std()),
        lambda x: x.__setitem__((5, 0), np.nan),
        lambda x: x.__imul__(1e200),  # the scale check would rescale
        lambda x: x.__imul__(1e-200),
        lambda x: x.__setitem__((slice(None), 3), 1e-170),  # its squares underflow to 0
    ],
    ids=["constant", "mean_9_stds", "nan", "huge", "tiny", "underflowing"],
)
def test_the_raw_products_are_refused_where_only_centring_first_is_exact(spoil, rng):
    x, y = _related(rng, 200, 6, 5)
    spoil(x)
    assert raw_products.raw_pair(x, y, True, True, True) is None
    streamed = pair_factors(x, y, keep_data=True)
    for metric in NOT_PAIRWISE:
        expected = evaluate(streamed, metric).value
        assert similarity(x, y, metric) == pytest.approx(expected, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: (rng.standard_normal((50, 60)), rng.standard_normal((50, 4))),  # p > n
        lambda rng: tuple(a.astype(np.float32) for a in _related(rng, 50, 4, 3)),
        lambda rng: _related(rng, raw_products.MIN_SAMPLES - 1, 4, 3),
    ],
    ids=["more_neurons_than_samples", "float32", "too_few_samples"],
)
def test_the_raw_products_are_only_for_float64_arrays_with_p_at_most_n_and_enough_samples(
    make, rng
):
    assert raw_products.raw_pair(*make(rng), True, True, True) is None


def test_debiased_cka_of_four_samples_at_the_bound_stays_within_1e_12_of_centring_first():
    # the smallest n the estimator is defined for: its terms nearly cancel, and the raw
    # products' rounding exceeded 1e-12 in 5 of these 200 draws (up to 6.4e-12), so a single
    # call below MIN_SAMPLES must centre first
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        sides = []
        for p in (3, 2):
            a = rng.standard_normal((4, p))
            std = rng.uniform(0.1, 10.0, p)
            a = (a - a.mean(axis=0)) / a.std(axis=0) * std
            sides.append(a + rng.uniform(7.9, 7.99) * std * rng.choice([-1.0, 1.0], p))
        expected = evaluate(pair_factors(*sides), "cka_debiased").value
        worst = max(worst, abs(similarity(*sides, "cka_debiased") - expected))
    assert worst <= 1e-12


def test_the_raw_products_start_at_min_samples_where_debiased_cka_no_longer_amplifies(rng):
    # at n = 4 the debiased estimator's nearly cancelling terms took the raw products'
    # rounding to 6e-11 (benchmarks/raw_products_accuracy.py); from MIN_SAMPLES on it is that
    # of the products
    x, y = _related(rng, raw_products.MIN_SAMPLES, 4, 3)
    x = x - x.mean(axis=0) + 7.9 * x.std(axis=0)  # every neuron at 7.9 stds, inside the bound
    assert raw_products.raw_pair(x, y, True, True, True) is not None
    expected = evaluate(pair_factors(x, y), "cka_debiased").value
    assert similarity(x, y, "cka_debiased") == pytest.approx(expected, abs=1e-12)


def test_at_the_mean_to_std_bound_the_raw_products_agree_with_the_reference_formulas(
    rng, monkeypatch
):
    # |mean| = 7.9 stds on every neuron of both sides: the raw products' rounding is near its
    # largest (65 times centring first's); measured within 7e-14 on twelve such draws
    x, y = _related(rng, 2000, 20, 15)
    x += 7.9 * x.std(axis=0)
    y -= 7.9 * y.std(axis=0)
    taken = _spied_raw_pairs(monkeypatch)
    for metric in NOT_PAIRWISE:
        expected = reference.REFERENCES[metric](x, y)
        assert similarity(x, y, metric) == pytest.approx(expected, abs=1e-12), metric
    assert len(taken) == len(RAW) and all(r is not None for r in taken)


def test_tall_narrow_layers_at_the_bound_stay_within_the_rounding_model(rng, monkeypatch):
    # one neuron over 50,000 samples (a channels view's shape): nothing averages the rounding
    # out, which grows like the square root of n; the model's bound is 1e-11
    n = 50_000
    x = rng.standard_normal((n, 1))
    y = 0.999 * x @ np.ones((1, 2)) + 0.045 * rng.standard_normal((n, 2))
    x = x - x.mean(axis=0) + 7.99 * x.std(axis=0)
    y = y - y.mean(axis=0) - 7.99 * y.std(axis=0)
    taken = _spied_raw_pairs(monkeypatch)
    streamed = pair_factors(x, y, keep_data=True)
    for metric in RAW:
        expected = evaluate(streamed, metric).value
        assert similarity(x, y, metric) == pytest.approx(expected, abs=1e-11), metric
    assert len(taken) == len(RAW) and all(r is not None for r in taken)


def test_the_mean_to_std_bound_tightens_with_the_number_of_samples(rng):
    # (1 + (mean/std)²) √n <= 45,036: at a million samples 6 stds pass and 7 do not
    x = rng.standard_normal((1_000_000, 1))
    y = rng.standard_normal((1_000_000, 1))
    x = (x - x.mean()) / x.std()
    assert raw_products.raw_pair(x + 6.0, y, True, True, True) is not None
    assert raw_products.raw_pair(x + 7.0, y, True, True, True) is None
    assert raw_products.raw_pair(x[:400_000] + 7.0, y[:400_000], True, True, True) is not None


# --- what is not an activation matrix, non-finite values, extreme scales ----------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda rng: np.zeros((0, 3)), "at least one sample and one neuron"),
        (lambda rng: np.zeros((5, 0)), "at least one sample and one neuron"),
        (lambda rng: np.array([["a", "b"], ["c", "d"]]), "real numbers, got dtype <U1"),
        (lambda rng: np.array([[1, None], [2, 3]], dtype=object), "real numbers, got dtype object"),
        (lambda rng: rng.standard_normal((6, 2)) + 1j, "real numbers, got dtype complex128"),
        (lambda rng: torch.ones(6, 2, dtype=torch.complex64), "real numbers, got torch.complex64"),
        (lambda rng: rng.standard_normal(6), "2-D n × p array"),
    ],
    ids=["no_rows", "no_columns", "strings", "objects", "complex", "torch_complex", "vector"],
)
def test_what_is_not_an_activation_matrix_raises_naming_what_is_wrong(make, match, rng):
    bad = make(rng)
    with pytest.raises(ValueError, match=match):
        similarity(bad, bad, "cka_linear")


def test_different_row_counts_raise_before_any_work(rng):
    with pytest.raises(ValueError, match="different sample counts: 6 and 5"):
        similarity(rng.standard_normal((6, 2)), rng.standard_normal((5, 2)), "nbs")


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    "values", [(math.nan,), (math.inf,), (-math.inf,), (math.inf, -math.inf)], ids=str
)
def test_non_finite_input_gives_nan_with_its_own_reason(metric, values, rng):
    x, y = _related(rng, 60, 5, 4)
    x[7 : 7 + len(values), 2] = values
    for first, second, side in ((x, y, "first"), (y, x, "second")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # reported in the reason, not by numpy's warnings
            result = similarity(first, second, metric)
        assert math.isnan(result)
        assert result.reason == (
            f"{side} representation has non-finite values (NaN or infinity) in 1 neuron"
        )


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_huge_finite_neuron_beside_a_non_finite_one_is_not_counted_as_non_finite(value, rng):
    # the scale check brings the finite values near 1, so the huge neuron's sum cannot overflow
    x, y = _related(rng, 60, 5, 4)
    x[:, 1] *= 1e307
    x[7, 2] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = similarity(x, y, "cka_linear")
    assert math.isnan(result)
    assert (
        result.reason == "first representation has non-finite values (NaN or infinity) in 1 neuron"
    )


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e-80, 1e-50, 1e40, 1e55, 1e76, 1e150, 1e300])
def test_metrics_are_invariant_to_scale_across_the_float64_range(metric, scale, rng):
    x, y = _related(rng, 80, 6, 5)
    reference = similarity(x, y, metric)
    assert similarity(x * scale, y, metric) == pytest.approx(reference, abs=1e-12)
    assert similarity(x, y * scale, metric) == pytest.approx(reference, abs=1e-12)
    assert similarity(x * scale, y * scale, metric) == pytest.approx(reference, abs=1e-12)


def test_similarity_is_a_float_that_carries_the_reason_of_a_nan(rng):
    x = rng.standard_normal((20, 3))
    defined = similarity(x, x, "cka_linear")
    assert isinstance(defined, float) and defined == pytest.approx(1.0) and defined.reason == ""
    undefined = similarity(np.ones((20, 3)), x, "cka_linear")
    assert math.isnan(undefined)
    assert undefined.reason == (
        "first representation does not vary: its 3 constant and 0 inactive (zero on every "
        "sample) neurons were dropped"
    )
    assert "constant" in repr(undefined)


# --- the shape and neighbourhood measures against independent formulas ---------------------------


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_procrustes_is_the_angle_after_the_best_rotation(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    assert similarity(x, y, "procrustes") == pytest.approx(reference.procrustes(x, y), abs=1e-9)
    assert math.cos(similarity(x, y, "procrustes")) == pytest.approx(
        similarity(x, y, "nbs"), abs=1e-12
    )


def test_procrustes_satisfies_the_triangle_inequality(rng):
    # the angular shape distance is a metric (Williams et al. 2021)
    for _ in range(20):
        base = rng.standard_normal((50, 4))
        x, y, z = (base @ rng.standard_normal((4, 6)) + rng.standard_normal((50, 6)) for _ in "xyz")
        xy, yz = similarity(x, y, "procrustes"), similarity(y, z, "procrustes")
        assert similarity(x, z, "procrustes") <= xy + yz + 1e-12


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
@pytest.mark.parametrize("k", [1, 5])
def test_knn_jaccard_equals_sklearn_neighbour_sets(n, pa, pb, k, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    expected = reference.knn_jaccard(x, y, k)
    assert similarity(x, y, "knn_jaccard", knn_k=k) == pytest.approx(expected, abs=1e-12)


def test_knn_jaccard_needs_more_samples_than_neighbours(rng):
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    value = similarity(x, y, "knn_jaccard", knn_k=8)
    assert math.isnan(value) and "knn_k = 8" in value.reason
    with pytest.raises(ValueError, match="knn_k must be >= 1"):
        similarity(x, y, "knn_jaccard", knn_k=0)


@pytest.mark.parametrize(("n", "pa", "pb"), SHAPES)
def test_rsa_is_spearman_between_distance_matrices(n, pa, pb, rng):
    x, y = _kernel_pair(rng, n, pa, pb)
    expected = reference.rsa_spearman(x, y)
    assert similarity(x, y, "rsa_spearman") == pytest.approx(expected, abs=1e-10)


def test_rsa_and_knn_are_invariant_to_rigid_maps_and_scaling_but_not_to_stretching(rng):
    x, y = _related(rng, 80, 5, 4)
    stretch = np.diag([10.0, 1.0, 1.0, 1.0, 0.1])
    for metric in ("rsa_spearman", "knn_jaccard"):
        before = similarity(x, y, metric)
        moved = x @ _orthogonal(rng, 5) * 7.0 + 3.0
        assert similarity(moved, y, metric) == pytest.approx(before, abs=1e-12)
        assert abs(similarity(x @ stretch, y, metric) - before) > 1e-2


def test_pairwise_measures_are_nan_above_pairwise_max_samples(rng):
    # RBF CKA is not: similarity() computes it in tiles there (tested above)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 3))
    for metric in ("knn_jaccard", "rsa_spearman"):
        value = similarity(x, y, metric, pairwise_max_samples=29)
        assert math.isnan(value) and "pairwise_max_samples = 29" in value.reason


@pytest.mark.parametrize("ties", [False, True])
def test_average_ranks_equal_scipys_rankdata_exactly(ties, rng):
    from scipy.stats import rankdata

    for size in (1, 2, 7, 500):
        values = rng.integers(0, 4, size).astype(float) if ties else rng.standard_normal(size)
        np.testing.assert_array_equal(factors.average_ranks(values), rankdata(values))
    assert np.isnan(factors.average_ranks(np.array([1.0, np.nan, 2.0]))).all()


@pytest.mark.parametrize("ties", [False, True])
def test_nearest_equals_a_stable_full_sort_whatever_the_ties(ties, rng):
    for n, k in ((40, 1), (40, 10), (40, 39), (40, 40), (7, 3)):
        distances = rng.integers(0, 3, (n, n)).astype(float) if ties else rng.random((n, n))
        np.fill_diagonal(distances, np.inf)
        expected = np.argsort(distances, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(factors.nearest(distances, k), expected)


@pytest.mark.parametrize("standardized", [False, True])
def test_a_draw_with_repeated_rows_has_the_basis_of_its_full_gram_matrix(standardized, rng):
    distinct = rng.standard_normal((25, 60)) * np.linspace(0.2, 3.0, 60)
    rows = rng.integers(0, 25, 40)  # 40 rows repeating at most 25 distinct ones
    data = distinct[rows] - distinct[rows].mean(axis=0)
    repeats = factors.Repeats.of(rows)
    assert repeats is not None and len(repeats.first) == len(np.unique(rows))
    plain, fast = layer_factors(data), layer_factors(data)
    fast.repeats = repeats
    a, b = plain.basis(standardized), fast.basis(standardized)
    assert a.rank == b.rank == len(np.unique(rows)) - 1
    np.testing.assert_allclose(b.singular_values, a.singular_values, rtol=1e-10)
    # the same subspace: equal projectors (vectors of equal values may rotate within it)
    np.testing.assert_allclose(
        b.left_vectors @ b.left_vectors.T, a.left_vectors @ a.left_vectors.T, atol=1e-10
    )
    assert fast.rank == plain.rank
    assert factors.Repeats.of(rng.permutation(10)) is None


@pytest.mark.parametrize("tile", [7, 64, 1024])
def test_rbf_cka_above_the_pairwise_cap_is_computed_in_tiles_and_equals_the_kernels(tile, rng):
    from prunesim.metrics import rbf_blocks

    x, y = _related(rng, 150, 12, 9)
    expected = similarity(x, y, "cka_rbf", rbf_sigma=0.8)
    tiled = rbf_blocks.rbf_cka(x - x.mean(axis=0), y - y.mean(axis=0), 0.8, tile=tile)
    assert tiled == (pytest.approx(float(expected), abs=1e-12), "")
    # what similarity() does above the cap (where it was NaN before), independent of tiles
    above = similarity(x, y, "cka_rbf", rbf_sigma=0.8, pairwise_max_samples=100)
    assert above == pytest.approx(float(expected), abs=1e-12) and above.reason == ""


def test_the_tiled_median_is_exact_even_when_its_sampled_bracket_misses(rng, monkeypatch):
    from prunesim.metrics import rbf_blocks

    x = rng.standard_normal((90, 5))
    x[:30] = x[0]  # many equal samples: ties at the median
    x -= x.mean(axis=0)
    rows, cols = np.triu_indices(len(x), k=1)
    distances = ((x[rows] - x[cols]) ** 2).sum(axis=1)
    for brackets in (rbf_blocks.BRACKETS, ((0.0, 0.01), (0.99, 1.0), (0.0, 1.0))):
        monkeypatch.setattr(rbf_blocks, "BRACKETS", brackets)
        median = rbf_blocks.median_sq_distance(x, tile=16)
        assert median == pytest.approx(np.median(distances), rel=1e-12)


def test_tiled_rbf_cka_gives_the_kernels_reasons_for_nan(rng):
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 4))
    x[:30] = x[0]  # most pairs of samples at distance 0: the median is 0
    for cap in (10_000, 8):  # in memory, and in tiles
        value = similarity(x, y, "cka_rbf", pairwise_max_samples=cap)
        assert math.isnan(value) and "median squared distance between samples is 0" in value.reason
    constant = np.ones((40, 3))
    value = similarity(constant, y, "cka_rbf", pairwise_max_samples=8)
    assert math.isnan(value) and "does not vary" in value.reason


def test_tiled_rbf_cka_streams_no_product_to_learn_that_the_pair_is_defined(rng, monkeypatch):
    # above the cap the tiles compute RBF CKA from the arrays: the streaming passes only
    # check the pair (non-finite, constant), so they form neither XᵀY nor the covariances
    from prunesim.metrics import streaming

    x, y = (a.astype(np.float32) for a in _related(rng, 60, 5, 4))  # streamed, not raw_pair
    formed = []
    real = stats.product
    for module in (stats, streaming):  # the covariances, and the streamed XᵀY
        monkeypatch.setattr(
            module, "product", lambda a, b, *rest: formed.append(a.shape) or real(a, b, *rest)
        )
    above = similarity(x, y, "cka_rbf", pairwise_max_samples=20)
    assert formed == []
    similarity(x, y, "cka_linear")  # the spies see the products where they are formed
    assert len(formed) == 3
    assert above == pytest.approx(float(similarity(x, y, "cka_rbf")), abs=1e-12)


@pytest.mark.parametrize("metric", ["nbs", "procrustes"])
def test_metrics_of_the_cross_product_alone_skip_the_covariances_and_agree(
    metric, rng, monkeypatch
):
    # a single call of NBS or Procrustes forms only XᵀY (and the traces), not XᵀX and YᵀY
    x, y = rng.standard_normal((200, 30)), rng.standard_normal((200, 20)) + 2.0
    light = pair_factors(x, y, covariances=False)
    assert light.a.stats.cov is None and light.b.stats.cov is None
    with pytest.raises(ValueError, match="not accumulated"):
        _ = light.a.cov
    full = evaluate(pair_factors(x, y), metric).value
    assert evaluate(light, metric).value == pytest.approx(full, abs=1e-14)
    asked = []
    real = metrics_module.pair_factors
    monkeypatch.setattr(
        metrics_module,
        "pair_factors",
        lambda *args, **kwargs: asked.append(kwargs["covariances"]) or real(*args, **kwargs),
    )
    assert similarity(x, y, metric) == pytest.approx(full, abs=1e-14)
    assert similarity(x, y, "cka_linear") == pytest.approx(
        evaluate(pair_factors(x, y), "cka_linear").value, abs=1e-14
    )
    assert asked == [False, True]


@pytest.mark.parametrize(("pa", "pb"), [(12, 7), (60, 7), (7, 60), (60, 70)])
@pytest.mark.parametrize("metric", [m for m in METRICS if not REGISTRY[m].covariances])
def test_every_metric_is_defined_from_factors_without_covariances_where_it_says_so(
    metric, pa, pb, rng
):
    # a metric that declares it needs no covariance must never ask for one (n = 40 here:
    # p < n, p > n and mixed)
    x, y = rng.standard_normal((40, pa)), rng.standard_normal((40, pb))
    value = evaluate(pair_factors(x, y, covariances=False), metric).value
    assert value == pytest.approx(evaluate(pair_factors(x, y), metric).value, abs=1e-13)


@pytest.mark.parametrize(
    ("values", "scaled_by"),
    [
        (np.array([[-128, 127], [3, -5]], dtype=np.int8), None),  # in range: as it is
        (np.array([[0, 255], [3, 200]], dtype=np.uint8), None),
        (np.array([[True, False], [False, True]]), None),
        (np.array([[-1e250, 1e249], [3.0, -2.0]]), -1e250),  # the peak is the minimum
        (np.array([[1e-250, -3e-251], [0.0, 2e-251]]), 1e-250),
        # the finite values' peak; the NaN and the infinity stay, for pass 1 to report
        (np.array([[np.nan, 1e300], [1.0, 2.0]]), 1e300),
        (np.array([[-np.inf, 1e-300], [0.0, 2e-301]]), 1e-300),
        (np.array([[np.nan, 3.0], [1.0, 2.0]]), None),
    ],
)
def test_data_beyond_the_safe_range_is_scaled_by_a_power_of_two_from_its_peak(values, scaled_by):
    scaled = metrics_module._power_of_two_scaled(values)
    if scaled_by is None:
        assert scaled is values
        return
    finite = np.isfinite(values)
    np.testing.assert_array_equal(scaled[~finite], values[~finite])
    values, scaled = values[finite], scaled[finite]
    factor = scaled[values != 0] / values[values != 0]
    assert np.all(factor == factor.flat[0])  # one exact power of two for every element
    assert np.all(scaled[values == 0] == 0)
    assert math.frexp(float(factor.flat[0]))[0] == 0.5
    assert 0.5 <= abs(scaled_by * factor.flat[0]) < 1.0


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.bool_])
def test_integer_and_boolean_activations_equal_their_float64_copies(dtype, rng):
    # integer and boolean data go through the scale check and the streaming passes as they
    # are (no float copy first) and must give what their float64 copies give
    x = rng.integers(0, 2 if dtype is np.bool_ else 200, size=(120, 12)).astype(dtype)
    y = rng.standard_normal((120, 9))
    for metric in ("cka_linear", "nbs", "cca_mean"):
        assert similarity(x, y, metric) == pytest.approx(
            similarity(x.astype(np.float64), y, metric), abs=1e-13
        )
