"""Job: one round of the retrain-only control (method ``retrain_only``)."""

from __future__ import annotations

from prunesim.jobs.rounds import RoundJob, retrain_and_save, start_masked


def prune_round(job: RoundJob) -> None:
    """Prune nothing: retrain the previous round's network exactly as an ``imp`` round would
    (fresh optimizer, the schedule's last ``retrain_epochs`` epochs, the same round seed and so
    the same batch order), so the change it shows is what retraining alone does."""
    dev, splits, net, masks = start_masked(job)
    retrain_and_save(job, net, masks, masks, splits, dev, job.identity())
