"""Adapter: one round of a pruning method (rule prune)."""

from prunesim.io import run_job
from prunesim.jobs.model_files import ModelFiles
from prunesim.jobs.rounds import RoundJob, prune

experiment = snakemake.config["experiments"][snakemake.wildcards.exp]
run_job(
    snakemake.log[0],
    prune,
    job=RoundJob(
        experiment=snakemake.wildcards.exp,
        seed=int(snakemake.wildcards.seed),
        method=snakemake.wildcards.method,
        round=int(snakemake.wildcards.round),
        data=snakemake.input.data,
        inputs={role: path for role, path in snakemake.input.items() if role != "data"},
        outputs=ModelFiles(snakemake.output.model, snakemake.output.mask, snakemake.output.summary),
        train=experiment["train"],
        settings=snakemake.params.settings,
        arch=snakemake.params.arch,
        device=snakemake.config["device"],
        threads=snakemake.threads,
    ),
    job_module=snakemake.params.job_module,
)
