"""Job: record a model's layer outputs on the experiment's probe set (rule extract_activations)."""

from __future__ import annotations

import numpy as np
import torch

from prunesim.activations import record_activations
from prunesim.checkpoint import load_checkpoint
from prunesim.data import Normalizer, Splits, array_digest, load_prepared
from prunesim.jobs import setup
from prunesim.models import recorded_layers


def probe_images(splits: Splits, probe: np.ndarray, device: torch.device):
    """The experiment's fixed probe set, normalised like the training data, and its digest."""
    images, labels = splits.test_x[probe], splits.test_y[probe]
    normalize = Normalizer(*splits.channel_stats(), device=device)
    return normalize(torch.as_tensor(images, device=device)), array_digest(images, labels)


def extract_activations(
    data_file: str,
    in_model: str,
    out_store: str,
    batch_size: int = 500,
    device: str = "auto",
    threads: int = 1,
    expect: dict | None = None,
    arch: str | None = None,
) -> None:
    """Record every recorded layer of the model at ``in_model`` on the probe set.

    ``expect`` (provenance such as seed, method, round) and ``arch`` (the architecture's
    name) are checked against the checkpoint: a checkpoint of another model is refused."""
    dev = setup(threads, 0, device)
    splits, probe = load_prepared(data_file)
    net, provenance = load_checkpoint(in_model, expect=expect, arch=arch)
    images, digest = probe_images(splits, probe, dev)
    record_activations(
        net.to(dev),
        recorded_layers(net),
        images,
        out_store,
        batch_size=batch_size,
        attrs={"probe_digest": digest, "model_path": str(in_model), "model": provenance},
    )
