"""Two activation stores -> an xarray Dataset over all layer pairs × metrics × views.

The stores are streamed chunk by chunk (twice: means first, then centred statistics), so memory
does not grow with the number of probe samples for layers with p <= n; see
:mod:`prunesim.metrics.stats`. Each layer's factors are computed once and shared by every pair
and metric.

Views turn a layer's output into an ``n × p`` matrix. For conv outputs ``(n, C, H, W)``:
``flatten`` is ``n × C·H·W``, ``gap`` (global average pool) is ``n × C``, ``channels`` is
``n·H·W × C`` (every spatial position a sample; only pairs with equal H×W). Outputs that are
already ``n × p`` are the same under every view.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property

import numpy as np
import xarray as xr

import prunesim
from prunesim.activations import ActivationStore, open_activations
from prunesim.metrics import (
    METRICS,
    REGISTRY,
    LayerFactors,
    MetricOptions,
    PairFactors,
    definitions,
    evaluate,
    get_metric,
)
from prunesim.metrics.backend import check_device, get_backend
from prunesim.metrics.factors import RANK_TOL
from prunesim.metrics.stats import DEAD_TOL, ColumnMoments, LayerAccumulator, product

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

    metrics: tuple[str, ...] = METRICS
    views: tuple[str, ...] = ("flatten", "gap")
    dead_tol: float = DEAD_TOL
    rank_tol: float = RANK_TOL
    cca_threshold: float | None = None
    svcca_variance: float = 0.99
    rbf_sigma: float = 1.0
    rbf_max_samples: int = 10_000  # cka_rbf needs n × n kernels: NaN with a reason above this
    cross_memory_mb: int = 1024  # budget for the streamed XᵀY of all layer pairs of one pass
    float32_products: bool = False  # products of the data in float32 blocks, summed in float64
    device: str = "cpu"  # where the linear algebra runs: cpu (numpy), cuda, cuda:N, auto

    def __post_init__(self) -> None:
        for metric in self.metrics:
            get_metric(metric)
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown:
            raise ValueError(f"unknown views {unknown}; expected some of {list(VIEWS)}")
        self.metric_options()  # validates the options
        check_device(self.device)

    @cached_property
    def backend(self):
        """The metrics backend for ``device`` (an error if it names an absent GPU), looked
        up once: it is used for every chunk product."""
        return get_backend(self.device)

    def metric_options(self) -> MetricOptions:
        names = {f.name for f in fields(MetricOptions)}
        return MetricOptions(**{k: v for k, v in asdict(self).items() if k in names})

    @property
    def needs_kernel(self) -> bool:
        return any(REGISTRY[m].needs_kernel for m in self.metrics)


@dataclass
class _Representation:
    """One layer of one store under one view, through both streaming passes."""

    layer: str
    view: str
    spatial: tuple[int, ...]
    moments: ColumnMoments | None = None
    accumulator: LayerAccumulator | None = None
    factors: LayerFactors | None = None

    def matrix(self, raw: np.ndarray) -> np.ndarray:
        return VIEWS[self.view](raw)


def _chunks(
    store: ActivationStore, layers: list[str], step: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive blocks of ``step`` samples (default: the store's chunk) of every layer.
    Two stores are read with the same step so that their blocks hold the same samples."""
    step = step or store.chunk_size()
    for start in range(0, store.n, step):
        yield {layer: store.read(layer, start, start + step) for layer in layers}


@dataclass
class _StoreSide:
    store: ActivationStore
    views: tuple[str, ...]
    reps: dict[tuple[str, str], _Representation] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for view in self.views:
            for layer in self.store.layers:
                spatial = self.store.shape(layer)[2:]
                self.reps[layer, view] = _Representation(layer, view, spatial)

    def first_pass(self) -> None:
        for chunk in _chunks(self.store, self.store.layers):
            for (layer, _), rep in self.reps.items():
                matrix = rep.matrix(chunk[layer])
                if rep.moments is None:
                    rep.moments = ColumnMoments(matrix.shape[1])
                rep.moments.add(matrix)

    def plan(self, settings: CompareSettings) -> None:
        """Keep the centred data of a representation when p > n (its Gram matrix is cheaper
        than its covariance) or when an RBF kernel needs it."""
        for rep in self.reps.values():
            live = rep.moments.live(settings.dead_tol)
            rows = rep.moments.n
            keep = int(live.sum()) > rows or (
                settings.needs_kernel and rows <= settings.rbf_max_samples
            )
            rep.accumulator = rep.moments.accumulator(
                live, keep, settings.float32_products, settings.backend
            )


