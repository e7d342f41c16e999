"""Tests for comparing two activation stores (prunesim.comparison)."""

from __future__ import annotations

import numpy as np
import pytest

from prunesim.activations import open_activations
from prunesim.comparison import VIEWS, CompareSettings, compare_stores
from prunesim.metrics import METRICS, REGISTRY, calibrated, similarity

# pairwise_max_samples: the channels view of relu2 (6,400 rows) would take the metrics of sample
# pairs tens of seconds; pool2's (1,600 rows) keeps them
ALL = CompareSettings(
    metrics=METRICS, views=tuple(VIEWS), permutations=0, bootstrap=0, pairwise_max_samples=4096
)
# Calibrated: every view, a metric of each kind but RBF CKA (whose 6,400 x 6,400 channels-view
# kernels would be built again for every bootstrap resample of these 64 images).
CALIBRATED = CompareSettings(
    metrics=("cca_mean", "pwcca", "cka_linear", "nbs"),
    views=tuple(VIEWS),
    permutations=6,
    bootstrap=3,
)


@pytest.fixture(scope="module")
def self_comparison(lenet_stores):
    path = str(lenet_stores["a"])
    return compare_stores(path, path, ALL)


@pytest.fixture(scope="module")
def cross_comparison(lenet_stores):
    return compare_stores(str(lenet_stores["a"]), str(lenet_stores["b"]), ALL)


def test_dims_and_coords_follow_settings_and_layers(cross_comparison, lenet_stores):
    ds = cross_comparison
    assert ds["similarity"].dims == ("metric", "view", "layer_a", "layer_b")
    assert ds["nan_reason"].dims == ("metric", "view", "layer_a", "layer_b")
    layers = open_activations(lenet_stores["a"]).layers
    assert list(ds["metric"].values) == list(METRICS)
    assert list(ds["view"].values) == list(VIEWS)
    assert list(ds["layer_a"].values) == layers == list(ds["layer_b"].values)
    assert list(ds["depth_a"].values) == list(range(len(layers)))
    assert ds.attrs["n_samples"] == 64 and ds.attrs["probe_digest"] == "probe-1"


def test_self_comparison_is_perfect_on_the_diagonal_where_defined(self_comparison):
    sim, reason = self_comparison["similarity"], self_comparison["nan_reason"]
    for metric in METRICS:
        defined = 0
        for view in VIEWS:
            for layer in sim["layer_a"].values:
                value = float(sim.sel(metric=metric, view=view, layer_a=layer, layer_b=layer))
                if np.isnan(value):
                    assert str(reason.sel(metric=metric, view=view, layer_a=layer, layer_b=layer))
                else:
                    # 0 for the Procrustes angle, an arccos: sqrt(2 x rounding) ~ 1e-7 near 0
                    perfect = REGISTRY[metric].perfect
                    assert value == pytest.approx(perfect, abs=1e-9 if perfect else 1e-6)
                    defined += 1
        assert defined >= len(sim["layer_a"]), f"{metric}: too few defined diagonal entries"


def test_cka_self_comparison_is_defined_on_the_whole_diagonal(self_comparison):
    diagonal = np.diagonal(
        self_comparison["similarity"].sel(metric="cka_linear").values, axis1=-2, axis2=-1
    )
    np.testing.assert_allclose(diagonal, 1.0, atol=1e-9)


@pytest.mark.parametrize("fixture", ["self_comparison", "cross_comparison"])
def test_nan_reason_is_empty_exactly_where_the_value_is_defined(fixture, request):
    ds = request.getfixturevalue(fixture)
    nan = np.isnan(ds["similarity"].values)
    has_reason = np.vectorize(bool)(ds["nan_reason"].values)
    assert nan.any() and (~nan).any()
    np.testing.assert_array_equal(nan, has_reason)


def test_cross_values_are_in_their_range_and_match_direct_similarity(
    cross_comparison, lenet_stores
):
    # debiased CKA can be slightly < 0, RSA's Spearman is in [-1, 1], Procrustes an angle
    bounded = [m for m in METRICS if m not in ("cka_debiased", "rsa_spearman", "procrustes")]
    values = cross_comparison["similarity"].sel(metric=bounded).values
    defined = values[~np.isnan(values)]
    assert ((defined >= 0) & (defined <= 1)).all()
    angles = cross_comparison["similarity"].sel(metric="procrustes").values
    assert ((angles[~np.isnan(angles)] >= 0) & (angles[~np.isnan(angles)] <= np.pi / 2)).all()
    debiased = cross_comparison["similarity"].sel(metric="cka_debiased").values
    assert (debiased[~np.isnan(debiased)] <= 1).all()
    a, b = open_activations(lenet_stores["a"]), open_activations(lenet_stores["b"])
    direct = similarity(VIEWS["gap"](a.load("relu2")), VIEWS["gap"](b.load("pool2")), "cka_linear")
    stored = cross_comparison["similarity"].sel(
        metric="cka_linear", view="gap", layer_a="relu2", layer_b="pool2"
    )
    assert float(stored) == pytest.approx(direct, abs=1e-12)


