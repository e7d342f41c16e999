"""Model checkpoints and masks: torch files that carry a digest of their tensors and, for
models, their architecture and provenance, so any saved model rebuilds exactly and a file that
is truncated, damaged, or of another model is refused by the job that reads it.

A flipped byte inside a tensor of a ``torch.save`` file loads without complaint (the zip
records are not checked), so the digest of every tensor's bytes is saved with them and
compared on load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from prunesim.io import InputFileError, atomic_path, first_line
from prunesim.models import rebuild

CHECKPOINT_FORMAT = "prunesim.checkpoint/2"
MASKS_FORMAT = "prunesim.masks/2"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of every tensor's name, dtype, shape and bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}:{value.dtype}:{tuple(value.shape)}\n".encode())
        sha.update(value.reshape(-1).view(torch.uint8).numpy())
    return sha.hexdigest()


def save_tensor_file(path: str | Path, fmt: str, tensors: dict[str, torch.Tensor], **extra):
    """``{format, tensors, digest, **extra}`` to ``path``, atomically."""
    tensors = {k: v.detach().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        torch.save(
            {"format": fmt, "tensors": tensors, "digest": tensor_digest(tensors), **extra}, tmp
        )


def load_tensor_file(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """The content saved by :func:`save_tensor_file` in format ``fmt``; an
    :class:`InputFileError` naming ``path`` if it is missing, unreadable, of another format
    or its tensors differ from their digest."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} {str(path)!r} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises EOFError, RuntimeError, UnpicklingError, ...
        raise InputFileError(
            f"{what} {str(path)!r} cannot be read ({_reason(err)}); it is truncated or damaged: "
            "delete it and rerun the job that writes it"
        ) from None
    if not isinstance(content, dict) or content.get("format") != fmt:
        found = content.get("format") if isinstance(content, dict) else type(content).__name__
        raise InputFileError(
            f"{what} {str(path)!r} has format {found!r}, expected {fmt!r}: rerun the job that "
            "writes it"
        )
    if tensor_digest(content["tensors"]) != content["digest"]:
        raise InputFileError(
            f"{what} {str(path)!r} is damaged: its tensors differ from the digest saved with "
            "them; delete it and rerun the job that writes it"
        )
    return content


def _reason(err: BaseException) -> str:
    """A short cause, without torch's advice to load the file unsafely (weights_only=False)."""
    text = first_line(err)
    if not text:
        text = "the file ends early" if isinstance(err, EOFError) else ""
    if "weights_only" in text or "pickle" in type(err).__module__:
        text = "it holds something other than tensors and plain values"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def save_checkpoint(model: torch.nn.Module, path: str | Path, provenance: dict) -> None:
    save_tensor_file(
        path, CHECKPOINT_FORMAT, model.state_dict(), arch=model.arch, provenance=provenance
    )


def load_checkpoint(
    path: str | Path, expect: dict | None = None, arch: str | None = None
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the exact architecture saved in ``path`` and load its weights.

    ``expect`` (e.g. ``{"seed": 0, "method": "imp", "round": 2}``) must agree with the
    checkpoint's provenance and ``arch`` with its architecture's name: a checkpoint of
    another model is refused, not extracted or pruned.
    """
    content = load_tensor_file(path, CHECKPOINT_FORMAT, "checkpoint")
    provenance, architecture = content["provenance"], content["arch"]
    wrong = {k: provenance.get(k) for k, v in (expect or {}).items() if provenance.get(k) != v}
    if arch is not None and architecture.get("name") != arch:
        wrong["model"] = architecture.get("name")
    if wrong:
        wanted = {**(expect or {}), **({"model": arch} if arch else {})}
        raise InputFileError(
            f"checkpoint {str(path)!r} is of another model: "
            + ", ".join(f"{k} {v!r} where {wanted[k]!r} was expected" for k, v in wrong.items())
        )
    net = rebuild(architecture)
    try:
        net.load_state_dict(content["tensors"])
    except RuntimeError as err:
        raise InputFileError(
            f"checkpoint {str(path)!r}: its weights do not fit its architecture ({first_line(err)})"
        ) from None
    return net, provenance
