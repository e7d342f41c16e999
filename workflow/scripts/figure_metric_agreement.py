"""Adapter: how far the metrics agree, and where they disagree (rule figure_metric_agreement)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_metric_agreement

run_job(
    snakemake.log[0],
    figure_metric_agreement,
    aggregate=snakemake.input[0],
    view=snakemake.wildcards.view,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
    csv=snakemake.output.csv,
)
