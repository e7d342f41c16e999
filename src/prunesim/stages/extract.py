"""Stage: record a model's layer outputs on the experiment's probe set."""

from __future__ import annotations

import numpy as np
import torch

from prunesim.activations import extract_activations
from prunesim.checkpoint import load_checkpoint
from prunesim.data import Splits, array_digest, load_prepared
from prunesim.models import recorded_layers
from prunesim.stages import setup
from prunesim.train import Normalizer


def probe_images(splits: Splits, probe: np.ndarray, device: torch.device):
    """The experiment's fixed probe set, normalised like the training data, and its digest."""
    images, labels = splits.test_x[probe], splits.test_y[probe]
    normalize = Normalizer(*splits.channel_stats(), device=device)
    return normalize(torch.as_tensor(images, device=device)), array_digest(images, labels)


def extract(
    data_file: str,
    in_model: str,
    out_store: str,
    batch_size: int = 500,
    device: str = "auto",
    threads: int = 1,
    expect: dict | None = None,
    model: str | None = None,
) -> None:
    """Record every recorded layer of the model at ``in_model`` on the probe set.

    ``expect`` (provenance such as seed, method, round) and ``model`` (the architecture's
    name) are checked against the checkpoint: a checkpoint of another model is refused."""
    dev = setup(threads, 0, device)
    splits, probe = load_prepared(data_file)
    net, provenance = load_checkpoint(in_model, expect=expect, model=model)
    images, digest = probe_images(splits, probe, dev)
    extract_activations(
        net.to(dev),
        recorded_layers(net),
        images,
        out_store,
        batch_size=batch_size,
        attrs={"probe_digest": digest, "model_path": str(in_model), "model": provenance},
    )
