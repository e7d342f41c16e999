"""Streamed comparison of activation stores (prunesim.comparison) against the in-memory metrics.

The stores are written by the real ``record_activations`` from a tiny module whose recorded
submodules output fixed slices of its input, so every layer holds known random data. n = 250
samples in chunks of 64 (or 100): the chunk size does not divide n.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from prunesim.activations import ActivationStore, open_activations, record_activations
from prunesim.comparison import CompareSettings, compare_stores
from prunesim.metrics import METRICS, REGISTRY, layer_factors, similarity

N = 250
VIEW_NAMES = ("flatten", "gap", "channels")
PAIRWISE = tuple(m for m in METRICS if REGISTRY[m].needs_pairwise)  # cka_rbf, knn, rsa
# every layer keeps its data (the metrics of sample pairs need it)
FULL = CompareSettings(permutations=0, bootstrap=0, metrics=METRICS, views=VIEW_NAMES)
# Without a metric of sample pairs, layers with p <= n keep only XᵀX and every pair with such a
# layer streams its cross-product XᵀY chunk by chunk.
STREAMED = CompareSettings(
    permutations=0,
    bootstrap=0,
    metrics=tuple(m for m in METRICS if m not in PAIRWISE),
    views=VIEW_NAMES,
)
SETTINGS = {"full": FULL, "streamed": STREAMED}


def _view(raw: np.ndarray, view: str) -> np.ndarray:
    """Independent statement of the views: flatten, global average pool, channels."""
    if raw.ndim == 2:
        return raw
    if view == "flatten":
        return raw.reshape(len(raw), -1)
    if view == "gap":
        return raw.mean(axis=tuple(range(2, raw.ndim)))
    return np.moveaxis(raw, 1, -1).reshape(-1, raw.shape[1])


class _Slice(nn.Module):
    def __init__(self, start: int, stop: int, shape: tuple[int, ...]):
        super().__init__()
        self.start, self.stop, self.shape = start, stop, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop].reshape(len(x), *self.shape)


class _FixedLayers(nn.Module):
    """Each child outputs its own slice of the (n × total width) input, reshaped."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        start = 0
        for name, shape in shapes.items():
            stop = start + math.prod(shape)
            self.add_module(name, _Slice(start, stop, shape))
            start = stop

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [child(x) for child in self.children()]


def _write_store(path, layers: dict[str, np.ndarray], batch_size: int) -> None:
    model = _FixedLayers({name: a.shape[1:] for name, a in layers.items()})
    flat = np.concatenate([a.reshape(len(a), -1) for a in layers.values()], axis=1)
    record_activations(
        model,
        list(layers),
        torch.from_numpy(flat).float(),
        path,
        batch_size=batch_size,
        attrs={"probe_digest": "fixed-250"},
    )


def _layers(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, 20))  # latent signal shared by the layers of both stores

    def mix(k: int, p: int, noise: float) -> np.ndarray:
        return z[:, :k] @ rng.standard_normal((k, p)) + noise * rng.standard_normal((N, p))

    small = mix(10, 16, 0.5).reshape(N, 4, 2, 2)
    small[:, 3] = 0.0  # a dead channel: 4 dead neurons flattened, 1 under gap and channels
    # A neuron constant within every chunk of 64 but not overall (0 before sample 128, 1 from
    # it on): live, which pass 1 sees only by merging the chunks' moments correctly.
    step = (np.arange(N) >= 128).astype(float)
    layers_a = {
        "narrow": np.column_stack([mix(12, 12, 1.0), step]),  # p < n under every view
        "conv": mix(20, 288, 1.0).reshape(N, 72, 2, 2),  # flatten 288 > n, gap 72, channels
        "lowrank": mix(20, 300, 0.0),  # p > n but rank 20: CCA is defined
    }
    layers_b = {
        "small": small,  # flatten 16, gap 4, channels 1000 × 4
        "wide": mix(5, 260, 1.0),  # p > n, full rank
        "constant": np.full((N, 5), 0.1),  # every metric undefined
    }
    return layers_a, layers_b


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("streaming")
    layers_a, layers_b = _layers()
    paths = {}
    for batch in (64, 100):
        for side, layers in (("a", layers_a), ("b", layers_b)):
            paths[f"{side}{batch}"] = str(root / f"{side}{batch}.zarr")
            _write_store(paths[f"{side}{batch}"], layers, batch)
    paths["a64_copy"] = str(root / "a64_copy.zarr")
    shutil.copytree(paths["a64"], paths["a64_copy"])
    return paths


