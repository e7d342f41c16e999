"""Stages that produce models: the dense network, IMP rounds with learning-rate rewinding,
random baselines, and structured pruning (EPruner filters, CKA-guided block removal)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

import prunesim
from prunesim.accounting import count
from prunesim.checkpoint import load_checkpoint, save_checkpoint
from prunesim.data import load_prepared
from prunesim.io import write_json
from prunesim.models import build_model, filter_groups
from prunesim.pruning import (
    check_masks_fit,
    cka_block_removal,
    epruner,
    full_masks,
    is_nested,
    load_masks,
    magnitude_step,
    random_step,
    save_masks,
    sparsity_report,
    structured_sparsity,
)
from prunesim.stages import model_identity, model_label, setup
from prunesim.train import Normalizer, TrainSettings, train

log = logging.getLogger(__name__)


def _train_settings(train_cfg: dict) -> TrainSettings:
    cfg = dict(train_cfg)
    cfg["milestones"] = tuple(cfg.get("milestones", ()))
    return TrainSettings(**cfg)


def _model_metrics(model, masks, result, provenance: dict, splits, dense=None) -> dict:
    """metrics.json: accuracy, sparsity, parameter and FLOP counts, the training history.

    For a structurally pruned (smaller) model, ``dense`` is the original dense network:
    counts and sparsity are measured against it, and each prunable layer's width is listed.
    """
    final = result.final
    input_shape = (splits.channels, splits.image_size, splits.image_size)
    structure = {}
    if dense is None:
        sparsity = sparsity_report(masks)
    else:
        include_output = any(name.startswith(f"{model.output_layer}.") for name in masks)
        sparsity = structured_sparsity(model, dense, include_output)
        modules, dense_modules = dict(model.named_modules()), dict(dense.named_modules())
        structure["widths"] = {
            group.conv: {
                "kept": modules[group.conv].out_channels if group.conv in modules else 0,
                "size": dense_modules[group.conv].out_channels,
            }
            for group in filter_groups(dense)
        }
    return {
        **provenance,
        "test_accuracy": final.get("test_accuracy"),
        "train_accuracy": final.get("train_accuracy"),
        **count(model, input_shape, dense),
        "sparsity": sparsity,
        **structure,
        "history": result.history,
    }


def train_dense(
    data_file: str,
    model: str,
    train_cfg: dict,
    seed: int,
    out_model: str,
    out_mask: str,
    out_metrics: str,
    include_output: bool = False,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
) -> None:
    """Train the dense network of one seed."""
    dev = setup(threads, seed, device)
    splits, _ = load_prepared(data_file)
    net = build_model(model, splits.channels, splits.num_classes, splits.image_size)
    settings = _train_settings(train_cfg)
    where = model_label(experiment, seed)
    result = train(net, splits, settings, seed=seed, device=dev, where=where)
    masks = full_masks(net, include_output)
    provenance = {
        **model_identity(experiment, seed, "dense", 0),
        "prunesim": prunesim.__version__,
    }
    save_checkpoint(net.cpu(), out_model, provenance)
    save_masks(masks, out_mask)
    write_json(out_metrics, _model_metrics(net, masks, result, provenance, splits))


def _retrain_and_save(
    net, old, masks, splits, train_cfg: dict, round_seed: int, dev, provenance: dict, outputs
) -> None:
    """Learning-rate rewinding: retrain from the current weights with a fresh optimizer and
    the full original schedule, masked weights held at zero; then write the round's files."""
    assert is_nested(masks, old), "a pruning step must only remove weights"
    provenance = {**provenance, "prunesim": prunesim.__version__}
    where = _label(provenance)
    result = train(net, splits, _train_settings(train_cfg), round_seed, masks, dev, where)
    out_model, out_mask, out_metrics = outputs
    log.info(
        "%s round %d: sparsity %.4f",
        provenance["method"],
        provenance["round"],
        sparsity_report(masks)["sparsity"],
    )
    save_checkpoint(net.cpu(), out_model, provenance)
    save_masks(masks, out_mask)
    write_json(out_metrics, _model_metrics(net, masks, result, provenance, splits))


