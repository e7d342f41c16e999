"""Tests for activation extraction into zarr stores (prunesim.activations)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from torch import nn
from zarr.codecs import BloscCodec

from prunesim.activations import (
    FORMAT,
    DamagedStoreError,
    IncompleteStoreError,
    open_activations,
    record_activations,
)

N, BATCH = 70, 32  # two full chunks and a partial one


def _layer_outputs(model: nn.Sequential, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every child's output from one plain forward pass, without hooks."""
    outputs, x = {}, images
    with torch.no_grad():
        for name, module in model.named_children():
            x = module(x)
            outputs[name] = x
    return outputs


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    torch.manual_seed(0)
    from prunesim.models import build_model

    model = build_model("lenet5", 1, 10, 28).eval()
    images = torch.randn(N, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    path = tmp_path_factory.mktemp("act") / "model.zarr"
    layers = list(model.recorded_layers)
    record_activations(model, layers, images, path, batch_size=BATCH, attrs={"probe_digest": "d1"})
    return model, images, layers, path


def test_store_has_one_array_per_layer_equal_to_a_direct_forward_pass(extracted):
    model, images, layers, path = extracted
    store = open_activations(path)
    expected = _layer_outputs(model, images)
    assert store.layers == layers
    assert sorted(store.group.array_keys()) == sorted(layers)
    for layer in layers:
        stored = store.load(layer)
        assert stored.shape == (N, *expected[layer].shape[1:])
        assert stored.dtype == "float32"
        torch.testing.assert_close(torch.from_numpy(stored), expected[layer], rtol=1e-5, atol=1e-6)


def test_arrays_are_chunked_by_batch_along_samples_and_compressed(extracted):
    _, _, layers, path = extracted
    store = open_activations(path)
    assert store.chunk_size() == BATCH
    for layer in layers:
        array = store.group[layer]
        assert array.chunks == (BATCH, *array.shape[1:])
        assert any(isinstance(c, BloscCodec) for c in array.compressors)
        assert array.attrs["layer"] == layer


def test_manifest_lists_layers_n_format_and_extra_attrs(extracted):
    _, _, layers, path = extracted
    manifest = open_activations(path).manifest
    assert manifest["layers"] == layers
    assert manifest["n"] == N
    assert manifest["format"] == FORMAT and manifest["complete"] is True
    assert manifest["probe_digest"] == "d1"


def test_extraction_leaves_no_temp_sibling_and_no_hooks(extracted):
    model, _, _, path = extracted
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp sibling
    assert all(not m._forward_hooks for m in model.modules())


def test_extraction_runs_the_model_in_eval_mode(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        model[1].running_mean.fill_(3.0)  # eval-mode output differs from train-mode output
    images = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    model.train()
    record_activations(model, ["1"], images, tmp_path / "s.zarr", batch_size=8)
    with torch.no_grad():
        expected = model.eval()(images)
    stored = torch.from_numpy(open_activations(tmp_path / "s.zarr").load("1"))
    torch.testing.assert_close(stored, expected)


def test_output_of_a_layer_followed_by_an_in_place_op_is_stored_unmodified(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True))
    images = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model[0](images)
    assert bool((expected < 0).any())  # the ReLU changes something
    record_activations(model, ["0"], images, tmp_path / "s.zarr", batch_size=6)
    stored = torch.from_numpy(open_activations(tmp_path / "s.zarr").load("0"))
    torch.testing.assert_close(stored, expected)


def test_open_activations_refuses_a_store_without_manifest(tmp_path):
    path = tmp_path / "partial.zarr"
    group = zarr.open_group(path, mode="w")
    group.create_array("relu1", shape=(4, 3), dtype="float32")
    with pytest.raises(IncompleteStoreError, match="manifest"):
        open_activations(path)


def test_open_activations_refuses_an_incomplete_or_foreign_manifest(tmp_path):
    incomplete = zarr.open_group(tmp_path / "a.zarr", mode="w")
    incomplete.attrs["manifest"] = {"format": FORMAT, "complete": False, "layers": [], "n": 0}
    foreign = zarr.open_group(tmp_path / "b.zarr", mode="w")
    foreign.attrs["manifest"] = {"format": "other/9", "complete": True, "layers": [], "n": 0}
    with pytest.raises(IncompleteStoreError, match="manifest"):
        open_activations(tmp_path / "a.zarr")
    with pytest.raises(IncompleteStoreError, match="other/9"):
        open_activations(tmp_path / "b.zarr")


def test_open_activations_refuses_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(IncompleteStoreError):
        open_activations(tmp_path / "plain")


class FailsOnSecondBatch(nn.Module):
    """A tiny model whose forward raises on its second call."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.relu = nn.ReLU()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom on the second batch")
        return self.relu(self.fc(x))


def test_failed_extraction_leaves_no_store_and_no_temp_folder(tmp_path):
    model = FailsOnSecondBatch()
    path = tmp_path / "out" / "model.zarr"
    with pytest.raises(RuntimeError, match="second batch"):
        record_activations(model, ["fc", "relu"], torch.randn(10, 4), path, batch_size=4)
    assert model.calls == 2  # the first batch was written before the failure
    assert not path.exists()
    assert list(path.parent.iterdir()) == []
    assert all(not m._forward_hooks for m in model.modules())


def test_failed_extraction_keeps_an_existing_store_intact(tmp_path):
    path = tmp_path / "model.zarr"
    record_activations(FailsOnSecondBatch(), ["fc"], torch.randn(4, 4), path, batch_size=4)
    before = open_activations(path).load("fc")
    with pytest.raises(RuntimeError, match="second batch"):
        record_activations(FailsOnSecondBatch(), ["fc"], torch.randn(10, 4), path, batch_size=4)
    store = open_activations(path)
    assert store.n == 4
    assert (store.load("fc") == before).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zarr"]


def test_unknown_layer_raises_and_writes_nothing(tmp_path):
    model = FailsOnSecondBatch()
    with pytest.raises(ValueError, match="nope"):
        record_activations(model, ["fc", "nope"], torch.randn(4, 4), tmp_path / "s.zarr")
    assert list(tmp_path.iterdir()) == []
    assert model.calls == 0


# --- integrity: a store is read only as its manifest records it -------------------------------


@pytest.fixture
def store_copy(extracted, tmp_path):
    """A private copy of the extracted store, to damage."""
    _, _, layers, path = extracted
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    return copy, layers


def _chunk_files(store, layer):
    return sorted(p for p in (store / layer / "c").rglob("*") if p.is_file())


def test_store_with_a_deleted_chunk_is_refused_on_open(store_copy):
    store, _ = store_copy
    _chunk_files(store, "relu1")[1].unlink()
    with pytest.raises(IncompleteStoreError, match="layer 'relu1' has 2 of its 3 chunks"):
        open_activations(store)  # a listing of the chunks, no data read


def test_chunk_deleted_after_opening_is_refused_when_read_never_read_as_fill(store_copy):
    store, _ = store_copy
    opened = open_activations(store)
    _chunk_files(store, "relu1")[1].unlink()
    with pytest.raises(DamagedStoreError, match="layer 'relu1', samples 32-63: chunk is missing"):
        opened.load("relu1")
    assert opened.read("relu1", 0, 32).shape[0] == 32  # the intact chunk still reads


def test_chunk_with_changed_values_is_refused(store_copy, extracted):
    store, _ = store_copy
    group = zarr.open_group(store, mode="r+")
    values = group["fc3"][0:32]
    values[3, 2] += 1.0
    group["fc3"][0:32] = values  # a valid chunk, but not the one extracted
    with pytest.raises(DamagedStoreError, match="'fc3', samples 0-31: chunk is damaged"):
        open_activations(store).load("fc3")


def test_truncated_chunk_file_is_refused_with_the_path(store_copy):
    store, _ = store_copy
    chunk = _chunk_files(store, "pool2")[0]
    chunk.write_bytes(chunk.read_bytes()[:20])
    with pytest.raises(DamagedStoreError, match="copy.zarr.*'pool2', samples 0-31: chunk cannot"):
        open_activations(store).load("pool2")


def test_array_of_another_shape_than_the_manifest_is_refused_on_open(store_copy):
    store, _ = store_copy
    group = zarr.open_group(store, mode="r+")
    del group["relu3"]
    group.create_array("relu3", shape=(N, 3), chunks=(BATCH, 3), dtype="float32")
    with pytest.raises(IncompleteStoreError, match="layer 'relu3' has shape \\(70, 3\\)"):
        open_activations(store)


def test_deleted_array_is_refused_on_open(store_copy):
    store, _ = store_copy
    shutil.rmtree(store / "relu4")
    with pytest.raises(IncompleteStoreError, match="layer 'relu4' is in the manifest"):
        open_activations(store)


def test_missing_store_and_folder_that_is_not_a_store_are_refused(tmp_path):
    with pytest.raises(IncompleteStoreError, match="does not exist"):
        open_activations(tmp_path / "absent.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(IncompleteStoreError, match="empty.zarr"):
        open_activations(tmp_path / "empty.zarr")


def test_reads_across_chunk_boundaries_equal_the_whole_array(extracted):
    _, _, _, path = extracted
    store = open_activations(path)
    whole = store.load("relu2")
    for start, stop in ((0, 70), (5, 40), (31, 33), (64, 70), (40, 41)):
        np.testing.assert_array_equal(store.read("relu2", start, stop), whole[start:stop])


def test_store_opens_with_xarray_with_named_dimensions(extracted):
    _, _, _, path = extracted
    ds = xr.open_zarr(path, consolidated=False)
    assert ds["relu1"].dims == ("sample", "relu1_channel", "relu1_height", "relu1_width")
    assert ds["fc3"].dims == ("sample", "fc3_feature")
    np.testing.assert_array_equal(ds["pool2"].values, open_activations(path).load("pool2"))
