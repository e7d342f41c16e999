"""Check the pipeline's files before any job reads them.

Snakemake deletes a job's old outputs before it runs the job. If a job then fails on a
damaged input, those outputs are gone: a trained network that was fine, because its data file
was touched. So before the first job, every existing file that a job about to run will read
(and that no job of this run rewrites) is checked, cheaply: each file against the digest or
checksums it carries, a store against its manifest (not chunk by chunk: its chunks are checked
as a comparison streams them). Each file type has one checker here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prunesim.io import InputFileError, read_json, read_netcdf


def _checkpoint(path: str, expect: dict | None = None, arch: str | None = None) -> None:
    from prunesim.checkpoint import load_checkpoint

    load_checkpoint(path, expect, arch)


def _masks(path: str) -> None:
    from prunesim.pruning.masks import load_masks

    load_masks(path)


def _prepared_data(path: str) -> None:
    from prunesim.data import load_prepared

    load_prepared(path)


def _store(path: str) -> None:
    from prunesim.activations import open_activations

    open_activations(path)


CHECKERS: dict[str, Callable[[str], object]] = {
    "model.pt": _checkpoint,
    "rewind.pt": _checkpoint,
    "mask.pt": _masks,
    "data.npz": _prepared_data,
    "summary.json": read_json,
    "activations.zarr": _store,
    "similarity.nc": read_netcdf,
    "aggregate.nc": lambda path: read_netcdf(path, "aggregate file"),
}


def check_files(
    paths: Iterable[str | os.PathLike[str]], expectations: Callable[[str], dict] | None = None
) -> list[str]:
    """One message per damaged file among ``paths`` (files of other names are skipped).

    ``expectations(path)`` gives what a checkpoint must be (``expect``: its provenance,
    ``arch``: its architecture's name; see :func:`prunesim.checkpoint.load_checkpoint`)."""
    problems = []
    for path in map(str, paths):
        checker = CHECKERS.get(Path(path).name)
        if checker is None or not os.path.exists(path):
            continue
        extra = expectations(path) if expectations and checker is _checkpoint else {}
        try:
            checker(path, **extra)
        except InputFileError as err:
            problems.append(str(err))
    return problems
