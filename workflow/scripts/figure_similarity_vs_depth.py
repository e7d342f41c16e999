"""Adapter: matched-layer similarity vs depth figure (rule figure_similarity_vs_depth)."""

import xarray as xr

from prunesim.figures import similarity_vs_depth
from prunesim.io import log_to

log_to(snakemake.log[0])
with xr.open_dataset(snakemake.input[0], engine="netcdf4") as ds:
    similarity_vs_depth(ds.load(), snakemake.wildcards.method, **snakemake.output)
