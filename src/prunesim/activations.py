"""A model's layer outputs on the probe set: recorded into a chunked zarr (v3) store batch by
batch, or held in memory for a notebook comparison.

One store per model, one array per recorded layer of shape ``(n, ...)``, chunked along the
sample axis (one chunk per batch, so every write is a whole chunk) and Blosc-compressed. The
group attribute ``manifest`` is written last and marks the store complete; the store itself is
written to a temporary path and renamed into place.

Integrity: the manifest records each array's shape and chunking and a CRC-32 of every chunk's
values, and :class:`ActivationStore` checks each chunk against it as it streams the chunk, so
checking costs no second pass. A chunk that is missing (zarr would return its fill value;
the fill value is NaN, never a plausible activation), damaged or replaced is refused with
the path, layer and samples.

:func:`layer_outputs` (the forward hooks) also feeds :mod:`prunesim.comparison`'s in-memory
comparisons; this module imports nothing of the metrics, so extraction's code digest does not
change with them. zarr is imported only where a store is written or
opened, and torch only where a model runs: the in-memory path needs neither.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import prunesim
from prunesim.io import InputFileError, atomic_path, first_line, progress

if TYPE_CHECKING:
    import torch
    import zarr
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


def layer_outputs(
    models: list[nn.Module], layers: list[list[str]], batches: Iterable, skip_unusable: bool = False
) -> Iterator[list[dict[str, np.ndarray]]]:
    """Run every batch through every model (eval mode, no gradients) and yield, per batch, each
    model's ``{layer: output}`` as float32 numpy arrays. Each model runs on its own device
    (where its first parameter is); a batch is moved there, float inputs in the model's
    precision. The models see the same batches in the same order, so a shuffling data loader
    still pairs their samples.

    A layer that runs twice in a forward pass (a module used at two places), never runs, or
    gives no tensor is an error; with ``skip_unusable`` (layers chosen by default, not by the
    caller) it is left out from the first batch on, and logged."""
    import torch

    hooks = []
    outputs: list[dict[str, np.ndarray]] = [{} for _ in models]
    unusable: list[dict[str, str]] = [{} for _ in models]

    def hook_for(name: str, out: dict, bad: dict):
        def hook(module, inputs, output):
            if name in bad:
                return
            problem = (
                "ran twice in one forward pass (a module used at two places)"
                if name in out
                else None
                if isinstance(output, torch.Tensor)
                else f"gives a {type(output).__name__}, not a tensor"
            )
            if problem:
                if not skip_unusable:
                    raise RuntimeError(
                        f"module {name!r} {problem}: record it by another module, or leave it out"
                    )
                bad[name] = problem
                out.pop(name, None)
                return
            # Copy now: an in-place op later in the pass (ReLU(inplace=True), x += shortcut)
            # would otherwise change what is stored.
            out[name] = output.detach().to("cpu", torch.float32, copy=True).numpy()

        return hook

    modes = [model.training for model in models]
    try:
        for model, names, out, bad in zip(models, layers, outputs, unusable, strict=True):
            modules = dict(model.named_modules())
            unknown = [name for name in names if name not in modules]
            if unknown:
                raise ValueError(
                    f"layers {unknown} are not modules of the model; its modules are "
                    f"{[n for n in modules if n][:12]}{' …' if len(modules) > 13 else ''}"
                )
            hooks += [
                modules[name].register_forward_hook(hook_for(name, out, bad)) for name in names
            ]
            model.eval()
        places = [_place_of(model) for model in models]
        with torch.inference_mode():
            for k, batch in enumerate(batches):
                for model, names, out, bad, (device, dtype) in zip(
                    models, layers, outputs, unusable, places, strict=True
                ):
                    out.clear()
                    # float inputs in the model's own precision (a numpy array is float64)
                    model(batch.to(device, dtype if batch.is_floating_point() else None))
                    silent = [name for name in names if name not in out and name not in bad]
                    if silent and (k or not skip_unusable):
                        raise RuntimeError(f"layers {silent} did not run in the forward pass")
                    for name in silent:
                        bad[name] = "did not run in the forward pass"
                    if k == 0:
                        for name, problem in bad.items():
                            log.info("left out layer %r: it %s", name, problem)
                yield [dict(out) for out in outputs]
    finally:
        for handle in hooks:
            handle.remove()
        for model, mode in zip(models, modes, strict=True):
            model.train(mode)


def _place_of(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    """The device and float dtype of a model's first parameter (or buffer)."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device, tensor.dtype if tensor.is_floating_point() else None
    return torch.device("cpu"), None


def input_batches(data, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of model inputs from a tensor or array (``n × …``, split into ``batch_size``
    rows) or an iterable of batches (a DataLoader: a tensor, or a tuple/list whose first
    element is the inputs, as ``(images, labels)``)."""
    import torch

    if hasattr(data, "shape"):
        data = torch.as_tensor(data)
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size]
        return
    for k, batch in enumerate(data):
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"batch {k} of the data is a {type(batch).__name__}, expected a tensor or a "
                "tuple (inputs, labels, ...) whose first element is a tensor"
            )
        yield batch


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
    import zarr
    from zarr.codecs import BloscCodec

    modules = dict(model.named_modules())
    n = len(images)
    checksums: dict[str, list[int]] = {name: [] for name in layers}
    compressor = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
    batches = progress(input_batches(images, batch_size), -(-n // batch_size), "batches", log)
    with atomic_path(store_path) as tmp:
        group = zarr.open_group(tmp, mode="w")
        arrays: dict[str, zarr.Array] = {}
        start = 0
        for (outputs,) in layer_outputs([model], [layers], batches):
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
            start += len(outputs[layers[0]])
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
            **(attrs or {}),
        }
    log.info("wrote %d layers x %d samples to %s", len(layers), n, store_path)


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
    import zarr

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
