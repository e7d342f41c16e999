"""Adapter: units that never fire or never vary, round by round (rule figure_units_per_round)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_units_per_round

run_job(
    snakemake.log[0],
    figure_units_per_round,
    aggregate=snakemake.input[0],
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
