"""Adapter: similarity of all layer pairs of a model to the dense network (rule compare)."""

from prunesim.io import run_job
from prunesim.stages.similarity import compare

run_job(
    snakemake.log[0],
    compare,
    store_a=snakemake.input.dense,
    store_b=snakemake.input.model,
    similarity_cfg=snakemake.params.similarity,
    out=snakemake.output[0],
    threads=snakemake.threads,
    device=snakemake.params.device,
)
