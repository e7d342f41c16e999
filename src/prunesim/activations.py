"""Record layer outputs on the probe set into a chunked zarr (v3) store, batch by batch.

One store per model, one array per recorded layer of shape ``(n, ...)``, chunked along the
sample axis (one chunk per batch, so every write is a whole chunk) and Blosc-compressed. The
group attribute ``manifest`` is written last and marks the store complete; the store itself is
written to a temporary path and renamed into place.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from zarr.codecs import BloscCodec

import prunesim
from prunesim.io import atomic_path

if TYPE_CHECKING:  # torch is imported only where a model runs: comparing stores needs none
    import torch
    from torch import nn

log = logging.getLogger(__name__)

MANIFEST = "manifest"
FORMAT = "prunesim.activations/1"


class IncompleteStoreError(RuntimeError):
    """The store lacks its manifest: it was not written to the end."""


def extract_activations(
    model: nn.Module,
    layers: list[str],
    images: torch.Tensor,
    store_path: str | os.PathLike[str],
    batch_size: int = 500,
    attrs: dict | None = None,
) -> None:
    """Run ``images`` (already normalised float tensors on the model's device) through
    ``model`` in eval mode and store the outputs of ``layers`` (module names).

    ``attrs`` (JSON-serialisable: probe digest, model provenance) go into the manifest.
    """
    import torch

    with torch.inference_mode():
        _extract(model, layers, images, store_path, batch_size, attrs or {})
    log.info("wrote %d layers x %d samples to %s", len(layers), len(images), store_path)


def _extract(model, layers, images, store_path, batch_size: int, attrs: dict) -> None:
    import torch

    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules]
    if unknown:
        raise ValueError(f"layers {unknown} are not modules of the model")
    outputs: dict[str, np.ndarray] = {}

    def hook_for(name: str):
        def hook(module, inputs, output):
            if name in outputs:
                raise RuntimeError(f"module {name!r} ran twice in one forward pass")
            # Copy now: an in-place op later in the pass (ReLU(inplace=True), x += shortcut)
            # would otherwise change what is stored.
            outputs[name] = output.detach().to("cpu", torch.float32, copy=True).numpy()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    model.eval()
    n = len(images)
    compressor = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    try:
        with atomic_path(store_path) as tmp:
            group = zarr.open_group(tmp, mode="w")
            arrays: dict[str, zarr.Array] = {}
            for start in range(0, n, batch_size):
                outputs.clear()
                model(images[start : start + batch_size])
                for name in layers:
                    batch = outputs[name]
                    if name not in arrays:
                        arrays[name] = group.create_array(
                            name,
                            shape=(n, *batch.shape[1:]),
                            chunks=(batch_size, *batch.shape[1:]),
                            dtype="float32",
                            compressors=compressor,
                        )
                        arrays[name].attrs.update(
                            {"layer": name, "module": type(modules[name]).__name__}
                        )
                    arrays[name][start : start + len(batch)] = batch
            group.attrs[MANIFEST] = {
                "format": FORMAT,
                "complete": True,
                "layers": list(layers),
                "n": n,
                "prunesim_version": prunesim.__version__,
                **attrs,
            }
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class ActivationStore:
    """Read access to a complete activation store."""

    path: Path
    group: zarr.Group
    manifest: dict

    @property
    def layers(self) -> list[str]:
        return list(self.manifest["layers"])

    @property
    def n(self) -> int:
        return int(self.manifest["n"])

    def array(self, layer: str) -> zarr.Array:
        return self.group[layer]

    def load(self, layer: str) -> np.ndarray:
        return self.group[layer][...]

    def chunk_size(self) -> int:
        return int(self.group[self.layers[0]].chunks[0])


def open_activations(path: str | os.PathLike[str]) -> ActivationStore:
    """Open a store written by :func:`extract_activations`; refuse incomplete or foreign ones."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"activation store {str(path)!r} does not exist")
    try:
        group = zarr.open_group(path, mode="r")
    except Exception as err:  # zarr raises several types for a non-store folder
        raise IncompleteStoreError(f"{str(path)!r} is not a zarr store: {err}") from err
    manifest = group.attrs.get(MANIFEST)
    if not manifest or not manifest.get("complete"):
        raise IncompleteStoreError(
            f"activation store {str(path)!r} has no complete manifest; it was not written to "
            f"the end: delete it and extract again"
        )
    if manifest.get("format") != FORMAT:
        raise IncompleteStoreError(
            f"activation store {str(path)!r} has format {manifest.get('format')!r}, "
            f"expected {FORMAT!r}"
        )
    return ActivationStore(path, group, manifest)
