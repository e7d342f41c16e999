"""The one device vocabulary: what the config's ``device`` may say and what each word means.

``auto``
    a CUDA GPU when torch sees one, else the CPU; reserves no GPU from the scheduler.
``cpu``
    the CPU: torch for training and extraction, numpy (OpenBLAS) for the similarity metrics.
``cuda`` / ``cuda:N``
    that GPU, for training, extraction and the metrics (torch in float64); each such job
    reserves one GPU (``gpu`` resource locally, ``--gpus`` on SLURM).

One more word exists below the config, for tests only: the metrics' ``torch:cpu`` runs their
torch code path on the CPU (:func:`prunesim.metrics.backend.get_backend`).

The device is where a job runs, not what it computes: it is not a param of any rule, so
changing it reruns nothing (``auto`` and ``cpu`` are the same computation on a machine without
a GPU; on a GPU the numbers differ from the CPU's within floating-point tolerance, and
``--forcerun`` recomputes finished jobs there).
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING

from prunesim.io import JobFailure

if TYPE_CHECKING:  # this module is read when the workflow starts: no torch until needed
    import torch

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DEVICE_WORDS = "'auto', 'cpu', 'cuda' or 'cuda:N'"


class DeviceError(JobFailure, ValueError):
    """A device setting that is not in the vocabulary, or a GPU that this machine cannot see
    (a job failure with one line, and a ValueError for callers of the library)."""


def check_setting(device: str) -> None:
    """A :class:`DeviceError` unless ``device`` is a word of the vocabulary."""
    if not isinstance(device, str) or re.fullmatch(DEVICE_PATTERN, device) is None:
        raise DeviceError(f"unknown device {device!r} (expected {DEVICE_WORDS})")


def gpus_reserved(device: str) -> int:
    """GPUs a training or extraction job reserves: one when the setting names CUDA."""
    check_setting(device)
    return 1 if device.startswith("cuda") else 0


def cuda_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def check_visible(device: str) -> None:
    """A :class:`DeviceError` when ``device`` names a CUDA GPU that this machine cannot see.

    Run where the jobs run (a local run), before any job: otherwise every job would fail only
    after Snakemake had removed its previous outputs. ``auto`` and ``cpu`` always pass.
    """
    check_setting(device)
    if not device.startswith("cuda"):
        return
    import torch  # only for a CUDA setting: the check needs the driver

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_index(device) >= visible:
        raise DeviceError(
            f"device {device!r}, but this machine sees "
            f"{'no CUDA GPU' if visible == 0 else f'{visible} CUDA GPU(s)'} (expected 'cpu' or "
            "'auto' here, or run the jobs where the GPU is, e.g. --workflow-profile profiles/slurm)"
        )


# Device files through which torch reaches a GPU: NVIDIA's driver, AMD's ROCm (which torch
# also calls cuda), and WSL's GPU paravirtualisation.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_device_nodes() -> bool:
    """Whether this machine has a device file torch could reach a GPU through (always true
    off Linux, where they are not looked for). Without one, ``auto`` means the CPU with no
    need to import torch, which takes 1-2 s: a comparison job on a CPU machine then never
    imports it."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(node) for node in GPU_DEVICE_NODES)


def resolve(device: str) -> str:
    """The concrete device a setting means on this machine: ``cpu``, ``cuda`` or ``cuda:N``."""
    check_setting(device)
    if device == "cpu" or (device == "auto" and not gpu_device_nodes()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {device!r} requested, but torch sees no CUDA device on this machine "
            "(expected 'cpu' or 'auto' here)"
        )
    return device


def torch_device(device: str) -> torch.device:
    """The torch device for a setting (training and extraction)."""
    import torch

    return torch.device(resolve(device))
