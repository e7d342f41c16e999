"""Job: one round of a pruning method (rule prune), and what every method's round shares.

:func:`prune` hands a :class:`RoundJob` to the ``prune_round`` of the method's job module
(named in :mod:`prunesim.methods` and passed in by the rule, so that a round does not import
the registry and adding a method reruns no other method's rounds). The helpers below are the
two ways a round ends: masked retraining (learning-rate rewinding, weight rewinding or
fine-tuning), or fine-tuning a structurally smaller network.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from prunesim.checkpoint import load_checkpoint
from prunesim.data import load_prepared
from prunesim.jobs import model_label, setup
from prunesim.jobs.model_files import ModelFiles, write_model_files
from prunesim.layout import model_identity
from prunesim.pruning.masks import (
    check_masks_fit,
    full_masks,
    is_nested,
    load_masks,
    sparsity_report,
)
from prunesim.training import finetuning, train, train_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundJob:
    """Everything one round of one method needs: which model it makes, the files it starts
    from (``inputs``, keyed as in :data:`prunesim.methods.STARTS_FROM`), the experiment's
    training block and the method's settings for this round."""

    experiment: str
    seed: int
    method: str
    round: int
    data: str
    inputs: dict[str, str]
    outputs: ModelFiles
    train: dict
    settings: dict
    arch: str | None = None  # the architecture's name, checked against the checkpoints read
    device: str = "auto"
    threads: int = 1

    @property
    def seed_of_round(self) -> int:
        """A distinct, reproducible seed per round (batch order differs between rounds); a
        random baseline's round r uses IMP round r's seed, so the two see the same batches."""
        return self.seed * 1000 + self.round

    def identity(self, round_: int | None = None, method: str | None = None) -> dict:
        """The provenance of this round's model, or of another round of the same run."""
        round_ = self.round if round_ is None else round_
        return model_identity(self.experiment, self.seed, method or self.method, round_)

    def load_model(self, role: str, round_: int, method: str | None = None):
        """The checkpoint of input ``role``, refused unless it is the expected model (seed,
        method, round; the experiment and architecture where given)."""
        net, _ = load_checkpoint(self.inputs[role], self.identity(round_, method), self.arch)
        return net

    def load_rewind_point(self, net, epoch: int) -> None:
        """Load into ``net`` the dense run's state after ``epoch`` (input ``rewind``),
        refused unless it is this seed's dense run at that epoch."""
        expect = {**self.identity(0), "epoch": epoch}
        rewound, _ = load_checkpoint(self.inputs["rewind"], expect, self.arch)
        net.load_state_dict(rewound.state_dict())

    def load_mask(self, role: str, net):
        masks = load_masks(self.inputs[role])
        check_masks_fit(masks, net, self.inputs[role])
        return masks


def prune(job: RoundJob, job_module: str) -> None:
    """Make one round of ``job.method`` with its job module (a ``prunesim.jobs`` module)."""
    if not job_module.startswith("prunesim.jobs."):
        raise ValueError(f"{job_module!r} is not a prunesim.jobs module")
    importlib.import_module(job_module).prune_round(job)


def start(job: RoundJob):
    """Every round's device and data, seeded with the round's seed."""
    dev = setup(job.threads, job.seed_of_round, job.device)
    splits, _ = load_prepared(job.data)
    return dev, splits


def start_masked(job: RoundJob):
    """What a masked round starts from: its device, data, and the previous round's model and
    mask (each checked to be that model's)."""
    dev, splits = start(job)
    net = job.load_model("model", job.round - 1)
    masks = job.load_mask("mask", net)
    return dev, splits, net, masks


def label(provenance: dict) -> str:
    """The model a provenance record names, for messages."""
    experiment = provenance.get("experiment", "")
    return model_label(experiment, provenance["seed"], provenance["method"], provenance["round"])


def retrain_and_save(
    job: RoundJob,
    net,
    old,
    masks,
    splits,
    dev,
    provenance: dict,
    retraining: str = "lr_rewind",
) -> None:
    """Retrain a masked network for the round's budget t (``retrain_epochs``) with a fresh
    optimizer, masked weights held at zero, then write the round's files. ``retraining``
    (Renda et al. 2020): ``lr_rewind`` trains the current weights with the schedule's last t
    epochs; ``weight_rewind`` first resets the weights to the dense run's state t epochs
    before its end (input ``rewind``), then does the same; ``finetune`` trains the current
    weights t epochs at the schedule's final learning rate."""
    assert is_nested(masks, old), "a pruning step must only remove weights"
    settings = train_settings(job.train)
    budget = job.settings["retrain_epochs"]
    where = label(provenance)
    if retraining == "finetune":
        result = train(
            net, splits, finetuning(settings, budget), job.seed_of_round, masks, dev, where
        )
    elif retraining in ("lr_rewind", "weight_rewind"):
        rewind_to = settings.epochs - budget
        if retraining == "weight_rewind":
            job.load_rewind_point(net, rewind_to)
        result = train(
            net, splits, settings, job.seed_of_round, masks, dev, where, epochs_done=rewind_to
        )
    else:
        raise ValueError(f"unknown retraining {retraining!r}")
    log.info(
        "%s round %d: sparsity %.4f",
        provenance["method"],
        provenance["round"],
        sparsity_report(masks)["sparsity"],
    )
    write_model_files(net, masks, result, provenance, splits, job.outputs)


def finetune_settings(train_cfg: dict, epochs: int) -> dict:
    """The experiment's training block shortened to ``epochs``: the LR schedule runs in full
    over the fine-tuning, multistep milestones scaled to it."""
    cfg = dict(train_cfg)
    scale = epochs / cfg["epochs"]
    cfg["milestones"] = sorted(
        {m for m in (round(m * scale) for m in cfg.get("milestones", [])) if 1 <= m < epochs}
    )
    cfg["epochs"] = epochs
    return cfg


def finetune_and_save(job: RoundJob, net, dense, splits, dev, provenance: dict) -> None:
    """Fine-tune a structurally pruned network and write its files. Its mask keeps every
    weight: the pruned structure is gone from the network itself."""
    masks = full_masks(net, job.settings["include_output"])
    cfg = finetune_settings(job.train, job.settings["finetune_epochs"])
    result = train(
        net, splits, train_settings(cfg), job.seed_of_round, device=dev, where=label(provenance)
    )
    write_model_files(net, masks, result, provenance, splits, job.outputs, dense.cpu())
