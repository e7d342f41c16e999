"""Stages: compare two activation stores; aggregate an experiment's comparisons."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from prunesim.aggregate import ModelResult, SeedPairResult, aggregate
from prunesim.compare import CompareSettings, compare_stores
from prunesim.io import write_netcdf


def compare(
    store_a: str,
    store_b: str,
    similarity_cfg: dict,
    out: str,
    threads: int | None = None,
    device: str = "cpu",
) -> None:
    """Similarity of every layer pair of two stores, as a netCDF Dataset, computed on
    ``device`` (the config's top-level ``device``; see :mod:`prunesim.metrics.backend`).

    ``threads`` caps the BLAS threads: a job keeps to the cores Snakemake gave it, since BLAS
    threads that outnumber the free cores wait on each other (LAPACK's reductions slowed 3x
    under load with two threads on two busy cores).
    """
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in similarity_cfg.items()}
    cfg["device"] = device
    with threadpool_limits(limits=threads, user_api="blas"):
        ds = compare_stores(store_a, store_b, CompareSettings(**cfg))
    write_netcdf(ds, out)


def aggregate_experiment(
    similarity: list[str],
    metrics: list[str],
    keys: list[dict],
    out: str,
    seed_similarity: list[str] = (),
    seed_pairs: list[dict] = (),
) -> None:
    """Concatenate an experiment's per-model Datasets over seed, method and round, with the
    seed-to-seed similarity of the dense networks.

    ``keys[i]`` ({seed, method, round}) labels ``similarity[i]`` and ``metrics[i]``;
    ``seed_pairs[i]`` ({seed_a, seed_b}) labels ``seed_similarity[i]``.
    """
    results = [
        ModelResult(k["seed"], k["method"], k["round"], s, m)
        for k, s, m in zip(keys, similarity, metrics, strict=True)
    ]
    pairs = [
        SeedPairResult(k["seed_a"], k["seed_b"], s)
        for k, s in zip(seed_pairs, seed_similarity, strict=True)
    ]
    ds = aggregate(results, pairs)
    write_netcdf(ds, out)
