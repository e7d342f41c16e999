"""Job: one step of CKA layer pruning (method ``cka_layers``)."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from prunesim.data import Normalizer
from prunesim.jobs.rounds import RoundJob, finetune_and_save, start
from prunesim.pruning.layers import cka_block_removal

log = logging.getLogger(__name__)


def prune_round(job: RoundJob) -> None:
    """Remove the residual block, among the ``candidates`` rule's, whose removal keeps the
    penultimate representation most similar (linear CKA, on a seeded draw of training images),
    fine-tune (``finetune``: the training block's values the fine-tuning replaces)."""
    dev, splits = start(job)
    net = job.load_model("model", job.round - 1)
    dense = job.load_model("dense", 0, "dense")
    generator = torch.Generator().manual_seed(job.seed_of_round)
    count = job.settings["criterion_samples"]
    chosen = torch.randperm(len(splits.train_x), generator=generator)[:count]
    normalize = Normalizer(*splits.channel_stats(), device=dev)
    images = normalize(torch.as_tensor(splits.train_x[chosen.numpy()], device=dev))
    removal = cka_block_removal(net.to(dev), images, job.settings["candidates"])
    log.info(
        "cka_layers step %d removes %s (linear CKA %.4f)",
        job.round,
        removal.removed,
        removal.scores[removal.removed],
    )
    provenance = {
        **job.identity(),
        "removed": removal.removed,
        "removed_blocks": removal.model.arch["removed_blocks"],
        "criterion_cka": removal.scores,
        "criterion_samples": len(chosen),
        "candidates": job.settings["candidates"],
        "finetune_epochs": job.settings["finetune_epochs"],
    }
    job = replace(job, train={**job.train, **job.settings["finetune"]})
    finetune_and_save(job, removal.model, dense, splits, dev, provenance)
