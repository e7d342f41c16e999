"""Calibration of similarity values against chance and against the choice of probe images.

* **Chance level** (permutation null): the metric of the same two layers after the probe
  images of the second are put in a random order, which keeps each layer's own geometry and
  breaks only the correspondence of samples. Summarised per value as the null's mean and
  standard deviation and a one-sided permutation p-value, ``(1 + #{null at least as similar as
  the value}) / (1 + permutations)``.
* **Interval** (bootstrap over probe images): the metric after the probe images are drawn with
  replacement, both layers with the same draw, re-centred; summarised as the standard error,
  the bias, and the normal interval around the value (:func:`summarize` says why not the
  percentiles).

Both run the metrics' own code (:mod:`prunesim.metrics`) on the layers' samples held in memory
(the streaming policy keeps them when calibrating): the stores are never read again. A
permutation reuses everything of each layer that the order of samples does not change
(covariance, norms, rank, spectra; :meth:`LayerFactors.reordered`), so only the pair's products
are computed again; a bootstrap resample changes the layers themselves, so their factors are
computed again from the resampled samples.

Samples are images: under the ``channels`` view, where each image gives one row per spatial
position, an image's rows move together. The draws are seeded by the calibration seed alone, so
every pair, view and comparison sees the same permutations and resamples (common random
numbers: differences between layers are not differences between draws).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from prunesim.metrics.factors import LayerFactors, PairFactors, Repeats
from prunesim.metrics.streaming import Policy, array_side, stream

PERMUTATION_STREAM, BOOTSTRAP_STREAM = 0, 1  # seed-sequence keys of the two kinds of draw


@dataclass(frozen=True)
class Calibration:
    """How many permutations and bootstrap resamples, their seed, and the interval's level."""

    permutations: int = 0
    bootstrap: int = 0
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.permutations < 0 or self.bootstrap < 0:
            raise ValueError(
                f"permutations and bootstrap must be >= 0, got {self.permutations} and "
                f"{self.bootstrap}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @property
    def active(self) -> bool:
        return self.permutations > 0 or self.bootstrap > 0

    def orders(self, images: int) -> np.ndarray:
        """``permutations × images``: each row a random order of the images."""
        rng = np.random.default_rng([self.seed, PERMUTATION_STREAM, images])
        return np.array([rng.permutation(images) for _ in range(self.permutations)], dtype=np.intp)

    def resamples(self, images: int) -> np.ndarray:
        """``bootstrap × images``: each row ``images`` draws with replacement."""
        rng = np.random.default_rng([self.seed, BOOTSTRAP_STREAM, images])
        return rng.integers(0, images, size=(self.bootstrap, images), dtype=np.intp)


def image_rows(images: np.ndarray, rows_per_image: int) -> np.ndarray:
    """Row indices of whole images, in the given image order: an image's ``rows_per_image``
    rows (its spatial positions under the channels view) stay together and in order."""
    if rows_per_image == 1:
        return images
    return (images[:, None] * rows_per_image + np.arange(rows_per_image)).ravel()


def resampled(layer: LayerFactors, rows: np.ndarray, policy: Policy) -> LayerFactors:
    """The layer's factors computed again from its samples ``rows`` (drawn with replacement):
    re-centred, and neurons that do not vary in the draw left out, as for any data.

    A layer wider than its samples (Gram route) gets its Gram matrix from the original one,
    ``C K[rows, rows] C`` with C the centring matrix (O(n²) instead of O(n² p)): re-centring
    is that product, and a neuron constant in the draw adds exactly zero to it. Its bases are
    eigendecompositions of the distinct samples' Gram matrix (:class:`Repeats`)."""
    if layer.stats.data is None:
        raise ValueError("resampling a layer needs its kept data")
    side = array_side(layer.stats.data[rows])
    drawn = LayerFactors(
        stream(side, None, [], policy).stats_a["x"], layer.rank_tol, Repeats.of(rows)
    )
    if layer.has_gram and drawn.gram_route:
        gram = layer.gram[np.ix_(rows, rows)]
        gram -= gram.mean(axis=0)
        gram -= gram.mean(axis=1)[:, None]
        drawn.__dict__["gram"] = gram
    return drawn


# (index of the pair in the list, its factors under one draw) -> the values of that draw
Evaluate = Callable[[int, PairFactors], Iterable[float]]


def permutation_draws(
    pairs: list[tuple[LayerFactors, LayerFactors]],
    evaluate: Evaluate,
    orders: np.ndarray,
    rows_per_image: int,
    keep_directions: bool = False,
) -> np.ndarray:
    """``evaluate`` on every pair with the second layer's images in each of ``orders``:
    an array ``pairs × values × permutations``."""
    draws: list[list[list[float]]] = [[] for _ in pairs]
    for order in orders:
        rows = image_rows(order, rows_per_image)
        moved: dict[int, LayerFactors] = {}  # a layer shared by several pairs moves once
        for index, (a, b) in enumerate(pairs):
            if id(b) not in moved:
                moved[id(b)] = b.reordered(rows)
            pair = PairFactors(a, moved[id(b)], None, keep_directions=keep_directions)
            draws[index].append(list(evaluate(index, pair)))
    return _stacked(draws, len(orders))


def bootstrap_draws(
    pairs: list[tuple[LayerFactors, LayerFactors]],
    evaluate: Evaluate,
    resamples: np.ndarray,
    rows_per_image: int,
    policy: Policy,
    keep_directions: bool = False,
) -> np.ndarray:
    """``evaluate`` on every pair with both layers' images drawn by each of ``resamples``:
    an array ``pairs × values × resamples``."""
    policy = replace(policy, keep_samples=True, cross_memory_mb=None)
    draws: list[list[list[float]]] = [[] for _ in pairs]
    for draw in resamples:
        rows = image_rows(draw, rows_per_image)
        drawn: dict[int, LayerFactors] = {}  # each layer is resampled once per draw
        for index, (a, b) in enumerate(pairs):
            for layer in (a, b):
                if id(layer) not in drawn:
                    drawn[id(layer)] = resampled(layer, rows, policy)
            pair = PairFactors(drawn[id(a)], drawn[id(b)], None, keep_directions=keep_directions)
            draws[index].append(list(evaluate(index, pair)))
    return _stacked(draws, len(resamples))


def _stacked(draws: list[list[list[float]]], count: int) -> np.ndarray:
    """pairs × draws × values → pairs × values × draws."""
    if not draws:
        return np.zeros((0, 0, count))
    return np.asarray(draws, dtype=np.float64).reshape(len(draws), count, -1).transpose(0, 2, 1)


@dataclass
class Summary:
    """Per value: the permutation null's mean, std and p-value, the chance-corrected value,
    and the bootstrap's standard error, bias and interval. NaN where not computed or
    undefined."""

    null_mean: np.ndarray
    null_std: np.ndarray
    p_value: np.ndarray
    corrected: np.ndarray
    bootstrap_std: np.ndarray
    bootstrap_bias: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray


def normal_quantile(confidence: float) -> float:
    """z with a central ``confidence`` share of a standard normal within ±z (1.96 at 0.95)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def chance_corrected(values, null_mean, perfect):
    """(value - chance) / (perfect - chance): 0 at the chance level, 1 for identical
    representations, for a similarity and a distance alike (arrays or DataArrays)."""
    return (values - null_mean) / (perfect - null_mean)


def summarize(
    values: np.ndarray,
    null: np.ndarray | None,
    boot: np.ndarray | None,
    perfect: np.ndarray,
    confidence: float,
) -> Summary:
    """Summaries of draws along the last axis. ``values``: the observed values (any shape S);
    ``null``, ``boot``: S × draws; ``perfect``: broadcastable to S, each metric's value for
    identical representations (1 for a similarity, 0 for a distance), which sets which
    direction is "more similar" and the scale of the chance correction.

    The interval is the normal one around the value, ``value ± z × bootstrap_std`` (kept on
    the chance side of ``perfect``), not the bootstrap percentiles: a resample repeats images,
    which lowers the effective number of samples, and metrics whose chance level grows as
    samples get fewer (CCA at ranks near n) then shift as a whole, so that percentile
    intervals can miss the value itself. That shift is reported as ``bootstrap_bias``
    (mean of the resamples − value)."""
    nan = np.full(values.shape, np.nan)
    summary = Summary(*(nan.copy() for _ in range(8)))
    perfect = np.broadcast_to(perfect, values.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        if null is not None and null.shape[-1]:
            finite = np.isfinite(null)
            count = finite.sum(axis=-1)
            enough = (count >= 2) & np.isfinite(values)
            summary.null_mean = np.where(enough, _nanmean(null), np.nan)
            summary.null_std = np.where(enough, _nanstd(null), np.nan)
            # "at least as similar": on the perfect side of the value, with a rounding slack so
            # that ties (e.g. identical layers) count against significance
            slack = 1e-12 * np.maximum(1.0, np.abs(values))[..., None]
            toward = np.sign(perfect - summary.null_mean)[..., None]
            toward = np.where(toward == 0, 1.0, toward)
            as_similar = finite & ((null - values[..., None]) * toward >= -slack)
            summary.p_value = np.where(enough, (1 + as_similar.sum(axis=-1)) / (1 + count), np.nan)
            summary.corrected = chance_corrected(values, summary.null_mean, perfect)
        if boot is not None and boot.shape[-1]:
            enough = (np.isfinite(boot).sum(axis=-1) >= 2) & np.isfinite(values)
            summary.bootstrap_std = np.where(enough, _nanstd(boot), np.nan)
            summary.bootstrap_bias = np.where(enough, _nanmean(boot) - values, np.nan)
            half = normal_quantile(confidence) * summary.bootstrap_std
            low, high = values - half, values + half
            # never beyond a perfect value: below it for a similarity, above it for a distance
            # (a value equal to perfect has identical resamples, so a zero half-width)
            summary.ci_low = np.where(perfect <= values, np.maximum(low, perfect), low)
            summary.ci_high = np.where(perfect >= values, np.minimum(high, perfect), high)
    return summary


def _nanmean(draws: np.ndarray) -> np.ndarray:
    finite = np.isfinite(draws)
    return np.where(finite, draws, 0.0).sum(axis=-1) / finite.sum(axis=-1)


def _nanstd(draws: np.ndarray) -> np.ndarray:
    finite = np.isfinite(draws)
    count = finite.sum(axis=-1)
    centred = np.where(finite, draws - _nanmean(draws)[..., None], 0.0)
    return np.sqrt((centred**2).sum(axis=-1) / (count - 1))
