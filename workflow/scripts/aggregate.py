"""Adapter: one Dataset per experiment over seed, method and round (rule aggregate)."""

from prunesim.io import run_job
from prunesim.jobs.aggregate import aggregate

run_job(
    snakemake.log[0],
    aggregate,
    similarity=list(snakemake.input.similarity),
    summaries=list(snakemake.input.summaries),
    keys=snakemake.params.models,
    out=snakemake.output[0],
    seed_similarity=list(snakemake.input.seed_similarity),
    seed_pairs=snakemake.params.seed_pairs,
)
