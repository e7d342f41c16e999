"""Adapter: one CKA layer-pruning step (rule prune_cka_layers)."""

from prunesim.io import run_job
from prunesim.stages.train import StructuredOutputs, prune_cka_layers_step

run_job(
    snakemake.log[0],
    prune_cka_layers_step,
    data_file=snakemake.input.data,
    train_cfg=snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    round_=int(snakemake.wildcards.round),
    finetune_epochs=snakemake.params.finetune_epochs,
    criterion_samples=snakemake.params.criterion_samples,
    in_model=snakemake.input.model,
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
