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


def model_label(experiment: str, seed: int, method: str = "dense", round_: int = 0) -> str:
    """Which model a job works on, for messages: 'experiment e, seed 0, imp round 2'."""
    stage = "dense" if method == "dense" else f"{method} round {round_}"
    return (
        f"experiment {experiment}, seed {seed}, {stage}" if experiment else f"seed {seed}, {stage}"
    )


def model_identity(experiment: str, seed: int, method: str = "dense", round_: int = 0) -> dict:
    """The provenance keys that identify a model, as its checkpoint records them and as a job
    expects them of its inputs: round 0 is the dense network whatever method starts from it;
    the experiment is included where it is known."""
    return {
        **({"experiment": experiment} if experiment else {}),
        "method": "dense" if round_ == 0 else method,
        "round": round_,
        "seed": seed,
    }
