"""Adapter: similarity of every layer pair of two activation stores (rules compare and
compare_seeds)."""

from prunesim.io import run_job
from prunesim.jobs.compare import compare

experiment = snakemake.config["experiments"][snakemake.wildcards.exp]
run_job(
    snakemake.log[0],
    compare,
    store_a=snakemake.input.a,
    store_b=snakemake.input.b,
    settings=experiment["similarity"],
    out=snakemake.output[0],
    threads=snakemake.threads,
    device=snakemake.config["device"],
)
