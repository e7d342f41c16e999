"""Adapter: EPruner at one beta (rule prune_epruner)."""

from prunesim.io import run_job
from prunesim.stages.train import StructuredOutputs, prune_epruner

run_job(
    snakemake.log[0],
    prune_epruner,
    data_file=snakemake.input.data,
    train_cfg=snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    round_=int(snakemake.wildcards.round),
    beta=snakemake.params.beta,
    finetune_epochs=snakemake.params.finetune_epochs,
    dense_model=snakemake.input.dense,
    outputs=StructuredOutputs(
        snakemake.output.model, snakemake.output.mask, snakemake.output.metrics
    ),
    include_output=snakemake.params.prune_output_layer,
    device=snakemake.params.device,
    threads=snakemake.threads,
    experiment=snakemake.wildcards.exp,
    model=snakemake.params.model,
)
