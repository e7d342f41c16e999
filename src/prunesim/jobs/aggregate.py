"""Job: one Dataset per experiment over seed, method and round (rule aggregate)."""

from __future__ import annotations

from prunesim.aggregate import ModelResult, SeedPairResult, aggregate_results
from prunesim.io import write_netcdf


def aggregate(
    similarity: list[str],
    summaries: list[str],
    keys: list[dict],
    out: str,
    seed_similarity: list[str] = (),
    seed_pairs: list[dict] = (),
) -> None:
    """Concatenate an experiment's per-model similarity files over seed, method and round,
    with the seed-to-seed similarity of the dense networks.

    ``keys[i]`` ({seed, method, round}) labels ``similarity[i]`` and ``summaries[i]``;
    ``seed_pairs[i]`` ({seed_a, seed_b}) labels ``seed_similarity[i]``.
    """
    results = [
        ModelResult(k["seed"], k["method"], k["round"], s, m)
        for k, s, m in zip(keys, similarity, summaries, strict=True)
    ]
    pairs = [
        SeedPairResult(k["seed_a"], k["seed_b"], s)
        for k, s in zip(seed_pairs, seed_similarity, strict=True)
    ]
    write_netcdf(aggregate_results(results, pairs), out)
