"""Adapter: one IMP round with learning-rate rewinding (rule prune_imp)."""

from prunesim.io import run_job
from prunesim.stages.train import prune_imp_round

run_job(
    snakemake.log[0],
    prune_imp_round,
    data_file=snakemake.input.data,
    train_cfg=snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    round_=int(snakemake.wildcards.round),
    rate=snakemake.params.rate,
    scope=snakemake.params.scope,
    in_model=snakemake.input.model,
    in_mask=snakemake.input.mask,
    out_model=snakemake.output.model,
    out_mask=snakemake.output.mask,
    out_metrics=snakemake.output.metrics,
    device=snakemake.params.device,
    threads=snakemake.threads,
    experiment=snakemake.wildcards.exp,
    model=snakemake.params.model,
)
