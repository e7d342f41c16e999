"""Adapter: the experiment's split and probe set as one .npz (rule prepare_data)."""

from prunesim.io import run_job
from prunesim.stages.data import prepare_data

run_job(
    snakemake.log[0],
    prepare_data,
    dataset=snakemake.params.dataset,
    out=snakemake.output[0],
)
