"""Checkpoints and masks (prunesim.checkpoint, prunesim.pruning.masks): what a damaged or
foreign file does on load."""

from __future__ import annotations

import pytest
import torch

from prunesim.checkpoint import load_checkpoint, save_checkpoint, tensor_digest
from prunesim.io import InputFileError
from prunesim.models import build_model
from prunesim.pruning.masks import check_masks_fit, full_masks, load_masks, save_masks

IDENTITY = {"experiment": "e", "method": "imp", "round": 2, "seed": 0}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet5", 1, 10, 28)
    path = tmp_path / "model.pt"
    save_checkpoint(model, path, dict(IDENTITY))
    return model, path


def _flip_in_tensor_data(path, tensor: torch.Tensor) -> None:
    """Flip one byte inside the stored bytes of ``tensor`` (the zip records are not checked)."""
    data = bytearray(path.read_bytes())
    needle = tensor.detach().reshape(-1)[100:104].numpy().tobytes()
    offset = bytes(data).find(needle)
    assert offset > 0
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_checkpoint_round_trip_gives_the_same_model_and_provenance(saved):
    model, path = saved
    loaded, provenance = load_checkpoint(path, expect=IDENTITY, arch="lenet5")
    assert provenance == IDENTITY
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_checkpoint_with_a_changed_weight_is_refused_by_its_digest(saved):
    model, path = saved
    _flip_in_tensor_data(path, model.fc1.weight)
    with pytest.raises(InputFileError, match="model.pt' is damaged: its tensors differ"):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_or_empty_checkpoint_is_refused_naming_it_without_unsafe_advice(saved, keep):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(InputFileError, match="checkpoint '.*model.pt' cannot be read") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value)


def test_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(InputFileError, match="cannot be read") as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value) and "pickle" not in str(err.value)
    torch.save({"state_dict": {}}, path)
    with pytest.raises(InputFileError, match="has format None, expected 'prunesim.checkpoint/2'"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("expect", "model", "message"),
    [
        ({**IDENTITY, "seed": 1}, None, "seed 0 where 1 was expected"),
        ({**IDENTITY, "round": 1}, None, "round 2 where 1 was expected"),
        ({**IDENTITY, "experiment": "other"}, None, "experiment 'e' where 'other' was expected"),
        (IDENTITY, "resnet20", "model 'lenet5' where 'resnet20' was expected"),
    ],
)
def test_checkpoint_of_another_model_is_refused(saved, expect, model, message):
    _, path = saved
    with pytest.raises(InputFileError, match="is of another model") as err:
        load_checkpoint(path, expect=expect, arch=model)
    assert message in str(err.value)


def test_masks_round_trip_and_a_changed_mask_is_refused(tmp_path):
    model = build_model("lenet5", 1, 10, 28)
    masks = full_masks(model)
    masks["fc1.weight"][:, :50] = False
    path = tmp_path / "mask.pt"
    save_masks(masks, path)
    loaded = load_masks(path)
    assert loaded.keys() == masks.keys()
    assert all(torch.equal(loaded[k], masks[k]) for k in masks)
    check_masks_fit(loaded, model, path)
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(masks["fc1.weight"].reshape(-1)[:64].numpy().tobytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="mask file '.*mask.pt' is damaged"):
        load_masks(path)


def test_masks_of_another_model_do_not_fit(tmp_path):
    lenet, resnet = build_model("lenet5", 1, 10, 28), build_model("resnet20", 1, 10, 28)
    with pytest.raises(InputFileError, match="mask file 'm.pt' does not fit the model: masks"):
        check_masks_fit(full_masks(resnet), lenet, "m.pt")


def test_tensor_digest_sees_names_dtypes_shapes_and_values():
    base = {"a": torch.zeros(4), "b": torch.tensor(3)}
    digest = tensor_digest(base)
    assert tensor_digest({"a": torch.zeros(4), "b": torch.tensor(3)}) == digest
    for changed in (
        {"a2": torch.zeros(4), "b": torch.tensor(3)},
        {"a": torch.zeros(4, dtype=torch.float64), "b": torch.tensor(3)},
        {"a": torch.zeros(2, 2), "b": torch.tensor(3)},
        {"a": torch.tensor([0.0, 0.0, 0.0, 1e-30]), "b": torch.tensor(3)},
    ):
        assert tensor_digest(changed) != digest
