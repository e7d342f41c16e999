"""Shared fixtures: real datasets, real tiny models, real activation stores.

Everything expensive (loading mnist5k, extracting activation stores) is session-scoped so the
whole suite stays fast on a shared CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from prunesim.data import DataSettings, Splits, load_splits
from prunesim.models import build_model

CPU = torch.device("cpu")

# One intra-op thread: the tests run on a small, shared CPU where a second thread mostly adds
# contention (and a fixed thread count keeps CPU results bit-reproducible).
torch.set_num_threads(1)

# A small synthetic problem: 28x28 greyscale, 10 classes, learnable in a few epochs.
SYNTHETIC = {
    "image_size": 28,
    "channels": 1,
    "num_classes": 10,
    "train_size": 256,
    "test_size": 128,
    "noise": 0.35,
}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def mnist5k_splits() -> Splits:
    """The real embedded mnist5k dataset with the default split (test_fraction 0.2, seed 0)."""
    return load_splits(DataSettings(name="mnist5k", test_fraction=0.2, split_seed=0))


@pytest.fixture(scope="session")
def synthetic_settings() -> DataSettings:
    return DataSettings(name="synthetic", probe_size=64, synthetic=dict(SYNTHETIC))


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_settings: DataSettings) -> Splits:
    return load_splits(synthetic_settings)


@pytest.fixture
def make_model() -> Callable[..., nn.Module]:
    """Build a registered model with weights fixed by ``seed`` (CPU, train mode)."""

    def make(
        name: str = "lenet5",
        seed: int = 0,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 28,
    ) -> nn.Module:
        torch.manual_seed(seed)
        return build_model(name, in_channels, num_classes, image_size)

    return make


def _normalised_images(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen)


@pytest.fixture(scope="session")
def probe_images() -> torch.Tensor:
    """64 normalised random 28x28 images (a stand-in probe set)."""
    return _normalised_images(64, seed=7)


@pytest.fixture(scope="session")
def lenet_stores(tmp_path_factory, probe_images) -> dict[str, Path]:
    """Real activation stores of two differently seeded lenet5s on the same probe set, and one
    store whose manifest carries a different probe digest."""
    from prunesim.activations import record_activations

    root = tmp_path_factory.mktemp("stores")
    paths = {}
    for key, seed, digest in (("a", 0, "probe-1"), ("b", 1, "probe-1"), ("other", 2, "probe-2")):
        torch.manual_seed(seed)
        model = build_model("lenet5", 1, 10, 28)
        paths[key] = root / f"{key}.zarr"
        record_activations(
            model,
            list(model.recorded_layers),
            probe_images,
            paths[key],
            batch_size=32,
            attrs={"probe_digest": digest},
        )
    return paths


@pytest.fixture(scope="session")
def finished_smoke_run(tmp_path_factory) -> Path:
    """The smoke config run to the end once per test session; copy it (smoke_workflow.copy_run)
    before changing anything in it."""
    from smoke_workflow import CONFIG, copy_workflow, snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("finished_smoke"))
    done = snakemake(workdir, "--configfile", CONFIG)
    (workdir / "console.txt").write_text(done.stdout + done.stderr)  # what the user saw
    return workdir
