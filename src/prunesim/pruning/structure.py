"""What structured pruning may remove from a registered model: filter groups (a convolution's
filters and what reads them) and removable residual blocks, and the architecture that results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from prunesim.models import VGG, BasicBlock, LeNet5, ResNet, architecture


@dataclass(frozen=True)
class FilterGroup:
    """A convolution whose filters (output channels) may be removed, and what follows them.

    ``bn`` normalises its output channels; ``consumer`` (a Conv2d or Linear) reads them, with
    ``positions`` consecutive input features per channel (1 for a convolution; H x W for a
    linear layer after flattening).
    """

    conv: str
    bn: str | None
    consumer: str
    positions: int


def _consumer_positions(model: nn.Module, conv: str, consumer: str) -> int:
    modules = dict(model.named_modules())
    channels = modules[conv].out_channels
    target = modules[consumer]
    features = target.in_channels if isinstance(target, nn.Conv2d) else target.in_features
    return features // channels


def filter_groups(model: nn.Module) -> list[FilterGroup]:
    """The convolutions whose filters structured pruning may remove, in forward order.

    LeNet-5 and VGG: every convolution (the next convolution or the first linear layer reads
    it). ResNet: each block's ``conv1`` only; the residual sum ties every ``conv2`` and the
    stem to the width of their stage.
    """
    pairs: list[tuple[str, str | None, str]] = []
    if isinstance(model, LeNet5):
        pairs = [("conv1", None, "conv2"), ("conv2", None, "fc1")]
    elif isinstance(model, VGG):
        convs = [name for name, m in model.named_children() if isinstance(m, nn.Conv2d)]
        first_linear = next(n for n, m in model.named_children() if isinstance(m, nn.Linear))
        consumers = [*convs[1:], first_linear]
        pairs = [
            (conv, conv.replace("conv", "bn", 1), consumer)
            for conv, consumer in zip(convs, consumers, strict=True)
        ]
    elif isinstance(model, ResNet):
        blocks = [name for name, m in model.named_modules() if isinstance(m, BasicBlock)]
        pairs = [(f"{b}.conv1", f"{b}.bn1", f"{b}.conv2") for b in blocks]
    else:
        raise TypeError(f"{type(model).__name__} has no filter groups for structured pruning")
    return [
        FilterGroup(conv, bn, consumer, _consumer_positions(model, conv, consumer))
        for conv, bn, consumer in pairs
    ]


def with_widths(model: nn.Module, widths: dict[str, int]) -> dict[str, Any]:
    """``model.arch`` with the filter counts of the convolutions in ``widths`` changed
    (keys: the ``conv`` names of :func:`filter_groups`)."""
    arch = architecture(model)
    groups = filter_groups(model)
    unknown = set(widths) - {g.conv for g in groups}
    if unknown:
        raise ValueError(f"not prunable filter groups of {arch['name']}: {sorted(unknown)}")
    modules = dict(model.named_modules())
    if isinstance(model, ResNet):
        # inner_widths lists every block of the full architecture, removed ones included.
        inner = list(model.inner_widths)
        for conv, width in widths.items():
            inner[model.block_names.index(conv.removesuffix(".conv1"))] = int(width)
        arch["inner_widths"] = inner
    else:
        arch["widths"] = [int(widths.get(g.conv, modules[g.conv].out_channels)) for g in groups]
    return arch


def removable_blocks(model: nn.Module) -> list[str]:
    """Residual blocks whose removal leaves a well-formed network (identity shortcut), in
    forward order; downsampling blocks never qualify."""
    if not isinstance(model, ResNet):
        raise TypeError(f"{type(model).__name__} has no residual blocks to remove")
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, BasicBlock) and module.removable
    ]


# How many blocks the CKA authors' rule leaves in every stage: their ``new_blocks``
# (rebuild_layers.py of github.com/IanPons/CKA-Layer-Pruning) removes a block only while
# ``num_blocks[stage] - 1 > 1``.
AUTHORS_MIN_STAGE_BLOCKS = 2

CandidateRule = Literal["authors", "any_non_downsampling"]
CANDIDATE_RULES: tuple[str, ...] = ("authors", "any_non_downsampling")


def _stages(model: ResNet) -> list[list[str]]:
    """The remaining blocks of every stage, in forward order."""
    return [
        [f"layer{s}.{name}" for name, _ in getattr(model, f"layer{s}").named_children()]
        for s in range(1, model.num_stages + 1)
    ]


def candidate_blocks(model: nn.Module, rule: CandidateRule) -> list[str]:
    """The residual blocks CKA layer pruning may remove next, in forward order.

    ``any_non_downsampling``: every removable block (:func:`removable_blocks`). ``authors``:
    as Pons et al.'s code, never the first remaining block of a stage (their
    ``add_to_pruneResNet`` skips a stage's first residual sum), and none of a stage that would
    keep fewer than :data:`AUTHORS_MIN_STAGE_BLOCKS` blocks.
    """
    removable = removable_blocks(model)
    if rule == "any_non_downsampling":
        return removable
    if rule != "authors":
        raise ValueError(f"unknown candidate rule {rule!r}; expected one of {CANDIDATE_RULES}")
    allowed = {
        block
        for stage in _stages(model)
        if len(stage) > AUTHORS_MIN_STAGE_BLOCKS
        for block in stage[1:]
    }
    return [block for block in removable if block in allowed]


def removable_count(model: nn.Module, rule: CandidateRule) -> int:
    """How many blocks CKA layer pruning can remove from ``model``, one at a time, under
    ``rule``."""
    if rule == "any_non_downsampling":
        return len(removable_blocks(model))
    candidate_blocks(model, rule)  # the rule's checks
    return sum(max(0, len(stage) - AUTHORS_MIN_STAGE_BLOCKS) for stage in _stages(model))
