"""Job: one round of IMP in any of its retraining modes, iterative or one-shot (methods
``imp``, ``imp_oneshot``, ``imp_weight_rewind``, ``imp_finetune``, ...; prunesim.methods)."""

from __future__ import annotations

from prunesim.jobs.rounds import RoundJob, retrain_and_save, start, start_masked
from prunesim.pruning.magnitude import magnitude_oneshot, magnitude_step


def prune_round(job: RoundJob) -> None:
    """Iterative: prune ``rate`` of the previous round's surviving weights by magnitude
    (``scope``: global or layerwise). One-shot: prune the dense network once to the kept count
    that iterative IMP has after this many rounds. Then retrain as ``retraining`` says."""
    settings = job.settings
    rate, scope = settings["rate"], settings["scope"]
    if settings["oneshot"]:
        dev, splits = start(job)
        net = job.load_model("dense", 0)
        old = job.load_mask("dense_mask", net)
        masks = magnitude_oneshot(net, old, rate, job.round, scope)
    else:
        dev, splits, net, old = start_masked(job)
        masks = magnitude_step(net, old, rate, scope)
    provenance = {
        **job.identity(),
        "rate": rate,
        "scope": scope,
        "retraining": settings["retraining"],
        "oneshot": settings["oneshot"],
        "retrain_epochs": settings["retrain_epochs"],
    }
    retrain_and_save(job, net, old, masks, splits, dev, provenance, settings["retraining"])
