"""EPruner (Lin et al., "Network Pruning Using Adaptive Exemplar Filters", TNNLS 2021).

Each prunable convolution's filters are clustered by affinity propagation on the negative
squared Euclidean distances between flattened filters, with each filter's preference set to
``beta`` x the median of its similarities (as in the authors' code); the exemplars are kept, and
their weights (with the matching input slices of the next layer) initialise a smaller network
built from its architecture, so it saves and reloads like any other. A larger ``beta`` makes the
preferences more negative, so fewer exemplars survive.

What else the smaller network starts from is ``initialisation``:

- ``authors``, as ``cluster_resnet`` and ``cluster_vgg`` in the authors' ``epruner_cifar.py``
  (github.com/lmbxmu/EPruner): on a ResNet the BatchNorm after each pruned convolution
  (``bn1`` of every block: weight, bias and running statistics) starts afresh and every other
  tensor is the parent's; on LeNet-5 and VGG only the convolutions' weights are the parent's,
  and every BatchNorm, convolution bias and linear layer starts afresh. Afresh is the
  architecture's own initialisation (unit/zero BatchNorm with running mean 0 and variance 1,
  zero convolution bias) with linear layers drawn from N(0, 0.01) with zero bias, the
  ``_initialize_weights`` of the authors' ``model/vgg_cifar.py``;
- ``inherit``: every tensor is the parent's, the pruned convolutions' BatchNorm entries and
  running statistics included (what prunesim did before the option existed).

``late_beta`` ``(k, b)`` clusters the k-th convolution on (0-based, forward order) at ``b``
instead of ``beta``: the authors' ``cluster_vgg`` uses 0.92 from the ninth convolution of
VGG-16 on (``start_alpha_layer_index = 8``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sklearn.cluster import AffinityPropagation
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from prunesim.models import VGG, ResNet, rebuild
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


Initialisation = Literal["authors", "inherit"]
INITIALISATIONS: tuple[str, ...] = ("authors", "inherit")

# The authors' fresh linear layers' standard deviation (model/vgg_cifar.py).
_LINEAR_STD = 0.01


def _fresh_keys(model: nn.Module, groups: list[FilterGroup]) -> set[str]:
    """The state keys that the authors' code leaves at a fresh initialisation (its
    ``prune_state_dict``); ``num_batches_tracked`` is copied there, and here."""
    stats = ("weight", "bias", "running_mean", "running_var")
    if isinstance(model, ResNet):
        return {f"{g.bn}.{stat}" for g in groups if g.bn is not None for stat in stats}
    fresh = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            fresh.update(f"{name}.{stat}" for stat in stats)
        elif isinstance(module, nn.Conv2d) and module.bias is not None:
            fresh.add(f"{name}.bias")
        elif isinstance(module, nn.Linear):
            fresh.add(f"{name}.weight")
            if module.bias is not None:
                fresh.add(f"{name}.bias")
    return fresh


@torch.no_grad()
def _authors_init(model: nn.Module, seed: int) -> None:
    """The authors' VGG initialisation of what EPruner does not inherit (``model/vgg_cifar.py``,
    ``_initialize_weights``): zero convolution biases, linear layers from N(0, 0.01) with zero
    bias (drawn with ``seed``, in forward order); BatchNorm is a fresh network's already."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.bias is not None:
            module.bias.zero_()
        elif isinstance(module, nn.Linear):
            weight = torch.randn(module.weight.shape, generator=generator) * _LINEAR_STD
            module.weight.copy_(weight)
            if module.bias is not None:
                module.bias.zero_()


def vgg_late_beta(model: nn.Module, setting: dict | None) -> tuple[int, float] | None:
    """The ``late_beta`` of the config's ``epruner.vgg_late_beta`` for ``model``: the
    authors' rule is their VGG code's, so other architectures get none, and so does a VGG
    with no convolution from ``from_conv`` on (only ``vgg16_bn`` has nine or more)."""
    if setting is None or not isinstance(model, VGG):
        return None
    if int(setting["from_conv"]) >= len(filter_groups(model)):
        return None
    return int(setting["from_conv"]), float(setting["beta"])


def epruner(
    model: nn.Module,
    beta: float,
    seed: int,
    initialisation: Initialisation = "authors",
    late_beta: tuple[int, float] | None = None,
) -> FilterPruning:
    """Keep each prunable convolution's exemplar filters; the result starts from their weights
    and, by ``initialisation``, from the parent's other tensors or fresh ones (module
    docstring). ``late_beta`` ``(k, b)``: convolutions k, k + 1, ... (0-based, forward order)
    cluster at ``b``. The fresh tensors are drawn with ``seed``."""
    if initialisation not in INITIALISATIONS:
        raise ValueError(f"unknown initialisation {initialisation!r}; expected {INITIALISATIONS}")
    groups = filter_groups(model)
    modules = dict(model.named_modules())
    betas = [
        late_beta[1] if late_beta is not None and i >= late_beta[0] else beta
        for i in range(len(groups))
    ]
    kept = {
        g.conv: torch.as_tensor(exemplar_filters(modules[g.conv].weight, b, seed))
        for g, b in zip(groups, betas, strict=True)
    }
    arch = with_widths(model, {conv: len(index) for conv, index in kept.items()})
    state = _slice_state(model.state_dict(), groups, kept)
    if initialisation == "authors":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = rebuild(arch)
        _authors_init(fresh, seed)
        fresh_state = fresh.state_dict()
        for key in _fresh_keys(model, groups):
            state[key] = fresh_state[key].clone()
    pruned = rebuild(arch)
    pruned.load_state_dict(state)
    return FilterPruning(pruned, {conv: index.tolist() for conv, index in kept.items()})