def _label(provenance: dict) -> str:
    """The model a provenance record names, for messages."""
    experiment = provenance.get("experiment", "")
    return model_label(experiment, provenance["seed"], provenance["method"], provenance["round"])


def _load_model(path, experiment, seed, method, round_, model=None):
    """The checkpoint at ``path``, refused unless it is the expected model (seed, method,
    round; the experiment and architecture where given)."""
    net, _ = load_checkpoint(path, model_identity(experiment, seed, method, round_), model)
    return net


def _round_setup(data_file, seed, round_, device, threads):
    """Every pruning round's seed, device and data."""
    # A distinct, reproducible seed per round (batch order differs between rounds); a random
    # baseline's round r uses IMP round r's seed, so the two see the same batches.
    round_seed = seed * 1000 + round_
    dev = setup(threads, round_seed, device)
    splits, _ = load_prepared(data_file)
    return round_seed, dev, splits


def _start_round(data_file, job, in_model, in_mask, device, threads):
    """What every masked pruning round starts from: its seed, device, data, and the previous
    round's model and mask (each checked to be that model's). ``job`` is (experiment, seed,
    method, round, architecture name or None)."""
    experiment, seed, method, round_, model = job
    round_seed, dev, splits = _round_setup(data_file, seed, round_, device, threads)
    net = _load_model(in_model, experiment, seed, method, round_ - 1, model)
    masks = load_masks(in_mask)
    check_masks_fit(masks, net, in_mask)
    return round_seed, dev, splits, net, masks


def prune_imp_round(
    data_file: str,
    train_cfg: dict,
    seed: int,
    round_: int,
    rate: float,
    scope: str,
    in_model: str,
    in_mask: str,
    out_model: str,
    out_mask: str,
    out_metrics: str,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
    model: str | None = None,
) -> None:
    """One IMP round with learning-rate rewinding: prune ``rate`` of the surviving weights by
    magnitude, then retrain in full. ``experiment`` and ``model`` (the architecture's name),
    where given, are checked against the previous round's checkpoint."""
    round_seed, dev, splits, net, old = _start_round(
        data_file, (experiment, seed, "imp", round_, model), in_model, in_mask, device, threads
    )
    masks = magnitude_step(net, old, rate, scope)
    provenance = {**model_identity(experiment, seed, "imp", round_), "rate": rate, "scope": scope}
    outputs = (out_model, out_mask, out_metrics)
    _retrain_and_save(net, old, masks, splits, train_cfg, round_seed, dev, provenance, outputs)


RANDOM_METHODS = {"random_global": "global", "random_layerwise": "layerwise"}


def prune_random_round(
    data_file: str,
    train_cfg: dict,
    seed: int,
    round_: int,
    method: str,
    in_model: str,
    in_mask: str,
    reference_mask: str,
    out_model: str,
    out_mask: str,
    out_metrics: str,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
    model: str | None = None,
) -> None:
    """One round of a random baseline: remove random surviving weights until the kept counts
    equal those of the IMP round it mirrors (``reference_mask``), then retrain exactly as IMP
    does (same schedule, same batch order)."""
    if method not in RANDOM_METHODS:
        raise ValueError(f"unknown random method {method!r}; expected {sorted(RANDOM_METHODS)}")
    round_seed, dev, splits, net, old = _start_round(
        data_file, (experiment, seed, method, round_, model), in_model, in_mask, device, threads
    )
    state = np.random.SeedSequence([seed, round_, sorted(RANDOM_METHODS).index(method)])
    generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
    reference = load_masks(reference_mask)
    check_masks_fit(reference, net, reference_mask)
    masks = random_step(old, reference, RANDOM_METHODS[method], generator)
    provenance = {
        **model_identity(experiment, seed, method, round_),
        "mirrors": str(reference_mask),
    }
    outputs = (out_model, out_mask, out_metrics)
    _retrain_and_save(net, old, masks, splits, train_cfg, round_seed, dev, provenance, outputs)


