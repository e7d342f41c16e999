"""The notebook API: one call compares two models' layers over a tensor or a data loader.

Checked against activations taken by hand (forward hooks written here) and the one-pair
metric API, against the workflow's store path, and for the pairing of samples when a loader
shuffles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prunesim.activations import record_activations
from prunesim.comparison import (
    CompareSettings,
    compare_arrays,
    compare_models,
    compare_stores,
    default_layers,
)
from prunesim.metrics import calibrated, similarity
from prunesim.metrics.views import VIEWS
from prunesim.models import build_model

FAST = {"permutations": 0, "bootstrap": 0}


def _lenet(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("lenet5", 1, 10, 28)


def _by_hand(model: nn.Module, layers: list[str], images: torch.Tensor) -> dict[str, np.ndarray]:
    out = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda m, i, o, name=name: out.__setitem__(name, o.detach().clone().numpy())
        )
        for name in layers
    ]
    model.eval()
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return out


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(96, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def test_compare_models_equals_the_metric_on_hand_taken_activations(images):
    a, b = _lenet(0), _lenet(1)
    ds = compare_models(a, b, images, batch_size=40, metrics=("cka_linear", "cca_mean"), **FAST)
    assert list(ds.layer_a.values) == list(a.recorded_layers)
    hand_a = _by_hand(a, a.recorded_layers, images)
    hand_b = _by_hand(b, b.recorded_layers, images)
    for view in VIEWS:
        for la, lb in (
            ("relu1", "relu2"),
            ("relu2", "pool2"),
            ("relu3", "fc3"),
            ("pool1", "pool1"),
        ):
            if view == "channels" and hand_a[la].shape[2:] != hand_b[lb].shape[2:]:
                reason = ds.nan_reason.sel(metric="cka_linear", view=view, layer_a=la, layer_b=lb)
                assert "equal spatial sizes" in str(reason.values)
                continue
            for metric in ("cka_linear", "cca_mean"):
                got = float(ds.similarity.sel(metric=metric, view=view, layer_a=la, layer_b=lb))
                want = similarity(hand_a[la], hand_b[lb], metric, view=view)
                np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_a_shuffling_loader_pairs_the_same_samples_in_both_models(images):
    a, b = _lenet(0), _lenet(1)
    settings = {"metrics": ("cka_linear", "nbs", "rsa_spearman"), "views": ("gap",), **FAST}
    from_tensor = compare_models(a, b, images, **settings)
    loader = DataLoader(
        TensorDataset(images, torch.zeros(len(images), dtype=torch.long)),
        batch_size=25,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    from_loader = compare_models(a, b, loader, **settings)
    # every metric here is invariant to one permutation of the samples applied to both sides
    np.testing.assert_allclose(
        from_loader.similarity.values, from_tensor.similarity.values, rtol=1e-9, atol=1e-12
    )


def test_a_model_against_itself_is_perfect_on_its_matched_layers(images):
    a = _lenet(0)
    ds = compare_models(a, a, images, metrics=("cka_linear", "procrustes"), **FAST)
    for layer in a.recorded_layers:
        cka = ds.similarity.sel(metric="cka_linear", layer_a=layer, layer_b=layer)
        np.testing.assert_allclose(cka.values, 1.0, rtol=1e-9)
        dist = ds.similarity.sel(metric="procrustes", layer_a=layer, layer_b=layer)
        np.testing.assert_allclose(dist.values, 0.0, atol=1e-6)


def test_compare_models_equals_the_workflow_path_through_stores(images, tmp_path):
    a, b = _lenet(0), _lenet(2)
    # knn_jaccard on the channels view of relu2 (96 × 10 × 10 rows) would take a minute
    settings = CompareSettings(
        metrics=("cka_linear", "svcca", "knn_jaccard"), views=("flatten", "gap"), **FAST
    )
    for name, model in (("a", a), ("b", b)):
        record_activations(
            model, list(model.recorded_layers), images, tmp_path / f"{name}.zarr", 32, {}
        )
    stores = compare_stores(str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr"), settings)
    direct = compare_models(
        a, b, images, batch_size=50, metrics=settings.metrics, views=settings.views, **FAST
    )
    np.testing.assert_allclose(
        direct.similarity.values, stores.similarity.values, rtol=1e-8, atol=1e-10
    )
    assert (direct.nan_reason.values == stores.nan_reason.values).all()


def test_undefined_values_come_back_with_their_reason(images):
    a, b = _lenet(0), _lenet(1)
    with torch.no_grad():  # relu1 of b never fires: every value of it is undefined
        b.conv1.weight.zero_()
        b.conv1.bias.fill_(-1.0)
    ds = compare_models(a, b, images, layers=["relu1", "relu2"], metrics=("cka_linear",), **FAST)
    assert np.isnan(ds.similarity.sel(layer_b="relu1")).all()
    for reason in ds.nan_reason.sel(layer_a="relu1", layer_b="relu1").values.ravel():
        assert "does not vary" in reason and "inactive" in reason
    assert ds.inactive_b.sel(layer_b="relu1", view="gap") == 6
    # downstream of a dead layer every unit is constant (its bias): undefined too, and said so
    assert np.isnan(ds.similarity.sel(layer_b="relu2")).all()
    assert "does not vary" in str(ds.nan_reason.sel(layer_a="relu2", layer_b="relu2", view="gap"))


def test_compare_arrays_takes_torch_and_numpy_layer_outputs(rng):
    x = rng.standard_normal((50, 4, 3, 3))
    rotation = np.linalg.qr(rng.standard_normal((36, 36)))[0]
    y = (x.reshape(50, -1) @ rotation).astype(np.float32)
    ds = compare_arrays(
        {"conv": torch.from_numpy(x)}, {"fc": y}, metrics="cka_linear", views="flatten", **FAST
    )
    np.testing.assert_allclose(float(ds.similarity.squeeze()), 1.0, rtol=1e-6)


def test_calibrated_channels_view_moves_each_images_positions_together(rng):
    x = rng.standard_normal((30, 3, 4, 4))
    y = x + 0.5 * rng.standard_normal(x.shape)
    got = calibrated(x, y, "cka_linear", permutations=5, bootstrap=0, view="channels")
    want = calibrated(
        VIEWS["channels"](x),
        VIEWS["channels"](y),
        "cka_linear",
        permutations=5,
        bootstrap=0,
        rows_per_image=16,
    )
    np.testing.assert_equal(got, want)


def test_default_layers_skip_modules_that_repeat_their_input():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(2, 3), nn.Identity()
    )
    assert default_layers(model) == ["0", "1", "4"]
    assert default_layers(_lenet(0)) == list(_lenet(0).recorded_layers)


def test_default_layers_leave_out_a_module_run_twice_that_named_layers_refuse(images):
    relu = nn.ReLU()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), relu, nn.Linear(8, 8), relu)
    ds = compare_models(model, model, images, metrics="cka_linear", **FAST)
    assert list(ds.layer_a.values) == ["1", "3"]  # the shared ReLU is left out


def test_a_module_run_twice_is_refused_with_its_name(images):
    relu = nn.ReLU()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), relu, nn.Linear(8, 8), relu)
    with pytest.raises(RuntimeError, match="module '2' ran twice"):
        compare_models(model, model, images, layers=["2"], **FAST)


def test_models_keep_their_training_mode_and_unknown_settings_are_named(images):
    a = _lenet(0).train()
    compare_models(a, a, images[:20], layers=["fc3"], metrics="cka_linear", **FAST)
    assert a.training
    with pytest.raises(TypeError, match=r"unknown settings \['permutation'\]"):
        compare_models(a, a, images[:20], permutation=3)
    with pytest.raises(ValueError, match="not modules of the model"):
        compare_models(a, a, images[:20], layers=["nope"], **FAST)


def test_the_readmes_notebook_example_runs(capsys):
    from readme import readme_block

    exec(readme_block("api-models"), {})
    printed = capsys.readouterr().out
    assert "relu1" in printed and "fc3" in printed
    # the reason printed: relu1 (28 × 28) and relu2 (10 × 10) share no positions
    assert "channels view needs equal spatial sizes, got (28, 28) and (10, 10)" in printed


def test_a_float64_numpy_array_runs_in_the_models_precision(images):
    a, b = _lenet(0), _lenet(1)
    settings = {"layers": ["relu3", "fc3"], "metrics": "cka_linear", "views": "gap", **FAST}
    from_numpy = compare_models(a, b, images.numpy().astype(np.float64), **settings)
    from_tensor = compare_models(a, b, images, **settings)
    np.testing.assert_array_equal(from_numpy.similarity.values, from_tensor.similarity.values)
