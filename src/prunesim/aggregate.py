"""Per-model similarity Datasets -> one Dataset per experiment over seed, pruning method, round.

Round 0 is the dense network (compared with itself); each pruning method's rounds follow.
Test accuracy and sparsity of every model are coordinates along (seed, pruning, round).

The method dimension is called ``pruning``, not ``method``: xarray's ``.sel`` takes a ``method``
argument of its own, so ``ds.sel(method="imp")`` would not select a method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.stats import t as student_t

from prunesim.io import read_json, read_netcdf


@dataclass(frozen=True)
class ModelResult:
    """Where one pruned (or dense) model's similarity file and summary live."""

    seed: int
    method: str
    round: int
    similarity: str | Path
    summary: str | Path


@dataclass(frozen=True)
class SeedPairResult:
    """Similarity of the dense networks of two seeds: the noise floor of the comparison."""

    seed_a: int
    seed_b: int
    similarity: str | Path


VALUE_DIMS = ("metric", "view", "layer_a", "layer_b")


def _seed_similarity(pairs: list[SeedPairResult]) -> xr.Dataset:
    """The seed pairs' per-value variables (similarity, its reason, its calibration) over
    ``seed_pair``, each prefixed ``seed_``."""
    parts = []
    for pair in pairs:
        loaded = read_netcdf(pair.similarity)
        loaded = loaded[[name for name, var in loaded.data_vars.items() if var.dims == VALUE_DIMS]]
        parts.append(loaded.expand_dims(seed_pair=[f"{pair.seed_a}-{pair.seed_b}"]))
    combined = xr.concat(parts, dim="seed_pair")
    combined = combined.rename({name: f"seed_{name}" for name in combined.data_vars})
    combined["seed_similarity"].attrs["long_name"] = (
        "similarity between the dense networks of two seeds (the noise floor)"
    )
    return combined


OVER_SEEDS = {
    "seeds_defined": "number of seeds whose value is defined",
    "mean_over_seeds": "mean of the value over seeds",
    "sd_over_seeds": "standard deviation of the value over seeds (two or more)",
    "ci_over_seeds_low": "lower end of the t interval of the mean over seeds (three or more), "
    "at the similarity settings' confidence level",
    "ci_over_seeds_high": "upper end of that interval",
}


def settings_of(ds: xr.Dataset) -> dict:
    """The comparison settings a similarity or aggregate Dataset was computed with."""
    return json.loads(ds.attrs.get("settings", "{}"))


def over_seeds(similarity: xr.DataArray, confidence: float) -> xr.Dataset:
    """Mean, standard deviation and t interval of ``similarity`` over its ``seed`` dim: the
    interval only where three or more seeds are defined (with two, a t interval spans
    ±12.7 standard deviations at 95% and says nothing)."""
    count = similarity.notnull().sum("seed")
    mean = similarity.mean("seed", skipna=True).where(count >= 1)
    sd = similarity.std("seed", ddof=1, skipna=True).where(count >= 2)
    quantile = xr.apply_ufunc(
        lambda k: student_t.ppf(0.5 + confidence / 2, np.maximum(k - 1, 1)), count
    )
    half = (quantile * sd / np.sqrt(count)).where(count >= 3)
    ds = xr.Dataset(
        {
            "seeds_defined": count,
            "mean_over_seeds": mean,
            "sd_over_seeds": sd,
            "ci_over_seeds_low": mean - half,
            "ci_over_seeds_high": mean + half,
        }
    )
    for name, meaning in OVER_SEEDS.items():
        ds[name].attrs["long_name"] = meaning
    return ds


ABSENT = "absent: the layer was removed by pruning"
NO_SUCH_ROUND = "absent: the method has no such round"


def _layer_order(parts: list[xr.Dataset], dim: str) -> list[str]:
    """Every layer name along ``dim`` in forward order: a structurally pruned network lacks
    some of its parent's layers but never adds any, so the largest list sets the order."""
    names: list[str] = []
    for ds in sorted(parts, key=lambda ds: -ds.sizes[dim]):
        names += [name for name in ds[dim].values.tolist() if name not in names]
    return names


def _with_object_layers(ds: xr.Dataset) -> xr.Dataset:
    """Layer coordinates as Python strings: a fixed-width string dtype (from netCDF) sized by
    one model's names would cut another model's longer names when they are combined."""
    return ds.assign_coords({dim: ds[dim].values.astype(object) for dim in ("layer_a", "layer_b")})


