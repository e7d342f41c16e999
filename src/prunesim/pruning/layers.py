"""CKA layer pruning (Pons et al., ICPR 2024): remove whole residual blocks.

Among the candidate blocks (:func:`prunesim.pruning.structure.candidate_blocks`: by default the
authors' rule, never a stage's first block nor one of a stage left with fewer than two; or any
block with an identity shortcut; never a downsampling block), remove the one whose removal
keeps the penultimate representation most similar, by linear CKA, to the current network's. The smaller network is built from its architecture (``removed_blocks``) and
its remaining layers keep their names, which is how the similarity analysis matches them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunesim.models import rebuild
from prunesim.pruning.structure import CandidateRule, candidate_blocks, removable_blocks


def remove_block(model: nn.Module, block: str) -> nn.Module:
    """A copy of ``model`` without residual block ``block``; every other weight is kept."""
    if block not in removable_blocks(model):
        raise ValueError(
            f"{block!r} is not a removable block; removable: {removable_blocks(model)}"
        )
    arch = dict(model.arch)
    arch["removed_blocks"] = sorted({*arch.get("removed_blocks", []), block})
    smaller = rebuild(arch)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{block}.")}
    smaller.load_state_dict(state)
    return smaller


@torch.no_grad()
def penultimate(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """The input of the classifier (``model.output_layer``) for normalised ``images``, in
    eval mode: the representation the CKA criterion compares."""
    classifier = dict(model.named_modules())[model.output_layer]
    captured: list[torch.Tensor] = []
    handle = classifier.register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach().cpu())
    )
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).to(torch.float64).numpy()


@dataclass
class BlockRemoval:
    """One CKA layer-pruning step: the network without ``removed``, and every candidate's
    linear CKA between the penultimate representations with and without it."""

    model: nn.Module
    removed: str
    scores: dict[str, float]


def cka_block_removal(
    model: nn.Module, images: torch.Tensor, rule: CandidateRule = "authors"
) -> BlockRemoval:
    """Remove the block, among the candidates of ``rule``, whose removal keeps the penultimate
    representation most similar (linear CKA) to ``model``'s on ``images``; ties go to the
    earlier block."""
    from prunesim.metrics import similarity

    candidates = candidate_blocks(model, rule)
    if not candidates:
        raise ValueError(
            f"no removable residual block left under the {rule!r} candidate rule "
            "(downsampling blocks are never removed)"
        )
    device = next(model.parameters()).device
    images = images.to(device)
    reference = penultimate(model, images)
    scores: dict[str, float] = {}
    best: BlockRemoval | None = None
    for block in candidates:  # forward order, so a tie keeps the earlier block
        smaller = remove_block(model, block).to(device)
        scores[block] = float(similarity(reference, penultimate(smaller, images), "cka_linear"))
        if best is None or scores[block] > scores[best.removed]:
            best = BlockRemoval(smaller, block, scores)
    return best
