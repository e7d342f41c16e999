"""Adapter: every method beside IMP, round by round, one view (rule figure_similarity_vs_round)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_similarity_vs_round

run_job(
    snakemake.log[0],
    figure_similarity_vs_round,
    aggregate=snakemake.input[0],
    view=snakemake.wildcards.view,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