def _finetune_settings(train_cfg: dict, epochs: int) -> dict:
    """The experiment's training block shortened to ``epochs``: the LR schedule runs in full
    over the fine-tuning, multistep milestones scaled to it."""
    cfg = dict(train_cfg)
    scale = epochs / cfg["epochs"]
    cfg["milestones"] = sorted(
        {m for m in (round(m * scale) for m in cfg.get("milestones", [])) if 1 <= m < epochs}
    )
    cfg["epochs"] = epochs
    return cfg


@dataclass(frozen=True)
class StructuredOutputs:
    """The files of one structurally pruned model."""

    model: str
    mask: str
    metrics: str


def _finetune_and_save(
    net, dense, splits, finetune_cfg, round_seed, dev, provenance, outputs, include_output
):
    """Fine-tune a structurally pruned network and write its files. Its mask keeps every
    weight: the pruned structure is gone from the network itself."""
    masks = full_masks(net, include_output)
    where = _label(provenance)
    result = train(net, splits, _train_settings(finetune_cfg), round_seed, device=dev, where=where)
    provenance = {**provenance, "prunesim": prunesim.__version__}
    save_checkpoint(net.cpu(), outputs.model, provenance)
    save_masks(masks, outputs.mask)
    write_json(outputs.metrics, _model_metrics(net, masks, result, provenance, splits, dense.cpu()))


def prune_epruner(
    data_file: str,
    train_cfg: dict,
    seed: int,
    round_: int,
    beta: float,
    finetune_epochs: int,
    dense_model: str,
    outputs: StructuredOutputs,
    include_output: bool = False,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
    model: str | None = None,
) -> None:
    """EPruner at ``beta``: keep each layer's exemplar filters of the dense network, start
    from their weights, fine-tune. Each β is its own round, pruned from the dense network."""
    round_seed, dev, splits = _round_setup(data_file, seed, round_, device, threads)
    dense = _load_model(dense_model, experiment, seed, "dense", 0, model)
    pruning = epruner(dense, beta, seed)
    log.info("epruner beta %g keeps %s filters", beta, {k: len(v) for k, v in pruning.kept.items()})
    provenance = {
        **model_identity(experiment, seed, "epruner", round_),
        "beta": beta,
        "finetune_epochs": finetune_epochs,
        "exemplars": pruning.kept,
    }
    finetune = _finetune_settings(train_cfg, finetune_epochs)
    _finetune_and_save(
        pruning.model, dense, splits, finetune, round_seed, dev, provenance, outputs, include_output
    )


def prune_cka_layers_step(
    data_file: str,
    train_cfg: dict,
    seed: int,
    round_: int,
    finetune_epochs: int,
    criterion_samples: int,
    in_model: str,
    dense_model: str,
    outputs: StructuredOutputs,
    include_output: bool = False,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
    model: str | None = None,
) -> None:
    """One step of CKA layer pruning: remove the residual block whose removal keeps the
    penultimate representation most similar (linear CKA, on training images), fine-tune."""
    round_seed, dev, splits = _round_setup(data_file, seed, round_, device, threads)
    net = _load_model(in_model, experiment, seed, "cka_layers", round_ - 1, model)
    dense = _load_model(dense_model, experiment, seed, "dense", 0, model)
    generator = torch.Generator().manual_seed(round_seed)
    chosen = torch.randperm(len(splits.train_x), generator=generator)[:criterion_samples]
    normalize = Normalizer(*splits.channel_stats(), device=dev)
    images = normalize(torch.as_tensor(splits.train_x[chosen.numpy()], device=dev))
    removal = cka_block_removal(net.to(dev), images)
    log.info(
        "cka_layers step %d removes %s (linear CKA %.4f)",
        round_,
        removal.removed,
        removal.scores[removal.removed],
    )
    provenance = {
        **model_identity(experiment, seed, "cka_layers", round_),
        "removed": removal.removed,
        "removed_blocks": removal.model.arch["removed_blocks"],
        "criterion_cka": removal.scores,
        "criterion_samples": len(chosen),
        "finetune_epochs": finetune_epochs,
    }
    finetune = _finetune_settings(train_cfg, finetune_epochs)
    _finetune_and_save(
        removal.model, dense, splits, finetune, round_seed, dev, provenance, outputs, include_output
    )
