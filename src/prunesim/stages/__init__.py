"""One module per pipeline stage: what a workflow script calls with its inputs and params.

Each stage takes plain values (paths, config dicts), does the work through the library modules
and writes its outputs atomically. Nothing here knows about Snakemake. Stages are split by rule
family so each rule's code digest covers only the code it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the similarity stages run without torch
    import torch


def setup(threads: int, seed: int, device: str) -> torch.device:
    """Thread count, seeds and device for one job."""
    import torch

    from prunesim.train import seed_everything, select_device

    torch.set_num_threads(max(1, threads))
    seed_everything(seed)
    return select_device(device)
