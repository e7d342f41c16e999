"""Adapter: matched-layer similarity vs depth figure (rule figure_similarity_vs_depth)."""

from prunesim.io import run_job
from prunesim.jobs.figures import figure_similarity_vs_depth

run_job(
    snakemake.log[0],
    figure_similarity_vs_depth,
    aggregate=snakemake.input[0],
    method=snakemake.wildcards.method,
    pdf=snakemake.output.pdf,
    png=snakemake.output.png,
)