def test_swapping_the_stores_transposes_the_result_of_symmetric_metrics(
    cross_comparison, lenet_stores
):
    swapped = compare_stores(str(lenet_stores["b"]), str(lenet_stores["a"]), ALL)
    symmetric = [m for m in METRICS if REGISTRY[m].symmetric]
    np.testing.assert_allclose(
        swapped["similarity"].sel(metric=symmetric).values,
        cross_comparison["similarity"].sel(metric=symmetric).values.transpose(0, 1, 3, 2),
        atol=1e-12,
    )
    # pwcca weights the canonical correlations by the first store's neurons: not transposed
    pwcca = swapped["similarity"].sel(metric="pwcca").values
    transposed = cross_comparison["similarity"].sel(metric="pwcca").values.transpose(0, 2, 1)
    np.testing.assert_array_equal(np.isnan(pwcca), np.isnan(transposed))
    assert np.nanmax(np.abs(pwcca - transposed)) > 1e-3
    for kind in ("constant", "inactive", "nonfinite"):
        np.testing.assert_array_equal(
            swapped[f"{kind}_a"].values, cross_comparison[f"{kind}_b"].values
        )


def test_channels_view_of_different_spatial_sizes_is_nan_with_reason(cross_comparison):
    # relu1 is 28x28, relu2 10x10 (lenet5 on 28x28 inputs)
    cell = dict(view="channels", layer_a="relu1", layer_b="relu2")
    for metric in METRICS:
        assert np.isnan(float(cross_comparison["similarity"].sel(metric=metric, **cell)))
        reason = str(cross_comparison["nan_reason"].sel(metric=metric, **cell))
        assert "spatial" in reason and "(28, 28)" in reason and "(10, 10)" in reason


def test_channels_view_of_equal_spatial_sizes_is_defined(cross_comparison):
    value = cross_comparison["similarity"].sel(
        metric="cka_linear", view="channels", layer_a="relu1", layer_b="relu1"
    )
    assert 0.0 < float(value) <= 1.0


def test_cca_on_flattened_wide_layers_is_nan_with_degenerate_reason(cross_comparison):
    cell = dict(metric="cca_mean", view="flatten", layer_a="relu1", layer_b="relu1")
    assert np.isnan(float(cross_comparison["similarity"].sel(**cell)))  # 4704 features, n = 64
    assert "degenerate" in str(cross_comparison["nan_reason"].sel(**cell))


def test_stores_with_different_probe_digests_raise(lenet_stores):
    with pytest.raises(ValueError, match="different probe sets"):
        compare_stores(str(lenet_stores["a"]), str(lenet_stores["other"]), ALL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"metrics": ("rsa",)}, "unknown metric"), ({"views": ("pixels",)}, "unknown views")],
)
def test_unknown_metric_or_view_in_settings_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompareSettings(**kwargs)


@pytest.fixture(scope="module")
def calibrated_comparison(lenet_stores):
    return compare_stores(str(lenet_stores["a"]), str(lenet_stores["b"]), CALIBRATED)


def test_calibration_leaves_the_values_and_reasons_unchanged(
    calibrated_comparison, cross_comparison
):
    assert "null_mean" not in cross_comparison and "ci_low" not in cross_comparison
    plain = cross_comparison.sel(metric=list(CALIBRATED.metrics))
    np.testing.assert_allclose(
        plain.similarity.values, calibrated_comparison.similarity.values, atol=1e-10, equal_nan=True
    )
    assert (plain.nan_reason == calibrated_comparison.nan_reason).all()


def test_matched_layers_are_calibrated_and_match_the_library_function(
    calibrated_comparison, lenet_stores
):
    ds = calibrated_comparison
    layers = list(ds.layer_a.values)
    store_a, store_b = open_activations(lenet_stores["a"]), open_activations(lenet_stores["b"])
    for view in VIEWS:
        null = ds.null_mean.sel(metric="cka_linear", view=view).values
        defined = ~np.isnan(ds.similarity.sel(metric="cka_linear", view=view).values)
        assert (np.isnan(null) == ~(np.eye(len(layers), dtype=bool) & defined)).all()
    layer, view = layers[0], "channels"  # a conv layer: its positions move with their image
    a, b = store_a.load(layer), store_b.load(layer)
    expected = calibrated(
        VIEWS[view](a),
        VIEWS[view](b),
        "cka_linear",
        permutations=CALIBRATED.permutations,
        bootstrap=CALIBRATED.bootstrap,
        rows_per_image=int(np.prod(a.shape[2:])),
    )
    cell = ds.sel(metric="cka_linear", view=view, layer_a=layer, layer_b=layer)
    for name in ("null_mean", "null_std", "p_value", "bootstrap_std", "ci_low", "ci_high"):
        assert float(cell[name]) == pytest.approx(expected[name], abs=1e-10), name


def test_calibrating_every_pair(lenet_stores):
    settings = CompareSettings(
        metrics=("cka_linear", "nbs"), views=("gap",), calibrate="all", permutations=5, bootstrap=2
    )
    ds = compare_stores(str(lenet_stores["a"]), str(lenet_stores["b"]), settings)
    defined = ~np.isnan(ds.similarity.values)
    assert (~np.isnan(ds.null_mean.values) == defined).all()
    assert (~np.isnan(ds.ci_low.values) == defined).all()
    with pytest.raises(ValueError, match="calibrate must be one of"):
        CompareSettings(calibrate="diagonal")
