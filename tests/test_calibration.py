"""Tests for the calibration of similarity values (prunesim.metrics.calibration): permutation
chance levels and bootstrap intervals.

The draws are checked against the metrics computed from scratch on permuted and resampled
arrays; the null against a known null (p-values of independent data are uniform) and against
the exact permutation mean of linear CKA (the RV coefficient; Kazi-Aoual et al. 1995, Josse,
Pagès & Husson 2008); the summaries against hand-computed ones."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from prunesim.aggregate import over_seeds
from prunesim.metrics import (
    METRICS,
    REGISTRY,
    PairFactors,
    calibrated,
    caution,
    evaluate,
    pair_factors,
    similarity,
)
from prunesim.metrics.calibration import (
    Calibration,
    bootstrap_draws,
    image_rows,
    permutation_draws,
    resampled,
    summarize,
)
from prunesim.metrics.reference import REFERENCES
from prunesim.metrics.streaming import Policy


def _related(rng, n: int, p: int, q: int, noise: float = 1.0):
    x = rng.standard_normal((n, p)) @ rng.standard_normal((p, p))
    y = x @ rng.standard_normal((p, q)) + noise * rng.standard_normal((n, q))
    return x, y


# Shapes that take every route of the factors: covariance (p < n), Gram (p > n) on one or
# both sides, and a low-rank wide second layer (CCA defined although p > n, so its
# standardised Gram-route basis is built, and moved by the permutations).
SHAPES = {
    "narrow": (60, 6, 5),
    "wide_one_side": (40, 8, 70),
    "wide": (30, 50, 45),
    "wide_low_rank": (40, 12, 60),
}
LOW_RANK = {"wide_low_rank": 8}  # the second layer's rank


def _case(rng, shape: str):
    n, p, q = SHAPES[shape]
    if shape in LOW_RANK:
        x, y = _related(rng, n, p, LOW_RANK[shape])
        return x, y @ rng.standard_normal((LOW_RANK[shape], q))
    x, y = _related(rng, n, min(p, q), q)
    if p != min(p, q):
        x = np.column_stack([x, rng.standard_normal((n, p - min(p, q)))])
    return x, y


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_permutation_draw_equals_the_metric_of_freshly_permuted_data(shape, rng):
    x, y = _case(rng, shape)
    pair = pair_factors(x, y, keep_data=True, keep_directions=True)
    for metric in METRICS:  # fill every cache first: reordering must move what is cached
        evaluate(pair, metric)
    orders = Calibration(permutations=3, seed=5).orders(len(x))

    def every(index, permuted):
        return [evaluate(permuted, metric).value for metric in METRICS]

    draws = permutation_draws([(pair.a, pair.b)], every, orders, 1, keep_directions=True)
    assert draws.shape == (1, len(METRICS), 3)
    for k, order in enumerate(orders):
        for m, metric in enumerate(METRICS):
            expected = similarity(x, y[order], metric)
            assert draws[0, m, k] == pytest.approx(expected, abs=1e-9, nan_ok=True), metric


def _tie_exact(metric: str, x: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """RSA (scipy's) or k-NN Jaccard (equal distances ordered by sample index, as prunesim
    orders them) from scipy's pairwise distances, which keep repeated rows' ties exact."""
    from scipy.spatial.distance import pdist, squareform

    if metric == "rsa_spearman":
        return REFERENCES["rsa_spearman"](x, y)

    def neighbours(data):
        distances = squareform(pdist(data))
        np.fill_diagonal(distances, np.inf)
        return [set(row) for row in np.argsort(distances, axis=1, kind="stable")[:, :k]]

    pairs = zip(neighbours(x), neighbours(y), strict=True)
    return float(np.mean([len(a & b) / len(a | b) for a, b in pairs]))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_bootstrap_draw_equals_the_metric_of_freshly_resampled_data(shape, rng):
    x, y = _case(rng, shape)
    x[:, 0] = np.where(np.arange(len(x)) == 3, 1.0, 0.0)  # live, but constant in most draws
    pair = pair_factors(x, y, keep_data=True)
    resamples = Calibration(bootstrap=3, seed=2).resamples(len(x))

    def every(index, drawn):
        return [evaluate(drawn, metric).value for metric in METRICS]

    policy = Policy(pairwise=True, keep_samples=True)
    draws = bootstrap_draws([(pair.a, pair.b)], every, resamples, 1, policy)
    for k, rows in enumerate(resamples):
        for m, metric in enumerate(METRICS):
            if metric in ("rsa_spearman", "knn_jaccard"):
                # A drawn layer's distances from copies of one image are equal bit for bit:
                # ties, which RSA's ranks average and k-NN orders by index. Distances from a
                # Gram matrix of the resampled data may differ in the last bits (BLAS rounds a
                # row by its position), which breaks them; scipy's pdist computes every pair
                # alike, so they stay ties.
                expected = _tie_exact(metric, x[rows], y[rows])
            else:
                expected = similarity(x[rows], y[rows], metric)
            assert draws[0, m, k] == pytest.approx(expected, abs=1e-9, nan_ok=True), metric


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_drawn_layers_distances_from_copies_of_one_sample_are_equal_bit_for_bit(shape, rng):
    """The tie invariant itself, independent of whether a metric happens to notice a broken
    tie: in a resample, every distance from one copy of a sample equals the distance from
    any other copy, and the matrix is symmetric, exactly."""
    x, _ = _case(rng, shape)
    layer = pair_factors(x, x, keep_data=True).a
    rows = Calibration(bootstrap=1, seed=3).resamples(len(x))[0]
    distances = resampled(layer, rows, Policy(pairwise=True, keep_samples=True)).sq_distances
    np.testing.assert_array_equal(distances, distances.T)
    first = {}
    for position, sample in enumerate(rows):
        first.setdefault(sample, position)
        copy = first[sample]
        np.testing.assert_array_equal(distances[position], distances[copy])
        assert distances[position, copy] == 0.0
    assert len(first) < len(rows)  # the draw does repeat samples


def test_an_images_rows_move_together(rng):
    # channels view: each image has rows_per_image consecutive rows (its positions)
    images, per = 12, 4
    order = rng.permutation(images)
    rows = image_rows(order, per)
    np.testing.assert_array_equal(
        rows.reshape(images, per) // per, np.repeat(order, per).reshape(images, per)
    )
    np.testing.assert_array_equal(
        rows.reshape(images, per) % per, np.tile(np.arange(per), (images, 1))
    )
    x = rng.standard_normal((images * per, 3))
    y = x @ rng.standard_normal((3, 2)) + rng.standard_normal((images * per, 2))
    got = calibrated(x, y, "cka_linear", permutations=4, bootstrap=0, rows_per_image=per)
    orders = Calibration(permutations=4).orders(images)
    expected = [similarity(x, y[image_rows(o, per)], "cka_linear") for o in orders]
    assert got["null_mean"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_draws_are_seeded_and_independent_of_what_is_compared():
    a, b = Calibration(permutations=5, bootstrap=5, seed=1), Calibration(5, 5, seed=1)
    np.testing.assert_array_equal(a.orders(50), b.orders(50))
    np.testing.assert_array_equal(a.resamples(50), b.resamples(50))
    assert not np.array_equal(a.orders(50), Calibration(5, 5, seed=2).orders(50))
    assert not np.array_equal(a.orders(50)[:, :10], a.resamples(50)[:, :10])
    assert sorted(a.orders(50)[0]) == list(range(50))


def test_p_values_of_independent_data_are_uniform(rng):
    # Under the null, the value is exchangeable with its permutations: P(p <= 1/20) = 1/20
    # with 19 permutations. 300 independent pairs: 15 expected, binomial sd 3.8.
    hits = {metric: 0 for metric in ("cka_linear", "cca_mean", "nbs")}
    for _ in range(300):
        x, y = rng.standard_normal((25, 3)), rng.standard_normal((25, 2))
        for metric in hits:
            p = calibrated(x, y, metric, permutations=19, bootstrap=0, seed=int(rng.integers(1e9)))
            hits[metric] += p["p_value"] <= 1 / 20 + 1e-12
    for metric, count in hits.items():
        assert 3 <= count <= 30, (metric, count)


def test_related_data_is_significant_at_the_resolution_of_the_permutations(rng):
    x, y = _related(rng, 200, 4, 3, noise=0.5)
    for metric in ("cca_mean", "svcca", "pwcca", "cka_linear", "cka_rbf", "cka_debiased", "nbs"):
        result = calibrated(x, y, metric, permutations=39, bootstrap=0)
        assert result["p_value"] == pytest.approx(1 / 40), metric
        assert result["value"] > result["null_mean"] + 5 * result["null_std"], metric
        assert 0.0 < result["corrected"] < 1.0, metric


def test_null_mean_of_linear_cka_is_the_exact_permutation_mean_of_the_rv_coefficient(rng):
    # E[RV] over all permutations = sqrt(beta_x beta_y) / (n - 1), beta = (tr S)^2 / tr(S^2)
    # for S the covariance (Kazi-Aoual et al. 1995; Josse, Pages & Husson 2008).
    n = 20
    x = rng.standard_normal((n, 3)) * [3.0, 1.0, 0.2]
    y = rng.standard_normal((n, 2)) * [1.0, 0.5]
    x, y = x - x.mean(0), y - y.mean(0)

    def beta(a):
        eig = np.linalg.eigvalsh(a.T @ a)
        return eig.sum() ** 2 / (eig**2).sum()

    exact = math.sqrt(beta(x) * beta(y)) / (n - 1)
    result = calibrated(x, y, "cka_linear", permutations=4000, bootstrap=0, seed=3)
    standard_error = result["null_std"] / math.sqrt(4000)
    assert abs(result["null_mean"] - exact) < 4 * standard_error


def test_a_layer_against_its_own_permutations_has_the_smallest_p_value(rng):
    x = rng.standard_normal((50, 4))
    result = calibrated(x, x, "cka_linear", permutations=9, bootstrap=5)
    assert result["value"] == pytest.approx(1.0)
    assert result["p_value"] == pytest.approx(0.1)
    assert result["corrected"] == pytest.approx(1.0)
    assert result["bootstrap_std"] == pytest.approx(0.0, abs=1e-12)
    assert result["ci_low"] == pytest.approx(1.0) and result["ci_high"] == pytest.approx(1.0)


def test_summaries_by_hand():
    values = np.array([0.8, 0.8, math.nan])
    null = np.array([[0.1, 0.3, 0.9, math.nan], [0.1, 0.3, 0.5, 0.2], [0.1, 0.2, 0.3, 0.4]])
    boot = np.array([[0.7, 0.9, 0.8, 0.8], [0.75, 0.85, 0.8, 1.0], [0.1, 0.2, 0.3, 0.4]])
    s = summarize(values, null, boot, np.array(1.0), 0.95)
    assert s.null_mean[0] == pytest.approx(13 / 30)  # the NaN draw is left out
    assert s.null_std[0] == pytest.approx(np.std([0.1, 0.3, 0.9], ddof=1))
    assert s.p_value[0] == pytest.approx(2 / 4)  # one of three draws at least as similar
    assert s.p_value[1] == pytest.approx(1 / 5)
    assert s.corrected[1] == pytest.approx((0.8 - 0.275) / (1 - 0.275))
    assert s.bootstrap_std[0] == pytest.approx(np.std([0.7, 0.9, 0.8, 0.8], ddof=1))
    assert s.bootstrap_bias[1] == pytest.approx(0.85 - 0.8)
    half = 1.959963984540054 * s.bootstrap_std[1]
    assert (s.ci_low[1], s.ci_high[1]) == pytest.approx((0.8 - half, min(0.8 + half, 1.0)))
    assert all(math.isnan(getattr(s, name)[2]) for name in ("null_mean", "p_value", "ci_low"))
    # a distance (perfect = 0): smaller is more similar
    d = summarize(np.array([0.2]), np.array([[0.5, 0.1, 0.6]]), None, np.array(0.0), 0.95)
    assert d.p_value[0] == pytest.approx(2 / 4)
    assert d.corrected[0] == pytest.approx((0.2 - 0.4) / (0.0 - 0.4))
    # its interval stops at 0 below and not above
    near = summarize(np.array([0.05]), None, np.array([[0.0, 0.3, 0.1, 0.2]]), np.array(0.0), 0.95)
    half = 1.959963984540054 * np.std([0.0, 0.3, 0.1, 0.2], ddof=1)
    assert (near.ci_low[0], near.ci_high[0]) == pytest.approx((0.0, 0.05 + half))


def test_cca_values_at_ranks_near_n_carry_a_caution_but_stay_defined(rng):
    x, y = rng.standard_normal((100, 30)), rng.standard_normal((100, 25))
    pair = pair_factors(x, y)
    value = evaluate(pair, "cca_mean").value
    note = caution(pair, "cca_mean")
    assert not math.isnan(value) and "30 + 25 are 55% of n = 100" in note
    assert caution(pair, "cka_linear") == ""
    assert caution(pair_factors(x[:, :10], y[:, :10]), "cca_mean") == ""
    assert all(REGISTRY[m].caution is not None for m in ("cca_mean", "svcca", "pwcca"))


def test_intervals_over_seeds_are_t_intervals_from_three_seeds_on(rng):
    import xarray as xr

    values = rng.uniform(0.5, 1.0, size=(4, 3))
    values[3, 0] = math.nan  # cell 0 has three seeds, cell 1 and 2 four
    values[2:, 2] = math.nan  # cell 2 has two: no interval
    da = xr.DataArray(values, dims=("seed", "cell"))
    ds = over_seeds(da, 0.9)
    for cell, seeds in ((0, values[:3, 0]), (1, values[:, 1])):
        mean, sd = seeds.mean(), seeds.std(ddof=1)
        half = student_t.ppf(0.95, len(seeds) - 1) * sd / math.sqrt(len(seeds))
        assert float(ds.mean_over_seeds[cell]) == pytest.approx(mean)
        assert float(ds.ci_over_seeds_low[cell]) == pytest.approx(mean - half)
        assert float(ds.ci_over_seeds_high[cell]) == pytest.approx(mean + half)
        assert int(ds.seeds_defined[cell]) == len(seeds)
    assert math.isnan(float(ds.ci_over_seeds_low[2])) and not math.isnan(float(ds.sd_over_seeds[2]))


def test_calibration_settings_are_checked():
    with pytest.raises(ValueError, match="permutations and bootstrap must be >= 0"):
        Calibration(permutations=-1)
    with pytest.raises(ValueError, match="confidence must be in"):
        Calibration(confidence=1.0)


def test_a_pair_factors_reordered_layer_needs_kept_data(rng):
    pair = pair_factors(rng.standard_normal((30, 3)), rng.standard_normal((30, 2)))
    with pytest.raises(ValueError, match="kept data"):
        PairFactors(pair.a, pair.b.reordered(np.arange(30)))
