"""Adapter: record a model's layer outputs on the probe set (rule extract_activations)."""

from prunesim.io import log_to
from prunesim.stages.extract import extract

log_to(snakemake.log[0])
extract(
    data_file=snakemake.input.data,
    in_model=snakemake.input.model,
    out_store=snakemake.output[0],
    batch_size=snakemake.params.batch_size,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
