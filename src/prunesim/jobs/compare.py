"""Job: the similarity of every layer pair of two activation stores (rules compare and
compare_seeds)."""

from __future__ import annotations

from threadpoolctl import threadpool_limits

from prunesim.comparison import CompareSettings, compare_stores
from prunesim.io import write_netcdf


def compare(
    store_a: str,
    store_b: str,
    settings: dict,
    out: str,
    threads: int | None = None,
    device: str = "cpu",
) -> None:
    """Similarity of every layer pair of two stores, as a netCDF Dataset, computed on
    ``device`` (the config's top-level ``device``; see :mod:`prunesim.device`). ``settings``
    is the experiment's ``similarity`` block.

    ``threads`` caps the BLAS threads: a job keeps to the cores Snakemake gave it, since BLAS
    threads that outnumber the free cores spin-wait on each other and slow every job.
    """
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    cfg["device"] = device
    with threadpool_limits(limits=threads, user_api="blas"):
        ds = compare_stores(store_a, store_b, CompareSettings(**cfg))
    write_netcdf(ds, out)
