"""Tests for the dataset registry, splits, probe sets and digests (prunesim.data)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from prunesim.data import (
    DATASETS,
    DataNotFoundError,
    DataSettings,
    array_digest,
    check_available,
    get_spec,
    load_splits,
    probe_indices,
)

TORCHVISION_DATASETS = sorted(name for name, spec in DATASETS.items() if spec.required_files)


def _rows(images: np.ndarray) -> set[bytes]:
    return {img.tobytes() for img in images}


# --- mnist5k ----------------------------------------------------------------------------------


def test_mnist5k_split_is_class_stratified_400_100_per_class(mnist5k_splits):
    assert np.bincount(mnist5k_splits.train_y, minlength=10).tolist() == [400] * 10
    assert np.bincount(mnist5k_splits.test_y, minlength=10).tolist() == [100] * 10


def test_mnist5k_has_expected_shapes_and_dtypes(mnist5k_splits):
    s = mnist5k_splits
    assert s.train_x.shape == (4000, 1, 28, 28)
    assert s.test_x.shape == (1000, 1, 28, 28)
    assert s.train_x.dtype == np.uint8 and s.test_x.dtype == np.uint8
    assert s.train_y.dtype == np.int64 and s.test_y.dtype == np.int64
    assert (s.num_classes, s.channels, s.image_size) == (10, 1, 28)
    assert len(s.test_x) == get_spec("mnist5k").test_size(DataSettings(name="mnist5k"))
    assert len(s.train_x) == get_spec("mnist5k").train_size(DataSettings(name="mnist5k"))


def test_mnist5k_split_is_disjoint_and_covers_all_images(mnist5k_splits):
    train, test = _rows(mnist5k_splits.train_x), _rows(mnist5k_splits.test_x)
    assert len(train) == 4000 and len(test) == 1000  # the 5,000 images are distinct
    assert train.isdisjoint(test)


def test_mnist5k_split_is_deterministic_for_a_split_seed(mnist5k_splits):
    again = load_splits(DataSettings(name="mnist5k", split_seed=0))
    np.testing.assert_array_equal(again.train_x, mnist5k_splits.train_x)
    np.testing.assert_array_equal(again.test_x, mnist5k_splits.test_x)
    np.testing.assert_array_equal(again.test_y, mnist5k_splits.test_y)


def test_mnist5k_split_differs_for_another_split_seed(mnist5k_splits):
    other = load_splits(DataSettings(name="mnist5k", split_seed=1))
    assert np.bincount(other.test_y).tolist() == [100] * 10
    shared = _rows(other.test_x) & _rows(mnist5k_splits.test_x)
    assert len(shared) < 500  # a fresh random 20% overlaps the old test set in ~200 images


def test_mnist5k_test_size_follows_test_fraction():
    settings = DataSettings(name="mnist5k", test_fraction=0.1)
    splits = load_splits(settings)
    assert np.bincount(splits.test_y).tolist() == [50] * 10
    assert len(splits.test_x) == get_spec("mnist5k").test_size(settings) == 500


# --- synthetic --------------------------------------------------------------------------------


def test_synthetic_has_the_configured_shapes():
    cfg = {"image_size": 20, "channels": 3, "num_classes": 4}
    cfg |= {"train_size": 40, "test_size": 24, "noise": 0.2}
    settings = DataSettings(name="synthetic", synthetic=cfg)
    s = load_splits(settings)
    assert s.train_x.shape == (40, 3, 20, 20) and s.test_x.shape == (24, 3, 20, 20)
    assert s.train_x.dtype == np.uint8
    assert s.train_y.shape == (40,) and s.test_y.shape == (24,)
    assert set(s.train_y.tolist()) == set(range(4)) and set(s.test_y.tolist()) == set(range(4))
    assert s.num_classes == 4
    spec = get_spec("synthetic")
    assert spec.shape(settings) == (3, 20, 20)
    assert spec.num_classes(settings) == 4
    assert spec.test_size(settings) == 24
    assert spec.train_size(settings) == len(s.train_x)


def test_synthetic_is_deterministic_for_a_split_seed(synthetic_settings, synthetic_splits):
    again = load_splits(synthetic_settings)
    for name in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(again, name), getattr(synthetic_splits, name))


def test_synthetic_differs_for_another_split_seed(synthetic_settings, synthetic_splits):
    other = load_splits(replace(synthetic_settings, split_seed=1))
    assert not np.array_equal(other.train_x, synthetic_splits.train_x)


# --- probe set --------------------------------------------------------------------------------


def test_probe_indices_are_fixed_by_probe_seed():
    settings = DataSettings(probe_size=100, probe_seed=3)
    first = probe_indices(settings, 1000)
    np.testing.assert_array_equal(first, probe_indices(settings, 1000))
    other = probe_indices(DataSettings(probe_size=100, probe_seed=4), 1000)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(("probe_size", "test_size"), [(1, 10), (100, 1000), (250, 256)])
def test_probe_indices_are_sorted_unique_and_in_range(probe_size, test_size):
    idx = probe_indices(DataSettings(probe_size=probe_size, probe_seed=0), test_size)
    assert idx.shape == (probe_size,)
    assert np.all(np.diff(idx) > 0)  # strictly increasing: sorted and unique
    assert idx.min() >= 0 and idx.max() < test_size


def test_probe_indices_of_the_whole_test_set_are_every_index():
    idx = probe_indices(DataSettings(probe_size=50), 50)
    np.testing.assert_array_equal(idx, np.arange(50))


def test_probe_size_larger_than_test_set_raises_naming_probe_size():
    with pytest.raises(ValueError, match="probe_size"):
        probe_indices(DataSettings(probe_size=1001), 1000)


# --- availability and registry ----------------------------------------------------------------


def test_check_available_without_data_root_names_the_key_and_fill_command():
    with pytest.raises(DataNotFoundError) as err:
        check_available(DataSettings(name="mnist"))
    message = str(err.value)
    assert "data_root" in message
    assert "torchvision.datasets.MNIST(" in message and "download=True" in message


@pytest.mark.parametrize("name", TORCHVISION_DATASETS)
def test_check_available_with_empty_folder_names_folder_and_fill_command(name, tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        check_available(DataSettings(name=name, data_root=str(tmp_path)))
    message = str(err.value)
    assert str(tmp_path) in message
    fill = get_spec(name).fill_hint.replace("DATA_ROOT", repr(str(tmp_path)))
    assert fill in message


def test_data_not_found_error_is_a_file_not_found_error():
    assert issubclass(DataNotFoundError, FileNotFoundError)


@pytest.mark.parametrize("name", TORCHVISION_DATASETS)
def test_check_available_passes_when_every_required_file_exists(name, tmp_path):
    for rel in get_spec(name).required_files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    check_available(DataSettings(name=name, data_root=str(tmp_path)))


def test_check_available_with_download_does_not_raise(tmp_path):
    check_available(DataSettings(name="mnist", download=True))
    check_available(DataSettings(name="mnist", data_root=str(tmp_path), download=True))


@pytest.mark.parametrize("name", ["mnist5k", "synthetic"])
def test_check_available_never_raises_for_embedded_datasets(name):
    check_available(DataSettings(name=name))


def test_unknown_dataset_raises_value_error_listing_known_names():
    with pytest.raises(ValueError, match="imagenet") as err:
        load_splits(DataSettings(name="imagenet"))
    for name in DATASETS:
        assert repr(name) in str(err.value)


# --- digests ----------------------------------------------------------------------------------


def test_array_digest_changes_when_one_pixel_changes(rng):
    images = rng.integers(0, 256, size=(8, 1, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=8)
    before = array_digest(images, labels)
    assert array_digest(images.copy(), labels.copy()) == before
    changed = images.copy()
    changed[5, 0, 13, 7] ^= 1
    assert array_digest(changed, labels) != before


def test_array_digest_changes_with_labels_shape_and_dtype(rng):
    images = rng.integers(0, 256, size=(4, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(4)
    before = array_digest(images, labels)
    assert array_digest(images, labels[::-1].copy()) != before
    assert array_digest(images.reshape(4, 8, 8), labels) != before
    assert array_digest(images.astype(np.int8), labels) != before


def test_prepared_file_round_trips_the_splits_and_probe_set(tmp_path):
    from prunesim.data import load_prepared, prepare

    settings = DataSettings(name="synthetic", probe_size=40, synthetic={"test_size": 64})
    path = tmp_path / "data.npz"
    prepare(settings, path)
    splits, probe = load_prepared(path)
    direct = load_splits(settings)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        np.testing.assert_array_equal(getattr(splits, field), getattr(direct, field))
    assert splits.num_classes == direct.num_classes
    np.testing.assert_array_equal(probe, probe_indices(settings, len(direct.test_x)))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(b) // 2], "cannot be read"),
        (lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:], "cannot be read"),
        (lambda b: b"", "cannot be read"),
    ],
    ids=["truncated", "flipped_header_byte", "empty"],
)
def test_damaged_prepared_file_is_refused_naming_it(tmp_path, damage, message):
    from prunesim.data import load_prepared, prepare
    from prunesim.io import InputFileError

    settings = DataSettings(name="synthetic", probe_size=40, synthetic={"test_size": 64})
    path = tmp_path / "data.npz"
    prepare(settings, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputFileError, match=f"prepared data '.*data.npz' {message}") as err:
        load_prepared(path)
    assert "allow_pickle" not in str(err.value)


def test_prepared_file_with_a_changed_image_fails_its_crc(tmp_path):
    from prunesim.data import load_prepared, prepare
    from prunesim.io import InputFileError

    settings = DataSettings(name="synthetic", probe_size=40, synthetic={"test_size": 64})
    path = tmp_path / "data.npz"
    prepare(settings, path)
    splits, _ = load_prepared(path)
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(splits.test_x.reshape(-1)[200:216].tobytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="Bad CRC-32 for file 'test_x.npy'"):
        load_prepared(path)


def test_damaged_torchvision_files_are_refused_naming_the_dataset_and_folder(tmp_path):
    """CIFAR-10's files are checked by torchvision's own MD5 list: garbage fails it."""
    from prunesim.io import InputFileError

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"):
        (folder / name).write_bytes(b"garbage")
    with pytest.raises(InputFileError, match=f"dataset 'cifar10' in '{tmp_path}' cannot be read"):
        load_splits(DataSettings(name="cifar10", data_root=str(tmp_path)))
