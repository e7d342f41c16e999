"""Record layer outputs on the probe set into a chunked zarr (v3) store, batch by batch.

One store per model, one array per recorded layer of shape ``(n, ...)``, chunked along the
sample axis (one chunk per batch, so every write is a whole chunk) and Blosc-compressed. The
group attribute ``manifest`` is written last and marks the store complete; the store itself is
written to a temporary path and renamed into place.

Integrity: the manifest records each array's shape and chunking and a CRC-32 of every chunk's
values, and :class:`ActivationStore` checks each chunk against it as it streams the chunk, so
checking costs no second pass. A chunk that is missing (zarr would return its fill value;
the fill value is NaN, never a plausible activation), damaged or replaced is refused with
the path, layer and samples.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from zarr.codecs import BloscCodec

import prunesim
from prunesim.io import InputFileError, atomic_path, first_line

if TYPE_CHECKING:  # torch is imported only where a model runs: comparing stores needs none
    import torch
    from torch import nn

log = logging.getLogger(__name__)

MANIFEST = "manifest"
FORMAT = "prunesim.activations/2"  # /2: per-chunk checksums, NaN fill value


class IncompleteStoreError(InputFileError):
    """The store is not a complete activation store: no manifest, another format, or arrays
    that differ from what the manifest records."""


class DamagedStoreError(InputFileError):
    """A chunk of the store is missing or its values differ from the manifest's checksum."""


def chunk_checksum(values: np.ndarray) -> int:
    """CRC-32 of a chunk's float32 values (C order), as the manifest records it."""
    return zlib.crc32(np.ascontiguousarray(values, dtype=np.float32).data)


def record_activations(
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
    checksums: dict[str, list[int]] = {name: [] for name in layers}

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
                            fill_value=np.nan,
                            compressors=compressor,
                            dimension_names=("sample", *_feature_dims(name, batch.ndim)),
                        )
                        arrays[name].attrs.update(
                            {"layer": name, "module": type(modules[name]).__name__}
                        )
                    arrays[name][start : start + len(batch)] = batch
                    checksums[name].append(chunk_checksum(batch))
            group.attrs[MANIFEST] = {
                "format": FORMAT,
                "complete": True,
                "layers": list(layers),
                "n": n,
                "arrays": {
                    name: {
                        "shape": list(arrays[name].shape),
                        "chunk": batch_size,
                        "crc32": checksums[name],
                    }
                    for name in layers
                },
                "prunesim_version": prunesim.__version__,
                **attrs,
            }
    finally:
        for handle in handles:
            handle.remove()


def _feature_dims(layer: str, ndim: int) -> tuple[str, ...]:
    """Names of a layer output's non-sample axes, ``{layer}_channel``/``_height``/``_width``
    or ``{layer}_feature``: per layer, since layers differ in size (``xarray.open_zarr``)."""
    axes = (
        ("channel", "height", "width") if ndim == 4 else tuple(f"axis{i}" for i in range(1, ndim))
    )
    return tuple(f"{layer}_{axis}" for axis in (("feature",) if ndim == 2 else axes))


