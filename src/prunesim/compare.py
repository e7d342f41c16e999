"""Two activation stores -> an xarray Dataset over all layer pairs × metrics × views.

Views turn a layer's output into an ``n × p`` matrix. For conv outputs ``(n, C, H, W)``:
``flatten`` is ``n × C·H·W``, ``gap`` (global average pool) is ``n × C``, ``channels`` is
``n·H·W × C`` (every spatial position a sample; only pairs with equal H×W). Outputs that are
already ``n × p`` are the same under every view.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

import prunesim
from prunesim.activations import ActivationStore, open_activations
from prunesim.metrics import REGISTRY, LayerFactors, PairFactors, evaluate, get_metric
from prunesim.metrics.factors import DEAD_TOL, RANK_TOL

log = logging.getLogger(__name__)


def _flatten(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


def _gap(a: np.ndarray) -> np.ndarray:
    return a.reshape(*a.shape[:2], -1).mean(axis=2) if a.ndim > 2 else a


def _channels(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1]) if a.ndim > 2 else a


VIEWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "flatten": _flatten,
    "gap": _gap,
    "channels": _channels,
}


@dataclass(frozen=True)
class CompareSettings:
    """The ``similarity`` block of an experiment's config."""

    metrics: tuple[str, ...] = ("cka_linear", "cca_mean")
    views: tuple[str, ...] = ("flatten", "gap")
    dead_tol: float = DEAD_TOL
    rank_tol: float = RANK_TOL

    def __post_init__(self) -> None:
        for metric in self.metrics:
            get_metric(metric)
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown:
            raise ValueError(f"unknown views {unknown}; expected some of {list(VIEWS)}")


@dataclass
class _ViewedLayers:
    """Per-layer factors of one store under one view, computed on first use."""

    store: ActivationStore
    view: str
    settings: CompareSettings
    raw: dict[str, np.ndarray]
    factors: dict[str, LayerFactors] = field(default_factory=dict)

    def spatial(self, layer: str) -> tuple[int, ...]:
        return tuple(self.store.array(layer).shape[2:])

    def get(self, layer: str) -> LayerFactors:
        if layer not in self.factors:
            if layer not in self.raw:
                self.raw[layer] = self.store.load(layer)
            matrix = VIEWS[self.view](self.raw[layer])
            self.factors[layer] = LayerFactors.from_array(
                matrix, self.settings.dead_tol, self.settings.rank_tol
            )
        return self.factors[layer]


def compare_stores(
    path_a: str, path_b: str, settings: CompareSettings, attrs: dict | None = None
) -> xr.Dataset:
    """All layer pairs (layers of A × layers of B) × metrics × views of two stores.

    The stores must hold the same probe set (checked by digest). Comparing a store with
    itself shares every factor.
    """
    store_a = open_activations(path_a)
    store_b = store_a if str(path_b) == str(path_a) else open_activations(path_b)
    digest_a, digest_b = store_a.manifest.get("probe_digest"), store_b.manifest.get("probe_digest")
    if digest_a != digest_b or store_a.n != store_b.n:
        raise ValueError(
            f"stores {path_a!r} and {path_b!r} hold different probe sets "
            f"(digests {digest_a} / {digest_b}, n {store_a.n} / {store_b.n})"
        )
    layers_a, layers_b = store_a.layers, store_b.layers
    shape = (len(settings.metrics), len(settings.views), len(layers_a), len(layers_b))
    values = np.full(shape, np.nan)
    reasons = np.full(shape, "", dtype=object)
    dead_a = np.zeros((len(settings.views), len(layers_a)), dtype=np.int64)
    dead_b = np.zeros((len(settings.views), len(layers_b)), dtype=np.int64)
    raw_a: dict[str, np.ndarray] = {}
    raw_b = raw_a if store_b is store_a else {}
    for v, view in enumerate(settings.views):
        side_a = _ViewedLayers(store_a, view, settings, raw_a)
        side_b = side_a if store_b is store_a else _ViewedLayers(store_b, view, settings, raw_b)
        for i, la in enumerate(layers_a):
            dead_a[v, i] = side_a.get(la).dead
        for j, lb in enumerate(layers_b):
            dead_b[v, j] = side_b.get(lb).dead
        for i, la in enumerate(layers_a):
            for j, lb in enumerate(layers_b):
                if view == "channels" and side_a.spatial(la) != side_b.spatial(lb):
                    reasons[:, v, i, j] = (
                        f"channels view needs equal spatial sizes, got "
                        f"{side_a.spatial(la)} and {side_b.spatial(lb)}"
                    )
                    continue
                pair = PairFactors(side_a.get(la), side_b.get(lb))
                for m, metric in enumerate(settings.metrics):
                    result = evaluate(pair, metric)
                    values[m, v, i, j] = result.value
                    reasons[m, v, i, j] = result.reason if math.isnan(result.value) else ""
        log.info("view %s: %d x %d layer pairs compared", view, len(layers_a), len(layers_b))

    dims = ("metric", "view", "layer_a", "layer_b")
    ds = xr.Dataset(
        {
            "similarity": (dims, values),
            "nan_reason": (dims, reasons.astype(str)),
            "dead_a": (("view", "layer_a"), dead_a),
            "dead_b": (("view", "layer_b"), dead_b),
        },
        coords={
            "metric": list(settings.metrics),
            "view": list(settings.views),
            "layer_a": layers_a,
            "layer_b": layers_b,
            "depth_a": ("layer_a", np.arange(len(layers_a))),
            "depth_b": ("layer_b", np.arange(len(layers_b))),
        },
    )
    ds["similarity"].attrs["long_name"] = "representation similarity"
    ds["dead_a"].attrs["long_name"] = "zero-variance neurons dropped from layer_a"
    ds["dead_b"].attrs["long_name"] = "zero-variance neurons dropped from layer_b"
    ds.attrs.update(
        {
            "store_a": str(path_a),
            "store_b": str(path_b),
            "probe_digest": str(digest_a),
            "n_samples": store_a.n,
            "settings": json.dumps(asdict(settings)),
            "metric_definitions": json.dumps(
                {
                    m: {"definition": REGISTRY[m].definition, "reference": REGISTRY[m].reference}
                    for m in settings.metrics
                }
            ),
            "prunesim_version": prunesim.__version__,
            **(attrs or {}),
        }
    )
    return ds
