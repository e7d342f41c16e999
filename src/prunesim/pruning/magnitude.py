"""One step of iterative magnitude pruning (IMP): remove the smallest surviving weights."""

from __future__ import annotations

import torch
from torch import nn

from prunesim.pruning.masks import Masks, _parameters_for

SCOPES = ("global", "layerwise")


def _prune_count(remaining: int, rate: float) -> int:
    return int(round(rate * remaining))


def _smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest scores; ties go to the lower index, so results are exact
    and reproducible."""
    if k <= 0:
        return torch.empty(0, dtype=torch.long)
    return torch.sort(scores, stable=True).indices[:k]


@torch.no_grad()
def magnitude_step(model: nn.Module, masks: Masks, rate: float, scope: str = "global") -> Masks:
    """Return a new mask that removes ``rate`` of the still-unpruned weights by magnitude.

    ``global`` ranks all prunable weights together; ``layerwise`` removes ``rate`` of each
    layer's survivors. The result is a subset of ``masks`` and removes exactly
    ``round(rate * remaining)`` weights (per layer for ``layerwise``).
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"pruning rate must be in (0, 1), got {rate}")
    if scope not in SCOPES:
        raise ValueError(f"pruning scope must be one of {SCOPES}, got {scope!r}")
    params = _parameters_for(model, masks)
    names = list(masks)
    # Survivors' magnitudes; pruned weights are excluded (not merely scored zero).
    alive = {n: masks[n].flatten().cpu() for n in names}
    scores = {n: params[n].detach().abs().flatten().cpu().double()[alive[n]] for n in names}
    new = {n: masks[n].clone().cpu() for n in names}

    def remove(name: str, local: torch.Tensor) -> None:
        flat = new[name].view(-1)
        flat[alive[name].nonzero().squeeze(1)[local]] = False

    if scope == "layerwise":
        for n in names:
            remove(n, _smallest(scores[n], _prune_count(len(scores[n]), rate)))
        return new
    all_scores = torch.cat([scores[n] for n in names])
    chosen = _smallest(all_scores, _prune_count(len(all_scores), rate))
    offsets = torch.cumsum(torch.tensor([0] + [len(scores[n]) for n in names]), 0)
    for i, n in enumerate(names):
        in_layer = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
        remove(n, in_layer)
    return new
