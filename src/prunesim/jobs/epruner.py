"""Job: EPruner at one beta (method ``epruner``)."""

from __future__ import annotations

import logging
from dataclasses import replace

from prunesim.jobs.rounds import RoundJob, finetune_and_save, start
from prunesim.pruning.epruner import epruner, vgg_late_beta

log = logging.getLogger(__name__)


def prune_round(job: RoundJob) -> None:
    """Keep each layer's exemplar filters of the dense network at the round's ``beta`` (VGG:
    ``vgg_late_beta`` from its convolution on), start from their weights (``initialisation``),
    fine-tune (``finetune``: the training block's values the fine-tuning replaces). Each beta
    is its own round, pruned from the dense network."""
    beta = job.settings["beta"]
    dev, splits = start(job)
    dense = job.load_model("dense", 0, "dense")
    late_beta = vgg_late_beta(dense, job.settings["vgg_late_beta"])
    initialisation = job.settings["initialisation"]
    pruning = epruner(dense, beta, job.seed, initialisation, late_beta)
    log.info("epruner beta %g keeps %s filters", beta, {k: len(v) for k, v in pruning.kept.items()})
    provenance = {
        **job.identity(),
        "beta": beta,
        "late_beta": list(late_beta) if late_beta else None,
        "initialisation": initialisation,
        "finetune_epochs": job.settings["finetune_epochs"],
        "exemplars": pruning.kept,
    }
    job = replace(job, train={**job.train, **job.settings["finetune"]})
    finetune_and_save(job, pruning.model, dense, splits, dev, provenance)
