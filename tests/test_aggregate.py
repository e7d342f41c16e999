"""The experiment aggregate: methods with different round counts and layers a model lacks."""

from __future__ import annotations

import numpy as np
import xarray as xr

from prunesim.aggregate import ABSENT, ModelResult, SeedPairResult, aggregate_results
from prunesim.io import write_json

DENSE_LAYERS = ["relu1", "layer1.0", "layer1.1", "fc"]


def _model(tmp_path, name: str, layers: list[str], value: float, accuracy: float, kept: int):
    """A per-model similarity file (every pair = ``value``) and its summary.json."""
    shape = (1, 1, len(DENSE_LAYERS), len(layers))
    ds = xr.Dataset(
        {
            "similarity": (("metric", "view", "layer_a", "layer_b"), np.full(shape, value)),
            "nan_reason": (("metric", "view", "layer_a", "layer_b"), np.full(shape, "")),
        },
        coords={
            "metric": ["cka_linear"],
            "view": ["gap"],
            "layer_a": DENSE_LAYERS,
            "layer_b": layers,
            "depth_a": ("layer_a", np.arange(len(DENSE_LAYERS))),
            "depth_b": ("layer_b", np.arange(len(layers))),
        },
    )
    similarity = tmp_path / f"{name}.nc"
    ds.to_netcdf(similarity, engine="netcdf4")
    metrics = tmp_path / f"{name}.json"
    write_json(
        metrics,
        {
            "test_accuracy": accuracy,
            "sparsity": {"sparsity": 1 - kept / 100},
            "parameters": {"dense": 100, "remaining": kept},
            "flops": {"dense": 1000, "remaining": 10 * kept},
        },
    )
    return similarity, metrics


def test_missing_rounds_and_removed_layers_are_nan_with_their_reason(tmp_path):
    dense = _model(tmp_path, "dense", DENSE_LAYERS, 1.0, 0.9, 100)
    # epruner: one round, all layers; cka_layers: two rounds, layer1.0 then also layer1.1 gone
    epruner = _model(tmp_path, "epruner1", DENSE_LAYERS, 0.8, 0.85, 40)
    cka1 = _model(tmp_path, "cka1", ["relu1", "layer1.1", "fc"], 0.7, 0.8, 70)
    cka2 = _model(tmp_path, "cka2", ["relu1", "fc"], 0.6, 0.75, 50)
    results = [
        ModelResult(0, "epruner", 0, *dense),
        ModelResult(0, "epruner", 1, *epruner),
        ModelResult(0, "cka_layers", 0, *dense),
        ModelResult(0, "cka_layers", 1, *cka1),
        ModelResult(0, "cka_layers", 2, *cka2),
    ]
    ds = aggregate_results(results).sel(seed=0, metric="cka_linear", view="gap")

    assert list(ds.layer_b.values) == DENSE_LAYERS  # the dense order, not alphabetical
    assert list(ds.depth_b.values) == [0, 1, 2, 3]
    step1 = ds.sel(pruning="cka_layers", round=1)
    assert np.isnan(step1.similarity.sel(layer_b="layer1.0")).all()
    assert (step1.nan_reason.sel(layer_b="layer1.0") == ABSENT).all()
    assert (step1.similarity.sel(layer_b="layer1.1") == 0.7).all()
    assert (step1.nan_reason.sel(layer_b="layer1.1") == "").all()
    missing = ds.sel(pruning="epruner", round=2)
    assert np.isnan(missing.similarity).all()
    assert (missing.nan_reason == "absent: the method has no such round").all()
    assert np.isnan(missing.test_accuracy)
    assert float(ds.parameters_remaining.sel(pruning="cka_layers", round=2)) == 0.5
    assert float(ds.flops_remaining.sel(pruning="epruner", round=1)) == 0.4
    assert float(ds.sparsity.sel(pruning="epruner", round=0)) == 0


def test_layer_names_of_every_length_survive_whichever_model_comes_first(tmp_path):
    """netCDF gives each file's layer names a fixed width: combined, the first file's width
    must not cut another file's longer names."""
    short = _model(tmp_path, "short", ["relu1", "relu2", "relu3", "fc"], 0.5, 0.9, 100)
    long_ = _model(tmp_path, "long", ["layer1.0", "fc"], 0.4, 0.8, 50)
    for first, second in ((short, long_), (long_, short)):
        ds = aggregate_results([ModelResult(0, "a", 0, *first), ModelResult(0, "a", 1, *second)])
        assert set(ds.layer_b.values) == {"relu1", "relu2", "relu3", "layer1.0", "fc"}


def test_seed_similarity_keeps_the_dense_layer_order_and_marks_absent_layers(tmp_path):
    dense = _model(tmp_path, "dense", DENSE_LAYERS, 1.0, 0.9, 100)
    fewer = _model(tmp_path, "fewer", ["relu1", "fc"], 0.7, 0.8, 50)
    seed_file = _model(tmp_path, "seed", ["relu1", "layer1.1", "fc"], 0.6, 0.9, 100)[0]
    ds = aggregate_results(
        [ModelResult(0, "a", 0, *dense), ModelResult(0, "a", 1, *fewer)],
        [SeedPairResult(0, 1, seed_file)],
    )
    assert list(ds.layer_b.values) == DENSE_LAYERS
    pair = ds.sel(seed_pair="0-1", metric="cka_linear", view="gap")
    assert np.isnan(pair.seed_similarity.sel(layer_b="layer1.0")).all()
    assert (pair.seed_nan_reason.sel(layer_b="layer1.0") == ABSENT).all()
    assert (pair.seed_similarity.sel(layer_b="layer1.1") == 0.6).all()
