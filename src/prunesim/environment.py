"""Where and with what a result was computed: device, library versions and thread counts.

Recorded in every model's ``summary.json`` and in the attributes of every similarity
Dataset, so that a number can be traced to the machine and software that made it (a result
on a GPU differs from the CPU's within floating-point tolerance; a BLAS with more threads sums
in another order).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

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
