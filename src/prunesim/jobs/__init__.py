"""Job functions: what a rule's adapter (``workflow/scripts/RULE.py``) calls, one per rule.

A job function takes plain values (paths, config values), does one job through the library
modules and writes its outputs atomically. Nothing here knows about Snakemake. Each rule's code
digest is the import closure of its adapter (:mod:`prunesim.code_identity`), so a job module imports
only what its job runs, and this package's ``__init__`` (part of every job's closure) stays
small.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the similarity and figure jobs run without torch
    import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch: same config + seed gives the same numbers on CPU."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (third-party code may use the legacy RNG)
    torch.manual_seed(seed)


def stable_seed(name: str) -> int:
    """A 32-bit number of ``name`` that never changes: a method's own random draws are seeded
    with its name, so adding, renaming or reordering other methods changes none of them."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def setup(threads: int, seed: int, device: str) -> torch.device:
    """Thread count, seeds and device for one job."""
    import torch

    from prunesim.device import torch_device

    torch.set_num_threads(max(1, threads))
    seed_everything(seed)
    return torch_device(device)


def model_label(experiment: str, seed: int, method: str = "dense", round_: int = 0) -> str:
    """Which model a job works on, for messages: 'experiment e, seed 0, imp round 2'."""
    stage = "dense" if method == "dense" else f"{method} round {round_}"
    return (
        f"experiment {experiment}, seed {seed}, {stage}" if experiment else f"seed {seed}, {stage}"
    )
