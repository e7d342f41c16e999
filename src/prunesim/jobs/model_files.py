"""The three files of every trained model (the dense network and each pruning round):
``model.pt``, ``mask.pt`` and ``summary.json``."""

from __future__ import annotations

from dataclasses import dataclass

import prunesim
from prunesim.accounting import count
from prunesim.checkpoint import save_checkpoint
from prunesim.environment import describe
from prunesim.io import write_json
from prunesim.pruning.masks import save_masks, sparsity_report, structured_sparsity
from prunesim.pruning.structure import filter_groups


@dataclass(frozen=True)
class ModelFiles:
    """Where one model's files go."""

    model: str
    mask: str
    summary: str


def model_summary(net, masks, result, provenance: dict, splits, dense=None) -> dict:
    """summary.json: accuracy, sparsity, parameter and FLOP counts, the training history.

    For a structurally pruned (smaller) network, ``dense`` is the original dense network:
    counts and sparsity are measured against it, and each prunable layer's width is listed.
    """
    final = result.final
    input_shape = (splits.channels, splits.image_size, splits.image_size)
    structure = {}
    if dense is None:
        sparsity = sparsity_report(masks)
    else:
        include_output = any(name.startswith(f"{net.output_layer}.") for name in masks)
        sparsity = structured_sparsity(net, dense, include_output)
        modules, dense_modules = dict(net.named_modules()), dict(dense.named_modules())
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
        **count(net, input_shape, dense),
        "sparsity": sparsity,
        **structure,
        "history": result.history,
    }


def write_model_files(
    net, masks, result, provenance: dict, splits, files: ModelFiles, dense=None
) -> None:
    """Save the network, its mask and its summary; the provenance gains the code version, the
    summary also where and with what the network was trained (:mod:`prunesim.environment`)."""
    provenance = {**provenance, "prunesim": prunesim.__version__}
    trained_on = str(next(net.parameters()).device)
    save_checkpoint(net.cpu(), files.model, provenance)
    save_masks(masks, files.mask)
    summary = model_summary(net, masks, result, provenance, splits, dense)
    write_json(files.summary, {**summary, "environment": describe(trained_on)})
