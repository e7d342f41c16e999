"""Adapter: the experiment's split and probe set as one .npz (rule prepare_data)."""

from prunesim.io import log_to
from prunesim.stages.data import prepare_data

log_to(snakemake.log[0])
prepare_data(dataset=snakemake.params.dataset, out=snakemake.output[0])
