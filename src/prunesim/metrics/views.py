"""Views: how a layer's output becomes the ``n × p`` matrix the metrics compare.

For conv outputs ``(n, C, H, W)``: ``flatten`` is ``n × C·H·W`` (every unit at every position a
neuron), ``gap`` (global average pool) is ``n × C``, ``channels`` is ``n·H·W × C`` (every
spatial position of every image a sample, the seed study's convention for CCA; only layers of
equal H × W can be compared). Outputs that are already ``n × p`` are the same under every view.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


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


def to_numpy(x) -> np.ndarray:
    """A numpy or torch array (any device, any float dtype) as a numpy array, without
    importing torch; half precision becomes float32 (numpy has no bfloat16)."""
    if hasattr(x, "detach"):
        if x.dtype.is_complex:
            raise ValueError(f"a representation must hold real numbers, got {x.dtype}")
        x = x.detach().cpu()
        return (
            x.float().numpy() if x.dtype.is_floating_point and x.element_size() < 4 else x.numpy()
        )
    return np.asarray(x)


def apply_view(x, view: str | None) -> np.ndarray:
    """``x`` (``n × p``, or a conv output ``n × C × H × W``) as an ``n × p`` matrix under
    ``view``; ``None`` accepts only what is already ``n × p``."""
    x = to_numpy(x)
    if view is None:
        if x.ndim > 2:
            raise ValueError(
                f"a representation of shape {x.shape} needs a view to become n × p: "
                f"view= one of {list(VIEWS)}"
            )
        return x
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {list(VIEWS)}")
    if x.ndim < 2:
        raise ValueError(f"a layer output must have a sample axis and features, got {x.shape}")
    return VIEWS[view](x)


def rows_per_sample(x, view: str | None) -> int:
    """How many rows of ``apply_view(x, view)`` one sample (image) gives: H × W under
    ``channels``, else 1. Resampling and permuting must move those rows together."""
    shape = np.shape(x) if not hasattr(x, "detach") else tuple(x.shape)
    return int(np.prod(shape[2:])) if view == "channels" and len(shape) > 2 else 1
