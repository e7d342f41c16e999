"""Adapter: accuracy vs sparsity figure (rule figure_accuracy_vs_sparsity)."""

import xarray as xr

from prunesim.figures import accuracy_vs_sparsity
from prunesim.io import log_to

log_to(snakemake.log[0])
with xr.open_dataset(snakemake.input[0], engine="netcdf4") as ds:
    accuracy_vs_sparsity(ds.load(), **snakemake.output)
