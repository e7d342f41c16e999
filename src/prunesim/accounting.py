"""Parameter and FLOP counts of a model, dense and remaining after pruning.

FLOPs are counted as 2 × multiply-accumulates of the Conv2d and Linear layers for one input
image (the usual convention; BatchNorm, activations and pooling are left out). "Remaining"
counts only non-zero weights: what a sparse implementation would execute.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def count(model: nn.Module, input_shape: tuple[int, int, int]) -> dict:
    """``{"parameters": {"dense", "remaining"}, "flops": {"dense", "remaining"}}``."""
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
        "parameters": {
            "dense": sum(p.numel() for p in params),
            "remaining": sum(int(torch.count_nonzero(p)) for p in params),
        },
        "flops": {"dense": flops_dense, "remaining": flops_remaining},
    }
