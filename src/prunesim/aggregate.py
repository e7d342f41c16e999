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

from prunesim.io import read_json


@dataclass(frozen=True)
class ModelResult:
    """Where one pruned (or dense) model's similarity and metrics live."""

    seed: int
    method: str
    round: int
    similarity: str | Path
    metrics: str | Path


@dataclass(frozen=True)
class SeedPairResult:
    """Similarity of the dense networks of two seeds: the noise floor of the comparison."""

    seed_a: int
    seed_b: int
    similarity: str | Path


def _seed_similarity(pairs: list[SeedPairResult]) -> xr.Dataset:
    parts = []
    for pair in pairs:
        with xr.open_dataset(pair.similarity, engine="netcdf4") as ds:
            loaded = ds[["similarity", "nan_reason"]].load()
        parts.append(loaded.expand_dims(seed_pair=[f"{pair.seed_a}-{pair.seed_b}"]))
    combined = xr.concat(parts, dim="seed_pair")
    combined = combined.rename(similarity="seed_similarity", nan_reason="seed_nan_reason")
    combined["seed_similarity"].attrs["long_name"] = (
        "similarity between the dense networks of two seeds (the noise floor)"
    )
    return combined


def aggregate(
    results: list[ModelResult],
    seed_pairs: list[SeedPairResult] | None = None,
    attrs: dict | None = None,
) -> xr.Dataset:
    """The per-model Datasets over (seed, pruning, round), plus ``seed_similarity`` over
    ``seed_pair`` when pairs of dense networks were compared."""
    if not results:
        raise ValueError("nothing to aggregate: no model results given")
    seeds = sorted({r.seed for r in results})
    methods = sorted({r.method for r in results})
    rounds = sorted({r.round for r in results})
    parts = []
    accuracy = np.full((len(seeds), len(methods), len(rounds)), np.nan)
    sparsity = np.full_like(accuracy, np.nan)
    for r in results:
        with xr.open_dataset(r.similarity, engine="netcdf4") as ds:
            loaded = ds.load()
        parts.append(loaded.expand_dims(seed=[r.seed], pruning=[r.method], round=[r.round]))
        info = read_json(r.metrics)
        index = seeds.index(r.seed), methods.index(r.method), rounds.index(r.round)
        accuracy[index] = info["test_accuracy"]
        sparsity[index] = info["sparsity"]["sparsity"]
    combined = xr.combine_by_coords(parts, combine_attrs="drop_conflicts", join="outer")
    combined = combined.assign_coords(
        test_accuracy=(("seed", "pruning", "round"), accuracy),
        sparsity=(("seed", "pruning", "round"), sparsity),
    )
    combined["test_accuracy"].attrs["long_name"] = "test accuracy"
    combined["sparsity"].attrs["long_name"] = "fraction of prunable weights removed"
    for key in ("store_a", "store_b"):
        combined.attrs.pop(key, None)
    combined.attrs["models"] = json.dumps(
        [
            {"seed": r.seed, "method": r.method, "round": r.round, "similarity": str(r.similarity)}
            for r in results
        ]
    )
    if seed_pairs:
        combined = xr.merge(
            [combined, _seed_similarity(seed_pairs)], combine_attrs="override", join="outer"
        )
    combined.attrs.update(attrs or {})
    return combined
