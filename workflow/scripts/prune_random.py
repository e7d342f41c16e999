"""Adapter: one round of a random pruning baseline (rule prune_random)."""

from prunesim.io import run_job
from prunesim.stages.train import prune_random_round

run_job(
    snakemake.log[0],
    prune_random_round,
    data_file=snakemake.input.data,
    train_cfg=snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    round_=int(snakemake.wildcards.round),
    method=snakemake.wildcards.method,
    in_model=snakemake.input.model,
    in_mask=snakemake.input.mask,
    reference_mask=snakemake.input.reference,
    out_model=snakemake.output.model,
    out_mask=snakemake.output.mask,
    out_metrics=snakemake.output.metrics,
    device=snakemake.params.device,
    threads=snakemake.threads,
    experiment=snakemake.wildcards.exp,
    model=snakemake.params.model,
)