def _pair_groups(side_a, side_b, view, settings) -> list[list[tuple[str, str]]]:
    """Layer pairs whose cross-products are streamed, grouped so that one group's
    XᵀY matrices fit the memory budget (one extra pass over the stores per group)."""
    budget = settings.cross_memory_mb * 2**20
    groups: list[list[tuple[str, str]]] = [[]]
    used = 0
    for la in side_a.store.layers:
        acc_a = side_a.reps[la, view].accumulator
        for lb in side_b.store.layers:
            acc_b = side_b.reps[lb, view].accumulator
            if acc_a.keep_data and acc_b.keep_data:
                continue  # formed from the kept data when needed
            size = 8 * int(acc_a.live.sum()) * int(acc_b.live.sum())
            if used + size > budget and groups[-1]:
                groups.append([])
                used = 0
            groups[-1].append((la, lb))
            used += size
    return groups


def _stream(side_a: _StoreSide, side_b: _StoreSide, settings: CompareSettings):
    """Pass 2: per-layer statistics and the streamed cross-products of every pair."""
    same = side_b is side_a
    crosses: dict[tuple[str, str, str], np.ndarray] = {}
    groups = {v: _pair_groups(side_a, side_b, v, settings) for v in settings.views}
    n_passes = max(len(g) for g in groups.values())
    step = side_a.store.chunk_size()
    for pass_index in range(n_passes):
        first = pass_index == 0
        chunks_b = None if same else _chunks(side_b.store, side_b.store.layers, step)
        for chunk_a in _chunks(side_a.store, side_a.store.layers, step):
            chunk_b = chunk_a if same else next(chunks_b)
            for view in settings.views:
                group = groups[view][pass_index] if pass_index < len(groups[view]) else []
                if not first and not group:
                    continue
                centred_a = {
                    la: side_a.reps[la, view].accumulator.centred(
                        side_a.reps[la, view].matrix(chunk_a[la])
                    )
                    for la in side_a.store.layers
                }
                centred_b = (
                    centred_a
                    if same
                    else {
                        lb: side_b.reps[lb, view].accumulator.centred(
                            side_b.reps[lb, view].matrix(chunk_b[lb])
                        )
                        for lb in side_b.store.layers
                    }
                )
                if first:
                    for la, c in centred_a.items():
                        side_a.reps[la, view].accumulator.add(c)
                    if not same:
                        for lb, c in centred_b.items():
                            side_b.reps[lb, view].accumulator.add(c)
                for la, lb in group:
                    if centred_a[la].shape[0] != centred_b[lb].shape[0]:
                        continue  # channels view of different spatial sizes: no pair
                    chunk_cross = product(
                        centred_a[la], centred_b[lb], settings.float32_products, settings.backend
                    )
                    key = (view, la, lb)
                    if key in crosses:
                        crosses[key] += chunk_cross
                    else:
                        crosses[key] = chunk_cross
    for side in (side_a,) if same else (side_a, side_b):
        for rep in side.reps.values():
            rep.factors = LayerFactors(rep.accumulator.result(), settings.rank_tol)
            rep.accumulator = None
    return crosses


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
    side_a = _StoreSide(store_a, settings.views)
    side_b = side_a if store_b is store_a else _StoreSide(store_b, settings.views)
    for side in (side_a,) if side_b is side_a else (side_a, side_b):
        side.first_pass()
        side.plan(settings)
    crosses = _stream(side_a, side_b, settings)

    layers_a, layers_b = store_a.layers, store_b.layers
    options = settings.metric_options()
    shape = (len(settings.metrics), len(settings.views), len(layers_a), len(layers_b))
    values = np.full(shape, np.nan)
    reasons = np.full(shape, "", dtype=object)
    dead_a = np.zeros((len(settings.views), len(layers_a)), dtype=np.int64)
    dead_b = np.zeros((len(settings.views), len(layers_b)), dtype=np.int64)
    for v, view in enumerate(settings.views):
        for i, la in enumerate(layers_a):
            dead_a[v, i] = side_a.reps[la, view].factors.dead
        for j, lb in enumerate(layers_b):
            dead_b[v, j] = side_b.reps[lb, view].factors.dead
        for i, la in enumerate(layers_a):
            rep_a = side_a.reps[la, view]
            for j, lb in enumerate(layers_b):
                rep_b = side_b.reps[lb, view]
                if view == "channels" and rep_a.spatial != rep_b.spatial:
                    reasons[:, v, i, j] = (
                        f"channels view needs equal spatial sizes, got "
                        f"{rep_a.spatial} and {rep_b.spatial}"
                    )
                    continue
                pair = PairFactors(
                    rep_a.factors,
                    rep_b.factors,
                    crosses.get((view, la, lb)),
                    keep_directions="pwcca" in settings.metrics,
                )
                for m, metric in enumerate(settings.metrics):
                    result = evaluate(pair, metric, options)
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
            "metric_definitions": json.dumps(definitions(settings.metrics, options)),
            "prunesim_version": prunesim.__version__,
            **(attrs or {}),
        }
    )
    return ds
