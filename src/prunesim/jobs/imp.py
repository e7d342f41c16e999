"""Job: one IMP round with learning-rate rewinding (method ``imp``)."""

from __future__ import annotations

from prunesim.jobs.rounds import RoundJob, retrain_and_save, start_masked
from prunesim.pruning.magnitude import magnitude_step


def prune_round(job: RoundJob) -> None:
    """Prune ``rate`` of the surviving weights by magnitude (``scope``: global or layerwise),
    then retrain in full from the current weights."""
    rate, scope = job.settings["rate"], job.settings["scope"]
    dev, splits, net, old = start_masked(job)
    masks = magnitude_step(net, old, rate, scope)
    provenance = {**job.identity(), "rate": rate, "scope": scope}
    retrain_and_save(job, net, old, masks, splits, dev, provenance)