@dataclass(frozen=True)
class ActivationStore:
    """Read access to a complete activation store; every read is checked against the
    manifest's checksums."""

    path: Path
    group: zarr.Group
    manifest: dict

    @property
    def layers(self) -> list[str]:
        return list(self.manifest["layers"])

    @property
    def n(self) -> int:
        return int(self.manifest["n"])

    def shape(self, layer: str) -> tuple[int, ...]:
        return tuple(self.manifest["arrays"][layer]["shape"])

    def chunk_size(self) -> int:
        return int(self.manifest["arrays"][self.layers[0]]["chunk"])

    def read(self, layer: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start:stop`` of ``layer``, read whole chunk by whole chunk, each checked
        against its recorded CRC-32; a :class:`DamagedStoreError` names the first bad one."""
        stop = self.n if stop is None else min(stop, self.n)
        size = int(self.manifest["arrays"][layer]["chunk"])
        first, last = start // size, max(start, stop - 1) // size
        parts = [self._checked_chunk(layer, k, size) for k in range(first, last + 1)]
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return block[start - first * size : stop - first * size]

    def load(self, layer: str) -> np.ndarray:
        """The whole layer (checked)."""
        return self.read(layer)

    def _checked_chunk(self, layer: str, k: int, size: int) -> np.ndarray:
        start, stop = k * size, min((k + 1) * size, self.n)
        where = f"activation store {str(self.path)!r}, layer {layer!r}, samples {start}-{stop - 1}"
        try:
            values = self.group[layer][start:stop]
        except Exception as err:  # zarr/numcodecs raise many types for a damaged chunk
            raise DamagedStoreError(
                f"{where}: chunk cannot be read ({type(err).__name__}: {first_line(err)}); "
                "the store is damaged: delete it and extract again"
            ) from err
        if chunk_checksum(values) != self.manifest["arrays"][layer]["crc32"][k]:
            problem = "missing (read as fill values)" if np.isnan(values).all() else "damaged"
            raise DamagedStoreError(
                f"{where}: chunk is {problem}, its values differ from the manifest's checksum; "
                "delete the store and extract again"
            )
        return values


def _summary(recorded: dict | None) -> str:
    if recorded is None:
        return "no entry for it"
    return (
        f"shape {tuple(recorded['shape'])}, {recorded['chunk']} samples a chunk, "
        f"{len(recorded['crc32'])} checksums"
    )


def open_activations(path: str | os.PathLike[str]) -> ActivationStore:
    """Open a store written by :func:`record_activations`; refuse incomplete or foreign
    ones, and ones whose arrays differ from what the manifest records."""
    path = Path(path)
    name = f"activation store {str(path)!r}"
    if not path.exists():
        raise IncompleteStoreError(f"{name} does not exist")
    try:
        group = zarr.open_group(path, mode="r")
        manifest = group.attrs.get(MANIFEST)
    except Exception as err:  # zarr raises several types for a non-store folder
        raise IncompleteStoreError(
            f"{name} is not a readable zarr store ({type(err).__name__}: {first_line(err)})"
        ) from err
    if not manifest or not manifest.get("complete"):
        raise IncompleteStoreError(
            f"{name} has no complete manifest; it was not written to the end: delete it and "
            "extract again"
        )
    if manifest.get("format") != FORMAT:
        raise IncompleteStoreError(
            f"{name} has format {manifest.get('format')!r}, expected {FORMAT!r}: extract again"
        )
    for layer in manifest["layers"]:
        _check_array(group, manifest, layer, name)
    return ActivationStore(path, group, manifest)


def _check_array(group: zarr.Group, manifest: dict, layer: str, name: str) -> None:
    """The array of ``layer`` exists with the recorded shape, chunking and checksum count."""
    recorded = manifest["arrays"].get(layer)
    try:
        array = group[layer]
    except Exception as err:
        raise IncompleteStoreError(
            f"{name}: layer {layer!r} is in the manifest but its array cannot be opened "
            f"({type(err).__name__}: {first_line(err)})"
        ) from err
    chunks = -(-manifest["n"] // recorded["chunk"]) if recorded else None
    if (
        recorded is None
        or list(array.shape) != recorded["shape"]
        or array.shape[0] != manifest["n"]
        or array.chunks[0] != recorded["chunk"]
        or len(recorded["crc32"]) != chunks
        or array.dtype != np.float32
    ):
        raise IncompleteStoreError(
            f"{name}: layer {layer!r} has shape {array.shape}, chunks {array.chunks} and dtype "
            f"{array.dtype}, which differ from the manifest ({_summary(recorded)}): extract again"
        )
    written = array.nchunks_initialized  # a listing, no data read
    if written != array.nchunks:
        raise IncompleteStoreError(
            f"{name}: layer {layer!r} has {written} of its {array.nchunks} chunks; the store "
            "is damaged: delete it and extract again"
        )