def _fractions(info: dict) -> tuple[float, float]:
    """Parameters and FLOPs remaining, as fractions of the dense network's."""
    params, flops = info["parameters"], info["flops"]
    return params["remaining"] / params["dense"], flops["remaining"] / flops["dense"]


def aggregate_results(
    results: list[ModelResult],
    seed_pairs: list[SeedPairResult] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """The per-model Datasets over (seed, pruning, round), plus ``seed_similarity`` over
    ``seed_pair`` when pairs of dense networks were compared.

    Methods may have different numbers of rounds, and structured pruning removes layers:
    whatever a model does not have is NaN, with ``nan_reason`` saying why.
    """
    if not results:
        raise ValueError("nothing to aggregate: no model results given")
    seeds = sorted({r.seed for r in results})
    methods = sorted({r.method for r in results})
    rounds = sorted({r.round for r in results})
    loaded = [_with_object_layers(read_netcdf(r.similarity)) for r in results]
    layers = {dim: _layer_order(loaded, dim) for dim in ("layer_a", "layer_b")}
    shape = (len(seeds), len(methods), len(rounds))
    coords = {
        name: np.full(shape, np.nan)
        for name in ("test_accuracy", "sparsity", "parameters_remaining", "flops_remaining")
    }
    parts = []
    for r, ds in zip(results, loaded, strict=True):
        # Depth is a layer's position in the dense network (a pruned one may be shallower).
        ds = ds.drop_vars(["depth_a", "depth_b"], errors="ignore").reindex(layers)
        ds["nan_reason"] = ds.nan_reason.where(ds.nan_reason.notnull(), ABSENT)
        parts.append(ds.expand_dims(seed=[r.seed], pruning=[r.method], round=[r.round]))
        info = read_json(r.summary)
        index = seeds.index(r.seed), methods.index(r.method), rounds.index(r.round)
        coords["test_accuracy"][index] = info["test_accuracy"]
        coords["sparsity"][index] = info["sparsity"]["sparsity"]
        coords["parameters_remaining"][index], coords["flops_remaining"][index] = _fractions(info)
    combined = xr.merge(parts, compat="no_conflicts", combine_attrs="drop_conflicts", join="outer")
    combined["nan_reason"] = combined.nan_reason.where(
        combined.nan_reason.notnull(), NO_SUCH_ROUND
    ).astype(str)
    combined = combined.assign_coords(
        {name: (("seed", "pruning", "round"), values) for name, values in coords.items()}
    ).assign_coords(
        depth_a=("layer_a", np.arange(len(layers["layer_a"]))),
        depth_b=("layer_b", np.arange(len(layers["layer_b"]))),
    )
    combined["test_accuracy"].attrs["long_name"] = "test accuracy"
    combined["sparsity"].attrs["long_name"] = "fraction of prunable weights removed"
    combined["parameters_remaining"].attrs["long_name"] = (
        "parameters remaining (non-zero), as a fraction of the dense network's"
    )
    combined["flops_remaining"].attrs["long_name"] = (
        "FLOPs remaining (non-zero weights), as a fraction of the dense network's"
    )
    for key in ("store_a", "store_b"):
        combined.attrs.pop(key, None)
    combined.attrs["models"] = json.dumps(
        [
            {"seed": r.seed, "method": r.method, "round": r.round, "similarity": str(r.similarity)}
            for r in results
        ]
    )
    if seed_pairs:
        # Dense networks have every layer: aligned to the models' layers (in dense order),
        # a layer only some model has is absent from the seed pair, never a reason to re-sort.
        seeds_ds = _seed_similarity(seed_pairs).drop_vars(["depth_a", "depth_b"], errors="ignore")
        seeds_ds = _with_object_layers(seeds_ds).reindex(
            layer_a=combined.layer_a.values, layer_b=combined.layer_b.values
        )
        seeds_ds["seed_nan_reason"] = seeds_ds.seed_nan_reason.where(
            seeds_ds.seed_nan_reason.notnull(), ABSENT
        ).astype(str)
        combined = xr.merge(
            [combined, seeds_ds], combine_attrs="override", join="exact", compat="no_conflicts"
        )
    confidence = settings_of(combined).get("confidence", 0.95)
    combined = combined.merge(over_seeds(combined.similarity, confidence))
    combined.attrs.update(attrs or {})
    return combined
