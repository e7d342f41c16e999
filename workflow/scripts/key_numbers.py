"""Adapter: the run's key numbers as an HTML page and a CSV (rule key_numbers)."""

from prunesim.io import run_job
from prunesim.jobs.figures import key_numbers

run_job(
    snakemake.log[0],
    key_numbers,
    aggregate=snakemake.input[0],
    options=snakemake.params.figures,
    html=snakemake.output.html,
    csv=snakemake.output.csv,
)
