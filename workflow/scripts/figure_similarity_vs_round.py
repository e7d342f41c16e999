"""Adapter: each layer vs its dense self round by round, every method (rule figure_similarity_vs_round)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_similarity_vs_round

run_job(
    snakemake.log[0],
    figure_similarity_vs_round,
    aggregate=snakemake.input[0],
    view=snakemake.wildcards.view,
    part=snakemake.wildcards.part,
    options=snakemake.params.figures,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
