"""Where results live: the one home of the ``results/`` layout, read by the rules, the
integrity checks at workflow start, and the tests.

::

    results/EXP/data.npz                       the split and probe set
    results/EXP/seedS/STAGE/                   one model: STAGE is 'dense' or 'METHOD/roundR'
        model.pt  mask.pt  summary.json  activations.zarr  similarity.nc
    results/EXP/seedS/dense/rewind.pt          the dense run's state at the rewind epoch
    results/EXP/seeds/seedA_vs_seedB/similarity.nc   dense network vs dense network
    results/EXP/aggregate.nc                   every model and seed pair of the experiment
    results/figures/EXP/*.pdf|png
"""

from __future__ import annotations

import re

RESULTS = "results"
FIGURES = f"{RESULTS}/figures"
# The files of every model folder, in the order the README lists them.
MODEL_FILES = ("model.pt", "mask.pt", "summary.json", "activations.zarr", "similarity.nc")
REWIND_FILE = "rewind.pt"  # the dense run's state that weight rewinding returns to
STAGE_PATTERN = r"dense|[a-z][a-z_]*/round[1-9][0-9]*"


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


def stage(method: str = "dense", round_: int = 0) -> str:
    """A model's stage within its seed's run: 'dense' (round 0) or 'METHOD/roundR'."""
    return "dense" if method == "dense" or int(round_) == 0 else f"{method}/round{round_}"


def model_dir(exp: str, seed: int, method: str = "dense", round_: int = 0) -> str:
    """Folder of one model: the dense network (round 0) or a method's round."""
    return f"{RESULTS}/{exp}/seed{seed}/{stage(method, round_)}"


def seed_pair_dir(exp: str, seed_a: int, seed_b: int) -> str:
    return f"{RESULTS}/{exp}/seeds/seed{seed_a}_vs_seed{seed_b}"


def aggregate_file(exp: str) -> str:
    return f"{RESULTS}/{exp}/aggregate.nc"


def stage_identity(exp: str, seed: int, stage_: str) -> dict:
    """The provenance a model of ``stage_`` ('dense' or 'METHOD/roundR') must carry."""
    method, _, round_ = stage_.partition("/round")
    return model_identity(exp, int(seed), method, int(round_ or 0))


CHECKPOINT_PATH = re.compile(
    rf"{RESULTS}/(?P<exp>[^/]+)/seed(?P<seed>[0-9]+)/(?:(?P<stage>{STAGE_PATTERN})/model|"
    r"dense/rewind)\.pt"
)


def checkpoint_identity(path: str) -> tuple[str, dict] | None:
    """(experiment, expected provenance) of the checkpoint at ``path`` from its place in
    results/, or None for a path outside the layout."""
    match = CHECKPOINT_PATH.fullmatch(path)
    if match is None:
        return None
    return match["exp"], stage_identity(match["exp"], match["seed"], match["stage"] or "dense")
