"""Pruning: masks and the methods that produce them.

Masks are ``dict[str, torch.BoolTensor]`` keyed by parameter name (``"conv1.weight"``); ``True``
keeps a weight. Every method returns a new mask that is a subset of the one it was given.
"""

from prunesim.pruning.epruner import FilterPruning, epruner, exemplar_filters
from prunesim.pruning.layers import BlockRemoval, cka_block_removal, remove_block
from prunesim.pruning.magnitude import SCOPES, magnitude_step
from prunesim.pruning.masks import (
    Masks,
    apply_masks,
    check_masks_fit,
    full_masks,
    is_nested,
    load_masks,
    mask_gradients,
    prunable_parameters,
    save_masks,
    sparsity_from_counts,
    sparsity_report,
    structured_sparsity,
)
from prunesim.pruning.random import RANDOM_SCOPES, random_step

__all__ = [
    "RANDOM_SCOPES",
    "BlockRemoval",
    "FilterPruning",
    "SCOPES",
    "Masks",
    "apply_masks",
    "check_masks_fit",
    "cka_block_removal",
    "epruner",
    "exemplar_filters",
    "full_masks",
    "is_nested",
    "load_masks",
    "magnitude_step",
    "mask_gradients",
    "prunable_parameters",
    "random_step",
    "remove_block",
    "save_masks",
    "sparsity_from_counts",
    "sparsity_report",
    "structured_sparsity",
]
