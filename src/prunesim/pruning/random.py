"""Random pruning baselines that mirror an IMP round's sparsity: the lottery-ticket kind of
control (open_lth's one-shot experiments of Frankle et al. 2021: strategy ``random``, random
scores pruned globally, and ``--randomize_layerwise``, each layer's mask shuffled).

Both are iterative like IMP, so that the only difference from it is how weights are chosen:
each round removes surviving weights at random from the previous random round's mask until
the kept counts equal those of the IMP round it mirrors. ``global`` matches the total count
(positions anywhere); ``layerwise`` matches every layer's count (the IMP mask's per-layer
sparsity with random positions). New masks are subsets of the old ones.
"""

from __future__ import annotations

import torch

from prunesim.pruning.masks import Masks

RANDOM_SCOPES = ("global", "layerwise")


def _remove_random(alive: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (into the flattened mask) of ``count`` surviving weights chosen uniformly."""
    survivors = alive.nonzero().squeeze(1)
    if count > len(survivors):
        raise ValueError(f"cannot remove {count} weights: only {len(survivors)} survive")
    return survivors[torch.randperm(len(survivors), generator=generator)[:count]]


def random_step(masks: Masks, reference: Masks, scope: str, generator: torch.Generator) -> Masks:
    """Remove random surviving weights of ``masks`` until the kept counts equal those of
    ``reference`` (the IMP round mirrored): in total (``global``) or per layer."""
    if scope not in RANDOM_SCOPES:
        raise ValueError(f"random pruning scope must be one of {RANDOM_SCOPES}, got {scope!r}")
    if masks.keys() != reference.keys():
        raise ValueError("the reference mask prunes different parameters")
    new = {name: mask.clone().cpu() for name, mask in masks.items()}
    kept = {name: int(mask.sum()) for name, mask in masks.items()}
    target = {name: int(mask.sum()) for name, mask in reference.items()}
    if scope == "layerwise":
        for name in new:
            if target[name] > kept[name]:
                raise ValueError(
                    f"layer {name} keeps {kept[name]} weights, fewer than the reference's "
                    f"{target[name]}: masks can only shrink"
                )
            flat = new[name].view(-1)
            flat[_remove_random(flat, kept[name] - target[name], generator)] = False
        return new
    excess = sum(kept.values()) - sum(target.values())
    if excess < 0:
        raise ValueError("the mask keeps fewer weights than the reference: masks can only shrink")
    names = list(new)
    alive = torch.cat([new[n].view(-1) for n in names])
    chosen = _remove_random(alive, excess, generator)
    offsets = [0]
    for n in names:
        offsets.append(offsets[-1] + new[n].numel())
    for i, n in enumerate(names):
        local = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
        new[n].view(-1)[local] = False
    return new
