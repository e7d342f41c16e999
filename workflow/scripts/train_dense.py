"""Adapter: train the dense network (rule train_dense)."""

from prunesim.io import run_job
from prunesim.stages.train import train_dense

run_job(
    snakemake.log[0],
    train_dense,
    data_file=snakemake.input.data,
    model=snakemake.params.model,
    train_cfg=snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    out_model=snakemake.output.model,
    out_mask=snakemake.output.mask,
    out_metrics=snakemake.output.metrics,
    include_output=snakemake.params.prune_output_layer,
    device=snakemake.params.device,
    threads=snakemake.threads,
    experiment=snakemake.wildcards.exp,
)
