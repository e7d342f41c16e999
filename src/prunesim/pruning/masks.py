"""Binary weight masks: which parameters are prunable, applying masks, nesting, sparsity."""

from __future__ import annotations

import os

import torch
from torch import nn

from prunesim.checkpoint import MASKS_FORMAT, load_tensor_file, save_tensor_file
from prunesim.io import InputFileError

Masks = dict[str, torch.Tensor]


def prunable_parameters(model: nn.Module, include_output: bool = False) -> dict[str, nn.Parameter]:
    """Conv2d and Linear weights, in module order; biases and BatchNorm are never pruned.

    ``include_output`` decides whether the classifier (``model.output_layer``) is prunable.
    """
    output = getattr(model, "output_layer", None)
    params = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        if name == output and not include_output:
            continue
        params[f"{name}.weight"] = module.weight
    return params


def full_masks(model: nn.Module, include_output: bool = False) -> Masks:
    """All-keep masks for the prunable parameters (the dense network)."""
    return {
        name: torch.ones_like(p, dtype=torch.bool)
        for name, p in prunable_parameters(model, include_output).items()
    }


def _parameters_for(model: nn.Module, masks: Masks) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    missing = sorted(set(masks) - set(params))
    if missing:
        raise KeyError(f"masks name parameters the model does not have: {missing}")
    return {name: params[name] for name in masks}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the masked weights in place."""
    for name, param in _parameters_for(model, masks).items():
        param.mul_(masks[name].to(param.device, param.dtype))


@torch.no_grad()
def mask_gradients(model: nn.Module, masks: Masks) -> None:
    """Zero the gradients of masked weights, so momentum buffers never pick them up."""
    for name, param in _parameters_for(model, masks).items():
        if param.grad is not None:
            param.grad.mul_(masks[name].to(param.grad.device, param.grad.dtype))


def is_nested(inner: Masks, outer: Masks) -> bool:
    """True if every weight kept by ``inner`` is kept by ``outer`` (same keys and shapes)."""
    if inner.keys() != outer.keys():
        return False
    return all(
        inner[k].shape == outer[k].shape and not bool((inner[k] & ~outer[k]).any()) for k in inner
    )


def sparsity_report(masks: Masks) -> dict:
    """Per-layer and total sparsity (fraction of prunable weights removed) with counts."""
    return sparsity_from_counts({name: (int(m.sum()), m.numel()) for name, m in masks.items()})


def sparsity_from_counts(counts: dict[str, tuple[int, int]]) -> dict:
    """The sparsity report of ``{parameter: (kept, size)}``."""
    layers = {
        name: {"kept": kept, "size": size, "sparsity": 1 - kept / size}
        for name, (kept, size) in counts.items()
    }
    kept_total = sum(kept for kept, _ in counts.values())
    size_total = sum(size for _, size in counts.values())
    return {
        "kept": kept_total,
        "size": size_total,
        "sparsity": 1 - kept_total / size_total if size_total else 0.0,
        "layers": layers,
    }


def save_masks(masks: Masks, path: str | os.PathLike[str]) -> None:
    save_tensor_file(path, MASKS_FORMAT, masks)


def check_masks_fit(masks: Masks, model: nn.Module, path: str | os.PathLike[str]) -> None:
    """An ``InputFileError`` naming ``path`` unless every mask is a weight of ``model`` of
    the same shape (a mask file of another model would prune the wrong weights)."""
    params = dict(model.named_parameters())
    misfit = [
        name for name, m in masks.items() if name not in params or params[name].shape != m.shape
    ]
    if misfit or not masks:
        raise InputFileError(
            f"mask file {str(path)!r} does not fit the model: "
            + (f"masks {misfit[:3]} are not its weights or differ in shape" if misfit else "empty")
        )


def load_masks(path: str | os.PathLike[str]) -> Masks:
    """The masks saved by :func:`save_masks`, checked against their digest; an
    ``InputFileError`` naming the file if it is missing, damaged, or holds non-boolean masks."""
    masks = load_tensor_file(path, MASKS_FORMAT, "mask file")["tensors"]
    not_bool = [name for name, mask in masks.items() if mask.dtype != torch.bool]
    if not_bool:
        raise InputFileError(f"mask file {str(path)!r}: masks {not_bool} are not boolean")
    return masks


def structured_sparsity(model: nn.Module, dense: nn.Module, include_output: bool = False):
    """Sparsity of a structurally pruned network against its dense parent, in the format of
    :func:`prunesim.pruning.sparsity_report`: per dense prunable parameter, the weights the
    smaller network still has (0 for a removed block's)."""
    present = prunable_parameters(model, include_output)
    return sparsity_from_counts(
        {
            name: (present[name].numel() if name in present else 0, parameter.numel())
            for name, parameter in prunable_parameters(dense, include_output).items()
        }
    )
