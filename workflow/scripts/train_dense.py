"""Adapter: train the dense network (rule train_dense)."""

from prunesim.io import run_job
from prunesim.jobs.dense import train_dense
from prunesim.jobs.model_files import ModelFiles

experiment = snakemake.config["experiments"][snakemake.wildcards.exp]
run_job(
    snakemake.log[0],
    train_dense,
    data_file=snakemake.input.data,
    arch=snakemake.params.arch,
    train_cfg=experiment["train"],
    seed=int(snakemake.wildcards.seed),
    files=ModelFiles(snakemake.output.model, snakemake.output.mask, snakemake.output.summary),
    rewind_file=snakemake.output.rewind,
    rewind_epoch=snakemake.params.rewind_epoch,
    include_output=snakemake.params.prune_output_layer,
    device=snakemake.config["device"],
    threads=snakemake.threads,
    experiment=snakemake.wildcards.exp,
)
