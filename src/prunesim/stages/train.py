"""Stages that produce models: the dense network and IMP rounds with learning-rate rewinding."""

from __future__ import annotations

import logging

import numpy as np
import torch

import prunesim
from prunesim.accounting import count
from prunesim.checkpoint import load_checkpoint, save_checkpoint
from prunesim.data import load_prepared
from prunesim.io import write_json
from prunesim.models import build_model
from prunesim.pruning import (
    full_masks,
    is_nested,
    load_masks,
    magnitude_step,
    random_step,
    save_masks,
    sparsity_report,
)
from prunesim.stages import setup
from prunesim.train import TrainSettings, train

log = logging.getLogger(__name__)


def _train_settings(train_cfg: dict) -> TrainSettings:
    cfg = dict(train_cfg)
    cfg["milestones"] = tuple(cfg.get("milestones", ()))
    return TrainSettings(**cfg)


def _model_metrics(model, masks, result, provenance: dict, splits) -> dict:
    """metrics.json: accuracy, sparsity, parameter and FLOP counts, the training history."""
    final = result.final
    input_shape = (splits.channels, splits.image_size, splits.image_size)
    return {
        **provenance,
        "test_accuracy": final.get("test_accuracy"),
        "train_accuracy": final.get("train_accuracy"),
        **count(model, input_shape),
        "sparsity": sparsity_report(masks),
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
) -> None:
    """Train the dense network of one seed."""
    dev = setup(threads, seed, device)
    splits, _ = load_prepared(data_file)
    net = build_model(model, splits.channels, splits.num_classes, splits.image_size)
    settings = _train_settings(train_cfg)
    result = train(net, splits, settings, seed=seed, device=dev)
    masks = full_masks(net, include_output)
    provenance = {"method": "dense", "round": 0, "seed": seed, "prunesim": prunesim.__version__}
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
    result = train(net, splits, _train_settings(train_cfg), round_seed, masks, dev)
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


def _start_round(data_file, seed, round_, in_model, in_mask, device, threads):
    """What every pruning round starts from: its seed, device, data, model and mask."""
    # A distinct, reproducible seed per round (batch order differs between rounds); a random
    # baseline's round r uses IMP round r's seed, so the two see the same batches.
    round_seed = seed * 1000 + round_
    dev = setup(threads, round_seed, device)
    splits, _ = load_prepared(data_file)
    net, _ = load_checkpoint(in_model)
    return round_seed, dev, splits, net, load_masks(in_mask)


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
) -> None:
    """One IMP round with learning-rate rewinding: prune ``rate`` of the surviving weights by
    magnitude, then retrain in full."""
    round_seed, dev, splits, net, old = _start_round(
        data_file, seed, round_, in_model, in_mask, device, threads
    )
    masks = magnitude_step(net, old, rate, scope)
    provenance = {"method": "imp", "round": round_, "seed": seed, "rate": rate, "scope": scope}
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
) -> None:
    """One round of a random baseline: remove random surviving weights until the kept counts
    equal those of the IMP round it mirrors (``reference_mask``), then retrain exactly as IMP
    does (same schedule, same batch order)."""
    if method not in RANDOM_METHODS:
        raise ValueError(f"unknown random method {method!r}; expected {sorted(RANDOM_METHODS)}")
    round_seed, dev, splits, net, old = _start_round(
        data_file, seed, round_, in_model, in_mask, device, threads
    )
    state = np.random.SeedSequence([seed, round_, sorted(RANDOM_METHODS).index(method)])
    generator = torch.Generator().manual_seed(int(state.generate_state(1)[0]))
    masks = random_step(old, load_masks(reference_mask), RANDOM_METHODS[method], generator)
    provenance = {"method": method, "round": round_, "seed": seed, "mirrors": str(reference_mask)}
    outputs = (out_model, out_mask, out_metrics)
    _retrain_and_save(net, old, masks, splits, train_cfg, round_seed, dev, provenance, outputs)
