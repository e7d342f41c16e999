"""Adapter: layer x layer heatmaps beside the seed-to-seed matrix (rule figure_layer_heatmaps)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_layer_heatmaps

run_job(
    snakemake.log[0],
    figure_layer_heatmaps,
    aggregate=snakemake.input[0],
    view=snakemake.wildcards.view,
    options=snakemake.params.figures,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
