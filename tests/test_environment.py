"""Every result records where and with what it was computed (prunesim.environment)."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import torch
import xarray as xr
from threadpoolctl import threadpool_info

from prunesim.environment import describe
from prunesim.jobs.compare import compare


def test_the_record_names_the_imported_libraries_versions_and_threads():
    record = describe("cpu")
    assert record["device"] == "cpu"
    assert record["numpy"] == importlib.metadata.version("numpy") == np.__version__
    assert record["torch"] == importlib.metadata.version("torch")
    assert record["torch_threads"] == torch.get_num_threads()
    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert record["blas_threads"] == max(blas)
    assert "gpu" not in record  # no GPU ran it


def test_a_comparison_records_its_device_and_the_blas_threads_it_was_given(lenet_stores, tmp_path):
    out = tmp_path / "similarity.nc"
    settings = {"metrics": ["cka_linear"], "views": ["gap"], "permutations": 0, "bootstrap": 0}
    compare(str(lenet_stores["a"]), str(lenet_stores["b"]), settings, str(out), threads=1)
    with xr.open_dataset(out) as ds:
        record = json.loads(ds.attrs["environment"])
    assert record["device"] == "cpu"
    assert record["blas_threads"] == 1
    assert record["xarray"] == importlib.metadata.version("xarray")
