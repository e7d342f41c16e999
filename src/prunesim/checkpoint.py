"""Model checkpoints that carry their architecture, so any saved model rebuilds exactly."""

from __future__ import annotations

from pathlib import Path

import torch

from prunesim.io import atomic_path
from prunesim.models import rebuild


def save_checkpoint(model: torch.nn.Module, path: str | Path, provenance: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(
            {"arch": model.arch, "state_dict": model.state_dict(), "provenance": provenance}, tmp
        )


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the exact architecture saved in ``path`` and load its weights."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = rebuild(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt["provenance"]
