"""Job: one round of a random baseline (methods ``random_global`` and ``random_layerwise``)."""

from __future__ import annotations

import numpy as np
import torch

from prunesim.jobs import stable_seed
from prunesim.jobs.rounds import RoundJob, retrain_and_save, start_masked
from prunesim.pruning.random import random_step


def prune_round(job: RoundJob) -> None:
    """Remove random surviving weights until the kept counts equal those of the IMP round it
    mirrors (input ``reference``: in total for scope ``global``, in every layer for
    ``layerwise``), then retrain exactly as IMP does (same schedule, same batch order)."""
    dev, splits, net, old = start_masked(job)
    # The draw's seed names the method, so adding or reordering methods never changes a mask.
    state = np.random.SeedSequence([job.seed, job.round, stable_seed(job.method)])
    generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
    reference = job.load_mask("reference", net)
    masks = random_step(old, reference, job.settings["scope"], generator)
    provenance = {**job.identity(), "mirrors": str(job.inputs["reference"])}
    retrain_and_save(job, net, old, masks, splits, dev, provenance)
