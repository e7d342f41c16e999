"""Parameter and FLOP counts of a model, dense and remaining after pruning.

FLOPs are counted as 2 × multiply-accumulates of the Conv2d and Linear layers for one input
image (the usual convention; BatchNorm, activations and pooling are left out). "Remaining"
counts only non-zero weights: what a sparse implementation would execute. "Dense" is the
unpruned network: the model itself for masked (unstructured) pruning, or the parent network a
structurally pruned (smaller) model came from.
"""

from __future__ import annotations

import torch
from torch import nn


def count(
    model: nn.Module, input_shape: tuple[int, int, int], dense: nn.Module | None = None
) -> dict:
    """``{"parameters": {"dense", "remaining"}, "flops": {"dense", "remaining"}}``; the dense
    figures come from ``dense`` when given (a structurally pruned model's parent)."""
    remaining = _counts(model, input_shape)
    full = _counts(dense, input_shape) if dense is not None else remaining
    return {
        "parameters": {"dense": full["dense_parameters"], "remaining": remaining["parameters"]},
        "flops": {"dense": full["dense_flops"], "remaining": remaining["flops"]},
    }


@torch.no_grad()
def _counts(model: nn.Module, input_shape: tuple[int, int, int]) -> dict:
    """Parameters and FLOPs of ``model``: all of them, and those of its non-zero weights."""
    positions: dict[str, int] = {}

    def hook_for(name: str):
        def hook(module, inputs, output):
            positions[name] = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1

        return hook

    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    handles = [m.register_forward_hook(hook_for(n)) for n, m in layers.items()]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    flops_dense = flops_remaining = 0
    for name, module in layers.items():
        weight = module.weight
        flops_dense += 2 * weight.numel() * positions[name]
        flops_remaining += 2 * int(torch.count_nonzero(weight)) * positions[name]
    params = list(model.parameters())
    return {
        "dense_parameters": sum(p.numel() for p in params),
        "parameters": sum(int(torch.count_nonzero(p)) for p in params),
        "dense_flops": flops_dense,
        "flops": flops_remaining,
    }
