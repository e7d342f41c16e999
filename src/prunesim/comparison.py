"""Two models' activations -> an xarray Dataset over all layer pairs × metrics × views.

The activations are two stores (the workflow's :func:`compare_stores`), two dicts of arrays
(:func:`compare_arrays`) or two models run on the same data (:func:`compare_models`, the
notebook's one call); all three return the same Dataset. They are streamed chunk by chunk by the metrics' one streaming driver (twice: means
first, then centred statistics), so memory does not grow with the number of probe samples for
layers with p <= n; its memory policy is stated in :mod:`prunesim.metrics.streaming`. Each
layer's factors are computed once and shared by every pair and metric.

Views turn a layer's output into an ``n × p`` matrix (:mod:`prunesim.metrics.views`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import prunesim
from prunesim.activations import input_batches, layer_outputs
from prunesim.environment import describe
from prunesim.io import progress
from prunesim.metrics import (
    METRICS,
    REGISTRY,
    LayerFactors,
    MetricOptions,
    PairFactors,
    caution,
    definitions,
    evaluate,
    get_metric,
)
from prunesim.metrics.backend import check_device, get_backend
from prunesim.metrics.calibration import (
    Calibration,
    bootstrap_draws,
    permutation_draws,
    summarize,
)
from prunesim.metrics.factors import RANK_TOL
from prunesim.metrics.streaming import Policy, Side, stream
from prunesim.metrics.views import VIEWS, to_numpy

if TYPE_CHECKING:
    from torch import nn

    from prunesim.activations import ActivationStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivationArrays:
    """Layer outputs held in memory (``{layer: n × …}``, the same n and samples in every
    layer), with :class:`ActivationStore`'s read interface."""

    arrays: Mapping[str, np.ndarray]
    chunk: int = 1024  # rows per block when the comparison streams them

    def __post_init__(self) -> None:
        arrays = {str(name): to_numpy(a) for name, a in self.arrays.items()}
        if not arrays:
            raise ValueError("no layers to compare")
        sizes = {name: a.shape[0] if a.ndim else 0 for name, a in arrays.items()}
        if len(set(sizes.values())) != 1 or min(sizes.values()) < 1:
            raise ValueError(f"every layer needs the same samples (rows), got {sizes}")
        for name, a in arrays.items():
            if a.ndim < 2:
                raise ValueError(f"layer {name!r} has shape {a.shape}: expected n × features")
        object.__setattr__(self, "arrays", arrays)

    @property
    def layers(self) -> list[str]:
        return list(self.arrays)

    @property
    def n(self) -> int:
        return len(next(iter(self.arrays.values())))

    def shape(self, layer: str) -> tuple[int, ...]:
        return tuple(self.arrays[layer].shape)

    def chunk_size(self) -> int:
        return self.chunk

    def read(self, layer: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.arrays[layer][start:stop]

    def load(self, layer: str) -> np.ndarray:
        return self.arrays[layer]


def collect_activations(
    models: list[nn.Module],
    layers: list[list[str]],
    data,
    batch_size: int = 256,
    skip_unusable: bool = False,
) -> list[ActivationArrays]:
    """Every model's ``layers`` on ``data`` (see :func:`input_batches`), in memory (float32);
    ``skip_unusable`` as in :func:`layer_outputs`. A model listed twice runs once; with the
    same layers it gives the same object twice (so a comparison shares its factors)."""
    distinct: dict[int, tuple[nn.Module, dict[str, None]]] = {}
    for model, names in zip(models, layers, strict=True):
        if not names:
            raise ValueError("no layers to record: name at least one module")
        distinct.setdefault(id(model), (model, {}))[1].update(dict.fromkeys(names))
    runs = list(distinct.values())
    parts: list[dict[str, list[np.ndarray]]] = [{} for _ in runs]
    batches = input_batches(data, batch_size)
    names_run = [list(names) for _, names in runs]
    for outputs in layer_outputs([m for m, _ in runs], names_run, batches, skip_unusable):
        for part, out in zip(parts, outputs, strict=True):
            for name, value in out.items():
                part.setdefault(name, []).append(value)
    if not any(parts):
        raise ValueError("the data gave no batches, or no layer gave an output")
    arrays = {
        key: {name: np.concatenate(v) for name, v in part.items()}
        for key, part in zip(distinct, parts, strict=True)
    }
    chosen: dict[tuple, ActivationArrays] = {}
    for model, names in zip(models, layers, strict=True):
        key = (id(model), tuple(names))
        if key not in chosen:
            kept = {n: arrays[id(model)][n] for n in names if n in arrays[id(model)]}
            if not kept:
                raise ValueError(f"none of the layers {list(names)} gave a usable output")
            chosen[key] = ActivationArrays(kept, batch_size)
    return [chosen[id(model), tuple(names)] for model, names in zip(models, layers, strict=True)]


if TYPE_CHECKING:
    Activations = ActivationStore | ActivationArrays


CALIBRATED_PAIRS = {
    "matched": "pairs of same-named layers (a layer and its pruned or retrained self)",
    "all": "every layer pair",
}


@dataclass(frozen=True)
class CompareSettings:
    """The ``similarity`` block of an experiment's config."""

    metrics: tuple[str, ...] = METRICS
    views: tuple[str, ...] = ("flatten", "gap", "channels")
    rank_tol: float = RANK_TOL
    cca_threshold: float | None = None
    svcca_variance: float = 0.99
    rbf_sigma: float = 1.0
    knn_k: int = 10
    pairwise_max_samples: int = 10_000  # metrics of sample pairs (n × n): NaN above this
    cross_memory_mb: int = 1024  # budget for the streamed XᵀY of all layer pairs of one pass
    float32_products: bool = False  # products of the data in float32 blocks, summed in float64
    device: str = "cpu"  # where the linear algebra runs: cpu (numpy), cuda, cuda:N, auto
    # calibration (prunesim.metrics.calibration): permutations of the second store's probe
    # images (the chance level) and bootstrap resamples of them (an interval), for the pairs of
    # same-named layers ("matched") or every pair ("all")
    permutations: int = 20
    bootstrap: int = 10
    calibration_seed: int = 0
    confidence: float = 0.95
    calibrate: str = "matched"

    def __post_init__(self) -> None:
        for metric in self.metrics:
            get_metric(metric)
        unknown = [v for v in self.views if v not in VIEWS]
        if unknown:
            raise ValueError(f"unknown views {unknown}; expected some of {list(VIEWS)}")
        if self.calibrate not in CALIBRATED_PAIRS:
            raise ValueError(
                f"calibrate must be one of {list(CALIBRATED_PAIRS)}, got {self.calibrate!r}"
            )
        self.metric_options()  # validates the options
        self.calibration()  # validates the counts
        check_device(self.device)

    def calibration(self) -> Calibration:
        return Calibration(
            self.permutations, self.bootstrap, self.calibration_seed, self.confidence
        )

    @cached_property
    def backend(self):
        """The metrics backend for ``device`` (an error if it names an absent GPU), looked
        up once: it is used for every chunk product."""
        return get_backend(self.device)

    def metric_options(self) -> MetricOptions:
        names = {f.name for f in fields(MetricOptions)}
        return MetricOptions(**{k: v for k, v in asdict(self).items() if k in names})

    @property
    def needs_pairwise(self) -> bool:
        return any(REGISTRY[m].needs_pairwise for m in self.metrics)

    @property
    def policy(self) -> Policy:
        """How the streaming driver treats the stores' representations."""
        return Policy(
            pairwise=self.needs_pairwise,
            keep_samples=self.calibration().active,
            pairwise_max_samples=self.pairwise_max_samples,
            cross_memory_mb=self.cross_memory_mb,
            float32_products=self.float32_products,
            backend=self.backend,
        )


def _representation_key(store: Activations, views: tuple[str, ...]) -> Callable:
    """``key(layer, view)``: the representation a layer has under a view. Outputs that are
    already n × p are the same under every view, so they have one key (the first view's) and
    are streamed, factored and compared once."""

    def key(layer: str, view: str) -> tuple[str, str]:
        return (layer, views[0]) if len(store.shape(layer)) == 2 else (layer, view)

    return key


def _store_side(store: Activations, views: tuple[str, ...], side_name: str) -> Side:
    """A store as a side of the streaming driver: one representation per distinct
    (layer, view) (see :func:`_representation_key`)."""

    def blocks(step: int | None) -> Iterator[dict[str, np.ndarray]]:
        """Consecutive blocks of ``step`` samples (default: the store's chunk) of every layer."""
        step = step or store.chunk_size()
        starts = range(0, store.n, step)
        for start in progress(starts, len(starts), f"{side_name}: blocks of {step} samples", log):
            yield {layer: store.read(layer, start, start + step) for layer in store.layers}

    def representation(layer: str, view: str):
        return lambda block: VIEWS[view](block[layer])

    key = _representation_key(store, views)
    reps = {
        key(layer, view): representation(*key(layer, view))
        for view in views
        for layer in store.layers
    }
    return Side(blocks, store.chunk_size(), reps)


def _pairs(store_a: Activations, store_b: Activations, views) -> list:
    """Every distinct pair of representations (layer of A, layer of B) under each view, but
    for the channels view only layers of equal spatial size (their positions are the
    samples)."""
    key_a, key_b = _representation_key(store_a, views), _representation_key(store_b, views)
    pairs = (
        (key_a(la, view), key_b(lb, view))
        for view in views
        for la in store_a.layers
        for lb in store_b.layers
        if view != "channels" or store_a.shape(la)[2:] == store_b.shape(lb)[2:]
    )
    return list(dict.fromkeys(pairs))


NEURON_COUNTS = {
    "constant": "neurons dropped for a constant non-zero value",
    "inactive": "neurons dropped for being zero on every probe sample (ReLUs that never fire)",
    "nonfinite": "neurons holding a NaN or an infinity (every metric of the layer is NaN)",
}


def _neuron_counts(factors: dict, layers: list[str], views, side: str) -> dict:
    """``constant_{side}``, ``inactive_{side}``, ``nonfinite_{side}`` over (view, layer)."""
    dims = ("view", f"layer_{side}")
    return {
        f"{kind}_{side}": (
            dims,
            np.array(
                [[getattr(factors[la, v].stats, kind) for la in layers] for v in views],
                dtype=np.int64,
            ),
        )
        for kind in NEURON_COUNTS
    }


CALIBRATION_VARIABLES = {
    "null_mean": "chance level: mean of the metric over permutations of the second layer's "
    "probe images",
    "null_std": "standard deviation of the metric over those permutations",
    "p_value": "one-sided permutation p-value: (1 + permutations at least as similar as the "
    "value) / (1 + permutations)",
    "corrected": "chance-corrected value (value - null_mean) / (perfect - null_mean), perfect "
    "being the metric's value for identical representations: 0 at chance, 1 for identical",
    "bootstrap_std": "standard error: standard deviation of the metric over bootstrap "
    "resamples of the probe images",
    "bootstrap_bias": "mean of the metric over the bootstrap resamples minus the value (a "
    "metric that grows as distinct samples get fewer, e.g. CCA at ranks near n, shows it)",
    "ci_low": "lower end of the interval value - z * bootstrap_std at the confidence level",
    "ci_high": "upper end of the interval value + z * bootstrap_std (not beyond a perfect value)",
}


def _evaluator(wanted: list, metrics: tuple[str, ...], options) -> Callable:
    """Draw evaluation for the calibration: the metrics ``wanted[index]`` (indices) of pair
    ``index``, NaN for the others."""

    def values(index: int, pair: PairFactors) -> list[float]:
        row = [math.nan] * len(metrics)
        for m in wanted[index]:
            row[m] = evaluate(pair, metrics[m], options).value
        return row

    return values


def _calibrate(
    values: np.ndarray,
    factors_a: dict,
    factors_b: dict,
    layers: tuple[list[str], list[str]],
    images: int,
    settings: CompareSettings,
) -> dict[str, np.ndarray]:
    """The calibration summaries (:data:`CALIBRATION_VARIABLES`) of every defined value of the
    calibrated layer pairs, shaped like ``values`` (NaN elsewhere)."""
    calibration, options = settings.calibration(), settings.metric_options()
    out = {name: np.full(values.shape, np.nan) for name in CALIBRATION_VARIABLES}
    perfect = np.array([get_metric(m).perfect for m in settings.metrics])
    orders, resamples = calibration.orders(images), calibration.resamples(images)
    keep_directions = "pwcca" in settings.metrics
    bootstrapped = {m for m, name in enumerate(settings.metrics) if not REGISTRY[name].no_bootstrap}
    layers_a, layers_b = layers
    first: dict[tuple[int, int], tuple[int, int, int]] = {}  # factors' ids -> calibrated cell
    copies: list[tuple[tuple[int, int, int], tuple[int, int, int]]] = []
    for v, view in enumerate(settings.views):
        groups: dict[int, list[tuple[int, int]]] = {}  # by rows per image (channels: H × W)
        for i, la in enumerate(layers_a):
            for j, lb in enumerate(layers_b):
                if settings.calibrate == "matched" and la != lb:
                    continue
                same = (id(factors_a[la, view]), id(factors_b[lb, view]))
                if same in first:  # n × p outputs: the same pair under an earlier view
                    copies.append(((v, i, j), first[same]))
                    continue
                first[same] = (v, i, j)
                if np.isfinite(values[:, v, i, j]).any():
                    rows_per_image = factors_a[la, view].n // images
                    groups.setdefault(rows_per_image, []).append((i, j))
        for rows_per_image, cells in groups.items():
            pairs = [(factors_a[layers_a[i], view], factors_b[layers_b[j], view]) for i, j in cells]
            defined = [np.flatnonzero(np.isfinite(values[:, v, i, j])) for i, j in cells]
            resampled = [[m for m in ms if m in bootstrapped] for ms in defined]
            null = boot = None
            if calibration.permutations:
                null = permutation_draws(
                    pairs,
                    _evaluator(defined, settings.metrics, options),
                    orders,
                    rows_per_image,
                    keep_directions,
                )
            if calibration.bootstrap:
                boot = bootstrap_draws(
                    pairs,
                    _evaluator(resampled, settings.metrics, options),
                    resamples,
                    rows_per_image,
                    settings.policy,
                    keep_directions,
                )
            observed = np.array([values[:, v, i, j] for i, j in cells])
            summary = summarize(observed, null, boot, perfect, calibration.confidence)
            for name in CALIBRATION_VARIABLES:
                summarized = getattr(summary, name)
                for k, (i, j) in enumerate(cells):
                    out[name][:, v, i, j] = summarized[k]
        log.info("view %s: calibrated %d layer pairs", view, sum(map(len, groups.values())))
    for (v, i, j), (v0, i0, j0) in copies:
        for array in out.values():
            array[:, v, i, j] = array[:, v0, i0, j0]
    return out


def compare_stores(
    path_a: str, path_b: str, settings: CompareSettings, attrs: dict | None = None
) -> xr.Dataset:
    """All layer pairs (layers of A × layers of B) × metrics × views of two activation
    stores, which must hold the same probe set (checked by digest). Comparing a store with
    itself shares every factor."""
    from prunesim.activations import open_activations

    store_a = open_activations(path_a)
    store_b = store_a if str(path_b) == str(path_a) else open_activations(path_b)
    digest_a, digest_b = store_a.manifest.get("probe_digest"), store_b.manifest.get("probe_digest")
    if digest_a != digest_b or store_a.n != store_b.n:
        raise ValueError(
            f"stores {path_a!r} and {path_b!r} hold different probe sets "
            f"(digests {digest_a} / {digest_b}, n {store_a.n} / {store_b.n})"
        )
    provenance = {"store_a": str(path_a), "store_b": str(path_b), "probe_digest": str(digest_a)}
    return compare_activations(store_a, store_b, settings, {**provenance, **(attrs or {})})


def compare_arrays(activations_a: Mapping, activations_b: Mapping, **settings) -> xr.Dataset:
    """All layer pairs × metrics × views of two models' layer outputs held in memory:
    ``{layer name: array}`` (numpy or torch; ``n × p`` or a conv output ``n × C × H × W``),
    rows = the same samples in the same order on both sides. ``settings`` are
    :class:`CompareSettings` fields (``metrics=``, ``views=``, ``permutations=``, ...)."""
    a, b = ActivationArrays(activations_a), ActivationArrays(activations_b)
    if a.n != b.n:
        raise ValueError(f"the two sides hold different sample counts: {a.n} and {b.n}")
    return compare_activations(a, b, _settings(settings))


def compare_models(
    model_a: nn.Module,
    model_b: nn.Module,
    data,
    layers: list[str] | None = None,
    layers_b: list[str] | None = None,
    batch_size: int = 256,
    **settings,
) -> xr.Dataset:
    """Similarity of every layer of ``model_a`` to every layer of ``model_b`` on ``data``, in
    one call: an xarray Dataset like the workflow's ``similarity.nc`` (``similarity``, and
    ``nan_reason`` saying why a value is undefined, over ``metric, view, layer_a, layer_b``).

    ``data``: a tensor of inputs (split into ``batch_size`` rows) or an iterable of batches
    such as a DataLoader (a tensor, or ``(inputs, labels, ...)``); both models see each batch,
    so a shuffling loader is fine. ``layers``: module names to record (default: a prunesim
    model's recorded layers, else every leaf module but those that only repeat their input:
    Identity, Flatten, Dropout; of these, a module run twice in a forward pass, never run, or
    giving no tensor is left out and logged);
    ``layers_b`` defaults to ``layers`` (or ``model_b``'s own default). Outputs are held in
    memory as float32. ``settings`` are :class:`CompareSettings` fields; ``device`` also
    sets where the metrics' linear algebra runs (the models run where they are)."""
    compare = _settings(settings)
    names_a = list(layers) if layers is not None else default_layers(model_a)
    if layers_b is not None:
        names_b = list(layers_b)
    else:
        names_b = names_a if layers is not None else default_layers(model_b)
    chose = layers is None and layers_b is None  # default layers: unusable ones are left out
    acts_a, acts_b = collect_activations(
        [model_a, model_b], [names_a, names_b], data, batch_size, skip_unusable=chose
    )
    return compare_activations(acts_a, acts_b, compare)


# Leaf modules that only pass their input on, reshaped or unchanged in eval mode.
_REPEATING_MODULES = ("Identity", "Flatten", "Unflatten", "Dropout", "Dropout1d", "Dropout2d")


def default_layers(model: nn.Module) -> list[str]:
    """A prunesim model's recorded layers; for any other model every leaf module in
    registration order, except those that repeat their input (:data:`_REPEATING_MODULES`)."""
    if getattr(model, "recorded_layers", None):
        return list(model.recorded_layers)
    return [
        name
        for name, module in model.named_modules()
        if name
        and not any(True for _ in module.children())
        and type(module).__name__ not in _REPEATING_MODULES
    ]


def _settings(settings: dict) -> CompareSettings:
    for key in ("metrics", "views"):
        if isinstance(settings.get(key), str):
            settings[key] = (settings[key],)
        elif key in settings:
            settings[key] = tuple(settings[key])
    known = {f.name for f in fields(CompareSettings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"unknown settings {unknown}; expected some of {sorted(known)}")
    return CompareSettings(**settings)


def _device_name(backend: str) -> str:
    """The device a metrics backend runs on: ``cpu`` for numpy, else its torch device."""
    return "cpu" if backend == "numpy" else backend.removeprefix("torch:")


def compare_activations(
    store_a: Activations, store_b: Activations, settings: CompareSettings, attrs: dict | None = None
) -> xr.Dataset:
    """All layer pairs (layers of A × layers of B) × metrics × views of two models'
    activations (stores or arrays holding the same samples). The same object on both sides
    shares every factor."""
    side_a = _store_side(store_a, settings.views, "model a")
    side_b = side_a if store_b is store_a else _store_side(store_b, settings.views, "model b")
    streamed = stream(side_a, side_b, _pairs(store_a, store_b, settings.views), settings.policy)
    factors_a = {k: LayerFactors(s, settings.rank_tol) for k, s in streamed.stats_a.items()}
    factors_b = (
        factors_a
        if side_b is side_a
        else {k: LayerFactors(s, settings.rank_tol) for k, s in streamed.stats_b.items()}
    )

    layers_a, layers_b = store_a.layers, store_b.layers
    key_a = _representation_key(store_a, settings.views)
    key_b = _representation_key(store_b, settings.views)
    factors_a = {
        (la, view): factors_a[key_a(la, view)] for la in layers_a for view in settings.views
    }
    factors_b = {
        (lb, view): factors_b[key_b(lb, view)] for lb in layers_b for view in settings.views
    }
    options = settings.metric_options()
    shape = (len(settings.metrics), len(settings.views), len(layers_a), len(layers_b))
    values = np.full(shape, np.nan)
    reasons = np.full(shape, "", dtype=object)
    cautions = np.full(shape, "", dtype=object)
    done: dict[tuple, tuple[int, int, int]] = {}  # pair of representations -> its first cell
    cells = [
        (v, i, j)
        for v in range(len(settings.views))
        for i in range(len(layers_a))
        for j in range(len(layers_b))
    ]
    for v, i, j in progress(cells, len(cells), "layer pairs compared", log):
        view, la, lb = settings.views[v], layers_a[i], layers_b[j]
        spatial_a, spatial_b = store_a.shape(la)[2:], store_b.shape(lb)[2:]
        if view == "channels" and spatial_a != spatial_b:
            reasons[:, v, i, j] = (
                f"channels view needs equal spatial sizes, got {spatial_a} and {spatial_b}"
            )
            continue
        keys = (key_a(la, view), key_b(lb, view))
        if keys in done:  # the same two representations under an earlier view
            for array in (values, reasons, cautions):
                array[:, v, i, j] = array[(slice(None), *done[keys])]
            continue
        done[keys] = (v, i, j)
        pair = PairFactors(
            factors_a[la, view],
            factors_b[lb, view],
            streamed.crosses.get(keys),
            keep_directions="pwcca" in settings.metrics,
        )
        for m, metric in enumerate(settings.metrics):
            result = evaluate(pair, metric, options)
            values[m, v, i, j] = result.value
            reasons[m, v, i, j] = result.reason if math.isnan(result.value) else ""
            if not math.isnan(result.value):
                cautions[m, v, i, j] = caution(pair, metric, options)
    calibrated = (
        _calibrate(values, factors_a, factors_b, (layers_a, layers_b), store_a.n, settings)
        if settings.calibration().active
        else {}
    )

    dims = ("metric", "view", "layer_a", "layer_b")
    ds = xr.Dataset(
        {
            "similarity": (dims, values),
            "nan_reason": (dims, reasons.astype(str)),
            "caution": (dims, cautions.astype(str)),
            **{name: (dims, array) for name, array in calibrated.items()},
            **_neuron_counts(factors_a, layers_a, settings.views, "a"),
            **_neuron_counts(factors_b, layers_b, settings.views, "b"),
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
    ds["caution"].attrs["long_name"] = "a note on a defined value that needs care in reading"
    for name in calibrated:
        ds[name].attrs["long_name"] = CALIBRATION_VARIABLES[name]
    for side in ("a", "b"):
        for kind, meaning in NEURON_COUNTS.items():
            ds[f"{kind}_{side}"].attrs["long_name"] = f"{meaning} in layer_{side}"
    ds.attrs.update(
        {
            "n_samples": store_a.n,
            "settings": json.dumps(asdict(settings)),
            "metric_definitions": json.dumps(definitions(settings.metrics, options)),
            "no_bootstrap": json.dumps(
                {m: REGISTRY[m].no_bootstrap for m in settings.metrics if REGISTRY[m].no_bootstrap}
            ),
            "prunesim_version": prunesim.__version__,
            "environment": json.dumps(describe(_device_name(settings.backend.name))),
            **(attrs or {}),
        }
    )
    return ds
