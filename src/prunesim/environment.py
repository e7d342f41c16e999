"""Where and with what a result was computed: device, library versions and thread counts.

Recorded in every model's ``summary.json`` and in the attributes of every similarity
Dataset, so that a number can be traced to the machine and software that made it (a result
on a GPU differs from the CPU's within floating-point tolerance; a BLAS with more threads sums
in another order).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import prunesim

# Distributions whose version is recorded when the job has imported them (module, distribution).
LIBRARIES = (
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("xarray", "xarray"),
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("zarr", "zarr"),
    ("netCDF4", "netCDF4"),
    ("sklearn", "scikit-learn"),
)


def describe(device: str) -> dict:
    """The record for a computation on ``device`` (what ran it: ``cpu``, ``cuda:0``,
    ``numpy``, ``torch:cuda:0``): versions of the libraries this process has imported, its
    CPU and thread counts, and the GPU's name where one ran it."""
    record: dict = {
        "device": device,
        "prunesim": prunesim.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus_usable": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    for module, distribution in LIBRARIES:
        if module in sys.modules:
            try:
                record[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                record[distribution] = getattr(sys.modules[module], "__version__", "unknown")
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]
    if blas:
        record["blas"] = ", ".join(sorted({f"{p['internal_api']} {p['version']}" for p in blas}))
        record["blas_threads"] = max(p["num_threads"] for p in blas)
    torch = sys.modules.get("torch")
    if torch is not None:
        record["torch_threads"] = torch.get_num_threads()
        if "cuda" in device and torch.cuda.is_available():
            index = device.rpartition(":")[2]
            gpu = torch.device(f"cuda:{index}" if index.isdigit() else "cuda")
            record["gpu"] = torch.cuda.get_device_name(gpu)
            record["cuda"] = torch.version.cuda
    return record


# The exit status of a `python -m prunesim.X` helper run in a Python that lacks the libraries
# it needs: the next candidate interpreter is tried.
LACKS_LIBRARIES = 3


def missing(libraries: Iterable[str]) -> list[str]:
    """The ``libraries`` (module names) that this Python cannot import."""
    return [name for name in libraries if importlib.util.find_spec(name) is None]


def in_job_python(
    module: str | list[str], request, pythons: Iterable[str], what: str, libraries: list[str]
):
    """Run ``python -m module`` (a name, or a name and its arguments) in the first of ``pythons`` (the jobs' interpreters, e.g. a
    conda environment's) that has the libraries it needs, with this checkout's library on its
    path, ``request`` as JSON on stdin; return its JSON answer. Used where Snakemake's own
    Python lacks ``libraries`` (the conda route) for work that must happen before any job.
    A RuntimeError says ``what`` could not be done, and why."""
    src = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    for python in pythons:
        done = subprocess.run(
            [python, "-m", *([module] if isinstance(module, str) else module)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        if done.returncode == 0:
            return json.loads(done.stdout)
        if done.returncode != LACKS_LIBRARIES:
            raise RuntimeError(f"{what} with {python} failed:\n{done.stderr.strip()}")
    raise RuntimeError(
        f"{what} needs {libraries}, which neither Snakemake's Python nor a job environment "
        "has: install the workflow's dependencies (pip install 'prunesim[workflow]') or run "
        "with --software-deployment-method conda"
    )
