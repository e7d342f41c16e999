"""Adapter: similarity to the dense layer vs accuracy lost (rule figure_similarity_vs_accuracy)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_similarity_vs_accuracy

run_job(
    snakemake.log[0],
    figure_similarity_vs_accuracy,
    aggregate=snakemake.input[0],
    view=snakemake.wildcards.view,
    options=snakemake.params.figures,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
