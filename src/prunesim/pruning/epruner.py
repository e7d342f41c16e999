"""EPruner (Lin et al., "Network Pruning Using Adaptive Exemplar Filters", TNNLS 2021).

Each prunable convolution's filters are clustered by affinity propagation on the negative
squared Euclidean distances between flattened filters, with each filter's preference set to
``beta`` x the median of its similarities (as in the authors' code); the exemplars are kept, and
their weights (with their BatchNorm entries and the matching input slices of the next layer)
initialise a smaller network built from its architecture, so it saves and reloads like any
other. A larger ``beta`` makes the preferences more negative, so fewer exemplars survive.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import AffinityPropagation
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from prunesim.models import rebuild
from prunesim.pruning.structure import FilterGroup, filter_groups, with_widths

log = logging.getLogger(__name__)

# Damping values tried in turn when affinity propagation does not converge (oscillation is
# the usual cause, and more damping is the standard cure).
_DAMPINGS = (0.5, 0.7, 0.9)


def exemplar_filters(weight: torch.Tensor, beta: float, seed: int, max_iter: int = 1000):
    """Indices (ascending) of the exemplar filters of a conv weight ``(out, in, kh, kw)``."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    filters = weight.detach().to("cpu", torch.float64).reshape(len(weight), -1).numpy()
    squared = np.einsum("ij,ij->i", filters, filters)
    similarity = -np.maximum(squared[:, None] + squared[None, :] - 2 * filters @ filters.T, 0)
    np.fill_diagonal(similarity, 0.0)
    preference = beta * np.median(similarity, axis=0)
    for damping in _DAMPINGS:
        clustering = AffinityPropagation(
            affinity="precomputed",
            preference=preference,
            damping=damping,
            max_iter=max_iter,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clustering.fit(similarity)
        exemplars = np.asarray(clustering.cluster_centers_indices_, dtype=np.int64)
        if exemplars.size:  # scikit-learn returns none when it did not converge
            return np.sort(exemplars)
        log.info("affinity propagation did not converge with damping %.1f", damping)
    raise RuntimeError(
        f"affinity propagation did not converge for a layer of {len(weight)} filters "
        f"(beta {beta}, max_iter {max_iter}, dampings {_DAMPINGS})"
    )


def _slice_state(
    state: dict[str, torch.Tensor], groups: list[FilterGroup], kept: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The parent's state restricted to the kept filters: rows of each pruned convolution
    (and its BatchNorm), input columns of the layer that reads it."""
    rows: dict[str, torch.Tensor] = {}
    columns: dict[str, torch.Tensor] = {}
    for group in groups:
        index = kept[group.conv]
        rows[group.conv] = index
        if group.bn is not None:
            rows[group.bn] = index
        offsets = torch.arange(group.positions)
        columns[group.consumer] = (index[:, None] * group.positions + offsets).reshape(-1)
    sliced = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        if module in rows and leaf != "num_batches_tracked":
            tensor = tensor.index_select(0, rows[module])
        if module in columns and leaf == "weight":
            tensor = tensor.index_select(1, columns[module])
        sliced[key] = tensor.clone()
    return sliced


@dataclass
class FilterPruning:
    """What EPruner did: the pruned network and the filters it kept per convolution."""

    model: nn.Module
    kept: dict[str, list[int]]


def epruner(model: nn.Module, beta: float, seed: int) -> FilterPruning:
    """Keep each prunable convolution's exemplar filters; the result starts from their weights."""
    groups = filter_groups(model)
    modules = dict(model.named_modules())
    kept = {
        g.conv: torch.as_tensor(exemplar_filters(modules[g.conv].weight, beta, seed))
        for g in groups
    }
    pruned = rebuild(with_widths(model, {conv: len(index) for conv, index in kept.items()}))
    pruned.load_state_dict(_slice_state(model.state_dict(), groups, kept))
    return FilterPruning(pruned, {conv: index.tolist() for conv, index in kept.items()})
