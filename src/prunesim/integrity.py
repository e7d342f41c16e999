"""Check the pipeline's files before any job reads them.

Snakemake deletes a job's old outputs before it runs the job. If a job then fails on a
damaged input, those outputs are gone: a trained network that was fine, because its data file
was touched. So before the first job, every existing file that a job about to run will read
(and that no job of this run rewrites) is checked, cheaply: each file against the digest or
checksums it carries, a store against its manifest (not chunk by chunk: its chunks are checked
as a comparison streams them). Each file type has one checker here.

The checkers need the workflow's libraries (torch, zarr, netCDF4). Where Snakemake's own
environment lacks them (the conda route: jobs run in an environment of their own), the check
runs in the jobs' Python instead (``python -m prunesim.integrity``, fed the files on stdin).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from prunesim.io import InputFileError, read_json, read_netcdf
from prunesim.job_python import LACKS_LIBRARIES, in_job_python, missing


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


# What the checkers import (each imports its own lazily).
CHECKER_LIBRARIES = ["numpy", "torch", "zarr", "netCDF4", "xarray"]


def check_files_somewhere(
    paths: Iterable[str | os.PathLike[str]],
    expectations: Callable[[str], dict] | None = None,
    pythons: Iterable[str] = (),
) -> list[str]:
    """:func:`check_files` here if this Python has the checkers' libraries, else in the first
    of ``pythons`` (the jobs' interpreters) that has them; an error when none has them and
    there are files to check."""
    paths = [str(p) for p in paths if Path(p).name in CHECKERS and os.path.exists(p)]
    if not paths:
        return []
    lacking = missing(CHECKER_LIBRARIES)
    if not lacking:
        return check_files(paths, expectations)
    request = [
        [
            path,
            expectations(path) if expectations and CHECKERS[Path(path).name] is _checkpoint else {},
        ]
        for path in paths
    ]
    what = f"checking the {len(paths)} existing files that jobs will read"
    return in_job_python("prunesim.integrity", request, pythons, what, lacking)


def main() -> None:
    """``python -m prunesim.integrity``: check the files of a JSON list ``[[path,
    expectation], ...]`` on stdin; print the problems as a JSON list."""
    if missing(CHECKER_LIBRARIES):
        raise SystemExit(LACKS_LIBRARIES)
    problems = []
    for path, extra in json.load(sys.stdin):
        problems += check_files([path], (lambda _p, extra=extra: extra) if extra else None)
    json.dump(problems, sys.stdout)


if __name__ == "__main__":
    main()
