"""Adapter: accuracy vs sparsity figure (rule figure_accuracy_vs_sparsity)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_accuracy_vs_sparsity

run_job(
    snakemake.log[0],
    figure_accuracy_vs_sparsity,
    aggregate=snakemake.input[0],
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
