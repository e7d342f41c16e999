"""Adapter: record a model's layer outputs on the probe set (rule extract_activations)."""

from prunesim.io import run_job
from prunesim.jobs.extract_activations import extract_activations

run_job(
    snakemake.log[0],
    extract_activations,
    data_file=snakemake.input.data,
    in_model=snakemake.input.model,
    out_store=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    device=snakemake.config["device"],
    threads=snakemake.threads,
    expect=snakemake.params.expect,
    arch=snakemake.params.arch,
)