@pytest.fixture(scope="module")
def loaded(stores) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The stored (float32) arrays, loaded whole."""
    a, b = open_activations(stores["a64"]), open_activations(stores["b64"])
    return {k: a.load(k) for k in a.layers}, {k: b.load(k) for k in b.layers}


@pytest.fixture(scope="module")
def in_memory(loaded) -> dict[tuple[str, str, str, str], float]:
    """``similarity`` on the loaded arrays for every metric, view and layer pair that has the
    same number of rows under the view."""
    arrays_a, arrays_b = loaded
    expected = {}
    for view in VIEW_NAMES:
        for la, raw_a in arrays_a.items():
            for lb, raw_b in arrays_b.items():
                x, y = _view(raw_a, view), _view(raw_b, view)
                if len(x) != len(y):
                    continue
                for metric in METRICS:
                    expected[metric, view, la, lb] = similarity(x, y, metric)
    return expected


@pytest.fixture(scope="module")
def compared(stores) -> dict[str, object]:
    return {
        "full": compare_stores(stores["a64"], stores["b64"], FULL),
        "streamed": compare_stores(stores["a64"], stores["b64"], STREAMED),
    }


def _assert_same(ds, other, atol: float = 1e-10) -> None:
    np.testing.assert_allclose(
        ds["similarity"].values, other["similarity"].values, atol=atol, rtol=0
    )
    np.testing.assert_array_equal(ds["nan_reason"].values, other["nan_reason"].values)


def test_stores_are_chunked_so_that_the_chunk_size_does_not_divide_n(stores, loaded):
    for key, chunk in (("a64", 64), ("b100", 100)):
        store = open_activations(stores[key])
        assert store.n == N and store.chunk_size() == chunk and N % chunk
    arrays_a, _ = loaded
    assert _view(arrays_a["conv"], "flatten").shape == (N, 288)
    assert _view(arrays_a["conv"], "channels").shape == (4 * N, 72)
    assert layer_factors(arrays_a["lowrank"]).rank == 20


@pytest.mark.parametrize("name", list(SETTINGS))
def test_streamed_comparison_equals_in_memory_similarity(name, compared, in_memory, loaded):
    ds = compared[name]
    arrays_a, arrays_b = loaded
    checked = 0
    for metric in SETTINGS[name].metrics:
        for view in VIEW_NAMES:
            for la in arrays_a:
                for lb in arrays_b:
                    cell = dict(metric=metric, view=view, layer_a=la, layer_b=lb)
                    value = float(ds["similarity"].sel(**cell))
                    reason = ds["nan_reason"].sel(**cell).item()
                    if (metric, view, la, lb) not in in_memory:
                        assert math.isnan(value) and "spatial" in reason, cell
                        continue
                    expected = in_memory[metric, view, la, lb]
                    if math.isnan(expected):
                        assert math.isnan(value) and reason, cell
                    else:
                        assert value == pytest.approx(expected, abs=1e-10), cell
                        assert reason == "", cell
                        checked += 1
    # p < n, p > n and mixed pairs are all among the defined values
    assert checked >= 10 * len(SETTINGS[name].metrics)


def test_streamed_values_cover_wide_narrow_and_mixed_pairs(compared):
    sim = compared["full"]["similarity"].sel(view="flatten")
    for la, lb in [("narrow", "small"), ("lowrank", "wide"), ("conv", "wide"), ("narrow", "wide")]:
        assert not np.isnan(float(sim.sel(metric="cka_linear", layer_a=la, layer_b=lb)))
    # CCA: defined for the low-rank wide layer, degenerate for the full-rank wide ones
    assert not np.isnan(float(sim.sel(metric="pwcca", layer_a="lowrank", layer_b="small")))
    reason = compared["full"]["nan_reason"].sel(view="flatten", metric="cca_mean")
    assert "degenerate" in reason.sel(layer_a="conv", layer_b="wide").item()


def test_neurons_that_do_not_vary_are_counted_per_view(compared, loaded):
    full = compared["full"]
    for side, arrays in zip("ab", loaded, strict=True):
        for view in VIEW_NAMES:
            for layer, raw in arrays.items():
                stats = layer_factors(_view(raw, view)).stats
                for kind in ("constant", "inactive", "nonfinite"):
                    counted = full[f"{kind}_{side}"].sel(view=view, **{f"layer_{side}": layer})
                    assert int(counted) == getattr(stats, kind)
    # the neuron constant within each chunk but not overall is live
    narrow = full.sel(view="flatten", layer_a="narrow")
    assert int(narrow.constant_a) == int(narrow.inactive_a) == 0
    # the all-zero channel: 4 inactive neurons flattened, 1 under gap
    assert int(full["inactive_b"].sel(view="flatten", layer_b="small")) == 4
    assert int(full["inactive_b"].sel(view="gap", layer_b="small")) == 1
    assert int(full["constant_b"].sel(view="gap", layer_b="small")) == 0


def test_constant_layer_is_nan_with_a_reason_for_every_metric(compared):
    for ds in compared.values():
        cells = ds["nan_reason"].sel(layer_b="constant").values.ravel()
        assert np.isnan(ds["similarity"].sel(layer_b="constant").values).all()
        assert all("constant" in r or "spatial" in r for r in cells)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_result_does_not_depend_on_the_chunk_size(name, compared, stores):
    other = compare_stores(stores["a100"], stores["b100"], SETTINGS[name])
    _assert_same(other, compared[name])


def test_stores_with_different_chunk_sizes_can_be_compared(compared, stores):
    _assert_same(compare_stores(stores["a64"], stores["b100"], STREAMED), compared["streamed"])


def test_a_tiny_cross_product_budget_takes_more_passes_and_gives_the_same_numbers(
    compared, stores, monkeypatch
):
    passes = []  # a pass over a store reads its first samples once per layer
    original = ActivationStore.read

    def counting(store, layer, start, stop):
        if start == 0:
            passes.append((store.path.name, layer))
        return original(store, layer, start, stop)

    monkeypatch.setattr(ActivationStore, "read", counting)
    default = compare_stores(stores["a64"], stores["b64"], STREAMED)
    default_passes = len(passes)
    passes.clear()
    tiny = CompareSettings(
        permutations=0, bootstrap=0, metrics=STREAMED.metrics, views=VIEW_NAMES, cross_memory_mb=0
    )
    result = compare_stores(stores["a64"], stores["b64"], tiny)
    assert len(passes) > default_passes + 2
    _assert_same(result, default)
    _assert_same(result, compared["streamed"])


def _narrow_pairs(ds) -> list[tuple[str, str, str]]:
    """(view, layer_a, layer_b) where at least one layer has p <= n under the view and the
    pair is defined at all (not the channels view of unequal spatial sizes)."""
    cells = []
    for view in VIEW_NAMES:
        for la in ds["layer_a"].values:
            for lb in ds["layer_b"].values:
                cell = dict(metric="cka_linear", view=view, layer_a=la, layer_b=lb)
                reason = ds["nan_reason"].sel(**cell).item()
                wide_a = la == "lowrank" or (la == "conv" and view == "flatten")
                if not (wide_a and lb == "wide") and "spatial" not in reason:
                    cells.append((view, str(la), str(lb)))
    return cells


def test_pairwise_max_samples_below_n_gives_nan_with_a_reason_for_pairwise_metrics_only(
    compared, stores
):
    limited = CompareSettings(
        permutations=0, bootstrap=0, metrics=METRICS, views=VIEW_NAMES, pairwise_max_samples=N - 1
    )
    ds = compare_stores(stores["a64"], stores["b64"], limited)
    full = compared["full"]
    others = [m for m in METRICS if m not in PAIRWISE]
    np.testing.assert_allclose(
        ds["similarity"].sel(metric=others).values,
        full["similarity"].sel(metric=others).values,
        atol=1e-10,
        rtol=0,
    )
    np.testing.assert_array_equal(
        ds["nan_reason"].sel(metric=others).values, full["nan_reason"].sel(metric=others).values
    )
    cells = _narrow_pairs(ds)
    assert len(cells) >= 12
    for view, la, lb in cells:
        for metric in PAIRWISE:
            cell = dict(metric=metric, view=view, layer_a=la, layer_b=lb)
            assert np.isnan(float(ds["similarity"].sel(**cell))), cell
            reason = ds["nan_reason"].sel(**cell).item()
            assert "pairwise_max_samples" in reason or "does not vary" in reason, cell


def test_pairwise_max_samples_below_n_gives_nan_for_pairs_of_wide_layers_too(stores):
    limited = CompareSettings(
        permutations=0,
        bootstrap=0,
        metrics=("cka_rbf",),
        views=("flatten",),
        pairwise_max_samples=N - 1,
    )
    ds = compare_stores(stores["a64"], stores["b64"], limited)
    value = ds["similarity"].sel(metric="cka_rbf", view="flatten", layer_a="conv", layer_b="wide")
    assert np.isnan(float(value))


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("copy", [False, True], ids=["same_path", "identical_copy"])
def test_self_comparison_is_perfect_on_the_diagonal_where_defined(copy, name, stores):
    path_b = stores["a64_copy"] if copy else stores["a64"]
    metrics = SETTINGS[name].metrics
    ds = compare_stores(stores["a64"], path_b, SETTINGS[name])
    layers = list(ds["layer_a"].values)
    defined = 0
    for metric in metrics:
        for view in VIEW_NAMES:
            for layer in layers:
                cell = dict(metric=metric, view=view, layer_a=layer, layer_b=layer)
                value = float(ds["similarity"].sel(**cell))
                if math.isnan(value):
                    assert ds["nan_reason"].sel(**cell).item(), cell
                else:
                    perfect = REGISTRY[metric].perfect  # 0: the Procrustes angle, an arccos
                    assert value == pytest.approx(perfect, abs=1e-10 if perfect else 1e-6), cell
                    defined += 1
    # everything but cca_mean and pwcca on the flattened full-rank conv layer (288 features,
    # n = 250; svcca keeps few enough directions to stay defined)
    assert defined == len(metrics) * len(VIEW_NAMES) * len(layers) - 2


def test_float32_products_give_kernel_metrics_within_1e_6_of_float64(compared, stores):
    kernel_metrics = ["cka_linear", "cka_rbf", "cka_debiased", "nbs"]
    settings = CompareSettings(
        permutations=0, bootstrap=0, metrics=METRICS, views=VIEW_NAMES, float32_products=True
    )
    fast = compare_stores(stores["a64"], stores["b64"], settings)
    np.testing.assert_allclose(
        fast["similarity"].sel(metric=kernel_metrics).values,
        compared["full"]["similarity"].sel(metric=kernel_metrics).values,
        atol=1e-6,
        rtol=0,
    )
    np.testing.assert_array_equal(fast["nan_reason"].values, compared["full"]["nan_reason"].values)
