"""Adapter: the experiment's split and probe set as one .npz (rule prepare_data)."""

from prunesim.io import run_job
from prunesim.jobs.data import prepare_data

experiment = snakemake.config["experiments"][snakemake.wildcards.exp]
run_job(
    snakemake.log[0],
    prepare_data,
    dataset=experiment["dataset"],
    out=snakemake.output[0],
)
