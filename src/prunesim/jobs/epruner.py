"""Job: EPruner at one beta (method ``epruner``)."""

from __future__ import annotations

import logging

from prunesim.jobs.rounds import RoundJob, finetune_and_save, start
from prunesim.pruning.epruner import epruner

log = logging.getLogger(__name__)


def prune_round(job: RoundJob) -> None:
    """Keep each layer's exemplar filters of the dense network at the round's ``beta``, start
    from their weights, fine-tune. Each beta is its own round, pruned from the dense network."""
    beta = job.settings["beta"]
    dev, splits = start(job)
    dense = job.load_model("dense", 0, "dense")
    pruning = epruner(dense, beta, job.seed)
    log.info("epruner beta %g keeps %s filters", beta, {k: len(v) for k, v in pruning.kept.items()})
    provenance = {
        **job.identity(),
        "beta": beta,
        "finetune_epochs": job.settings["finetune_epochs"],
        "exemplars": pruning.kept,
    }
    finetune_and_save(job, pruning.model, dense, splits, dev, provenance)
