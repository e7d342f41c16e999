"""Magnitude pruning: one step of iterative magnitude pruning (IMP), or one shot to the
sparsity that IMP reaches after a number of steps; the smallest surviving weights go."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from prunesim.pruning.masks import Masks, _parameters_for

SCOPES = ("global", "layerwise")


def _prune_count(remaining: int, rate: float) -> int:
    return int(round(rate * remaining))


def kept_after(count: int, rate: float, steps: int) -> int:
    """How many of ``count`` weights survive ``steps`` IMP steps at ``rate`` (each step's
    count rounded as :func:`magnitude_step` rounds it)."""
    for _ in range(steps):
        count -= _prune_count(count, rate)
    return count


def _check(rate: float, scope: str) -> None:
    if not 0.0 < rate < 1.0:
        raise ValueError(f"pruning rate must be in (0, 1), got {rate}")
    if scope not in SCOPES:
        raise ValueError(f"pruning scope must be one of {SCOPES}, got {scope!r}")


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
    _check(rate, scope)
    return _remove_smallest(model, masks, lambda remaining: _prune_count(remaining, rate), scope)


@torch.no_grad()
def magnitude_oneshot(
    model: nn.Module, masks: Masks, rate: float, steps: int, scope: str = "global"
) -> Masks:
    """One-shot pruning to IMP's sparsity after ``steps`` steps at ``rate``: the kept count
    (in total for ``global``, per layer for ``layerwise``) equals that of ``steps`` calls of
    :func:`magnitude_step`, the weights kept are the largest of ``model`` now."""
    _check(rate, scope)
    if steps < 1:
        raise ValueError(f"one-shot pruning needs at least one step's sparsity, got {steps}")
    return _remove_smallest(
        model, masks, lambda remaining: remaining - kept_after(remaining, rate, steps), scope
    )


def _remove_smallest(
    model: nn.Module, masks: Masks, how_many: Callable[[int], int], scope: str
) -> Masks:
    """A subset of ``masks`` without the ``how_many(survivors)`` smallest surviving weights,
    ranked together (``global``) or in each layer (``layerwise``)."""
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
            remove(n, _smallest(scores[n], how_many(len(scores[n]))))
        return new
    all_scores = torch.cat([scores[n] for n in names])
    chosen = _smallest(all_scores, how_many(len(all_scores)))
    offsets = torch.cumsum(torch.tensor([0] + [len(scores[n]) for n in names]), 0)
    for i, n in enumerate(names):
        in_layer = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
        remove(n, in_layer)
    return new
