"""Every torchvision dataset the pipeline reads, from small files written here in the
dataset's own on-disk format and read through the pipeline's loader
(``prunesim.data.load_splits``, which calls the torchvision class).

MNIST and Fashion-MNIST: torchvision only checks that the idx files exist, so the files are
decoded exactly as in a real run. CIFAR-10 and SVHN: before decoding, torchvision compares
each file's MD5 with the published files' checksums, which small files cannot match; that one
check is bypassed here (``check_integrity`` in the class's module returns True) and
everything after it runs as in a real run: unpickling the batches and the metadata, reading
the .mat file, the transposes to N x C x H x W, SVHN's label 10 for the digit 0. That files
failing the check are refused, naming the dataset and folder, is tested in test_data.py.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io
import torch

import prunesim.training as training
from prunesim.data import DataNotFoundError, DataSettings, check_available, load_splits
from prunesim.training import TrainSettings, train

N_TRAIN, N_TEST = 24, 12


def _images(n: int, shape: tuple[int, ...], seed: int, low: int, high: int) -> np.ndarray:
    """Distinct uint8 images; train and test drawn from different intensity ranges, so that
    statistics computed from the wrong split would show."""
    return np.random.default_rng(seed).integers(low, high, size=(n, *shape), dtype=np.uint8)


def _labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.arange(n) % 10).astype(np.int64)


def _write_idx(path, array: np.ndarray) -> None:
    """The idx format (LeCun): a big-endian magic (0x0000, type 0x08 = uint8, number of
    dimensions), each dimension as a big-endian int32, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root, folder: str, train_x, train_y, test_x, test_y) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)


def _write_cifar10(root, train_x, train_y, test_x, test_y) -> None:
    """Python pickles as in cifar-10-batches-py: per batch a dict with 'data' (N x 3072, the
    red plane, then green, then blue, each row-major) and 'labels'; five training batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    parts = np.array_split(np.arange(len(train_x)), 5)
    batches = [(f"data_batch_{i + 1}", train_x[idx], train_y[idx]) for i, idx in enumerate(parts)]
    for name, x, y in [*batches, ("test_batch", test_x, test_y)]:
        entry = {"data": x.reshape(len(x), -1), "labels": y.tolist(), "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(entry))
    names = ["airplane", "automobile", "bird", "cat", "deer"]
    names += ["dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))


def _write_svhn(root, train_x, train_y, test_x, test_y) -> None:
    """MATLAB files as SVHN's cropped digits: 'X' is H x W x C x N, 'y' is N x 1 with the
    digit 0 stored as 10."""
    for name, x, y in (("train_32x32.mat", train_x, train_y), ("test_32x32.mat", test_x, test_y)):
        stored = np.where(y == 0, 10, y).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(root / name, {"X": x.transpose(2, 3, 1, 0), "y": stored})


def _skip_checksums(monkeypatch, module: str) -> None:
    import importlib

    monkeypatch.setattr(importlib.import_module(module), "check_integrity", lambda *a, **k: True)


FORMATS = {
    # name: (shape, writer, module whose MD5 check is bypassed or None)
    "mnist": ((1, 28, 28), lambda root, *a: _write_mnist(root, "MNIST", *a), None),
    "fashion_mnist": ((1, 28, 28), lambda root, *a: _write_mnist(root, "FashionMNIST", *a), None),
    "cifar10": ((3, 32, 32), _write_cifar10, "torchvision.datasets.cifar"),
    "svhn": ((3, 32, 32), _write_svhn, "torchvision.datasets.svhn"),
}


def _written(tmp_path, monkeypatch, name: str):
    shape, write, checked_by = FORMATS[name]
    train_x, test_x = _images(N_TRAIN, shape, 1, 0, 128), _images(N_TEST, shape, 2, 128, 256)
    train_y, test_y = _labels(N_TRAIN, 3), _labels(N_TEST, 4)
    write(tmp_path, train_x, train_y, test_x, test_y)
    if checked_by:
        _skip_checksums(monkeypatch, checked_by)
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_files_in_the_datasets_own_format_decode_to_the_written_images_and_labels(
    name, tmp_path, monkeypatch
):
    train_x, train_y, test_x, test_y = _written(tmp_path, monkeypatch, name)
    settings = DataSettings(name=name, data_root=str(tmp_path), probe_size=N_TEST)
    check_available(settings)  # the files the config check asks for are the ones written
    splits = load_splits(settings)
    assert splits.train_x.dtype == np.uint8 and splits.train_y.dtype == np.int64
    assert splits.train_x.shape == (N_TRAIN, *FORMATS[name][0])
    assert splits.num_classes == 10
    # the train files become the training set and the test files the test set, pixel for pixel
    np.testing.assert_array_equal(splits.train_x, train_x)
    np.testing.assert_array_equal(splits.test_x, test_x)
    np.testing.assert_array_equal(splits.train_y, train_y)
    np.testing.assert_array_equal(splits.test_y, test_y)
    assert 0 in splits.test_y.tolist() + splits.train_y.tolist()  # SVHN's 10 read back as 0


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_normalisation_uses_the_training_images_only(name, tmp_path, monkeypatch):
    train_x, _, test_x, _ = _written(tmp_path, monkeypatch, name)
    splits = load_splits(DataSettings(name=name, data_root=str(tmp_path)))
    mean, std = splits.channel_stats()
    pixels = train_x.astype(np.float64).transpose(1, 0, 2, 3).reshape(train_x.shape[1], -1) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=1))
    np.testing.assert_allclose(std, pixels.std(axis=1))
    assert (mean < 0.5).all()  # the test images (128..255) would pull it above


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_missing_folder_names_it_and_how_to_fill_it(name, tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        check_available(DataSettings(name=name, data_root=str(tmp_path / "absent")))
    message = str(err.value)
    assert str(tmp_path / "absent") in message and "download=True" in message


def test_training_augments_training_batches_and_never_the_test_set(tmp_path, monkeypatch):
    """CIFAR-10-format data trained with crop-and-flip augmentation: every batch that reaches
    the augmentation holds training images only, and the test accuracy is measured on the
    test images as stored."""
    train_x, train_y, test_x, test_y = _written(tmp_path, monkeypatch, "cifar10")
    splits = load_splits(DataSettings(name="cifar10", data_root=str(tmp_path)))
    augmented = []
    original = training._augment

    def recording(images, kind, generator):
        augmented.append(images.clone())
        return original(images, kind, generator)

    monkeypatch.setattr(training, "_augment", recording)
    evaluated = []
    evaluate = training.loss_and_accuracy

    def recording_evaluation(model, x, y, normalize, batch_size):
        evaluated.append(x.clone())
        return evaluate(model, x, y, normalize, batch_size)

    monkeypatch.setattr(training, "loss_and_accuracy", recording_evaluation)
    from prunesim.models import build_model

    torch.manual_seed(0)
    model = build_model("lenet5", 3, 10, 32)
    settings = TrainSettings(epochs=1, batch_size=8, augment="crop_flip", lr=0.01)
    train(model, splits, settings, seed=0, device=torch.device("cpu"))
    train_rows = {bytes(row) for row in train_x.reshape(N_TRAIN, -1)}
    test_rows = {bytes(row) for row in test_x.reshape(N_TEST, -1)}
    seen = {bytes(row) for batch in augmented for row in batch.numpy().reshape(len(batch), -1)}
    assert seen == train_rows and not seen & test_rows
    assert len(evaluated) == 1
    np.testing.assert_array_equal(evaluated[0].numpy(), test_x)
