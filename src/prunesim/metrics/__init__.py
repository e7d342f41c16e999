"""Layer-similarity metrics: a registry of metric definitions and the public API.

``METRICS`` names the metrics; ``similarity(X, Y, metric)`` compares two in-memory ``n × p``
representations (numpy or torch, any float dtype); ``evaluate(pair, metric)`` is the form that
:mod:`prunesim.compare` uses, sharing per-layer factors across all pairs and metrics.

An undefined value (a constant layer, a degenerate CCA) is NaN with a reason, never an error.
Definitions and references: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from prunesim.metrics.factors import DEAD_TOL, RANK_TOL, LayerFactors, PairFactors


@dataclass(frozen=True)
class MetricResult:
    value: float
    reason: str = ""  # why the value is NaN; empty when defined


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[PairFactors], MetricResult]
    symmetric: bool
    definition: str
    reference: str


def _constant(pair: PairFactors) -> MetricResult | None:
    for side, layer in (("first", pair.a), ("second", pair.b)):
        if layer.constant:
            return MetricResult(
                math.nan, f"{side} representation is constant (all {layer.dead} neurons dead)"
            )
    return None


def cka_linear(pair: PairFactors) -> MetricResult:
    """Linear CKA: ‖XᵀY‖_F² / (‖XᵀX‖_F ‖YᵀY‖_F) on centred X, Y."""
    undefined = _constant(pair)
    if undefined:
        return undefined
    return MetricResult(pair.cross_hsic / (pair.a.self_hsic * pair.b.self_hsic))


def cca_mean(pair: PairFactors) -> MetricResult:
    """Mean of all min(r_x, r_y) canonical correlations."""
    undefined = _constant(pair)
    if undefined:
        return undefined
    ra, rb = pair.a.rank, pair.b.rank
    if ra + rb >= pair.n:
        return MetricResult(
            math.nan,
            f"CCA degenerate: rank {ra} + rank {rb} >= n = {pair.n} forces canonical "
            "correlations of 1; use a view with fewer features (gap, channels) or more samples",
        )
    return MetricResult(float(pair.canonical_correlations.mean()))


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "cka_linear",
            cka_linear,
            symmetric=True,
            definition="||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F), X and Y column-centred",
            reference="Kornblith et al. 2019, Similarity of Neural Network Representations Revisited",
        ),
        Metric(
            "cca_mean",
            cca_mean,
            symmetric=True,
            definition="mean of all min(rank X, rank Y) canonical correlations; NaN when "
            "rank X + rank Y >= n",
            reference="Hotelling 1936; Raghu et al. 2017 (mean CCA similarity)",
        ),
    )
}

METRICS: tuple[str, ...] = tuple(REGISTRY)


def get_metric(name: str) -> Metric:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; expected one of {list(METRICS)}") from None


def evaluate(pair: PairFactors, metric: str) -> MetricResult:
    return get_metric(metric).compute(pair)


def similarity(X, Y, metric: str, dead_tol: float = DEAD_TOL, rank_tol: float = RANK_TOL) -> float:
    """Similarity of two representations (``n × p1`` and ``n × p2``, rows = the same samples)."""
    pair = PairFactors(
        LayerFactors.from_array(X, dead_tol, rank_tol),
        LayerFactors.from_array(Y, dead_tol, rank_tol),
    )
    return evaluate(pair, metric).value


__all__ = [
    "METRICS",
    "REGISTRY",
    "LayerFactors",
    "Metric",
    "MetricResult",
    "PairFactors",
    "evaluate",
    "get_metric",
    "similarity",
]
