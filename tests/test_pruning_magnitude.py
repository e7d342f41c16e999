"""Tests for masks and magnitude pruning (prunesim.pruning.masks, prunesim.pruning.magnitude),
including mask enforcement in training: pruned weights must stay exactly zero through every
optimizer step."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from prunesim.pruning.magnitude import SCOPES, kept_after, magnitude_oneshot, magnitude_step
from prunesim.pruning.masks import (
    apply_masks,
    full_masks,
    is_nested,
    load_masks,
    mask_gradients,
    prunable_parameters,
    save_masks,
    sparsity_report,
)
from prunesim.training import OPTIMIZERS, TrainSettings, train

CPU = torch.device("cpu")
LENET_PRUNABLE = {"conv1.weight": 150, "conv2.weight": 2400, "fc1.weight": 48000}
LENET_PRUNABLE |= {"fc2.weight": 10080}
LENET_TOTAL = sum(LENET_PRUNABLE.values())  # 60,630


def _kept(masks) -> int:
    return sum(int(m.sum()) for m in masks.values())


def _magnitudes(model: nn.Module, masks, which) -> torch.Tensor:
    """Magnitudes of the weights selected by ``which(name) -> bool tensor`` over all layers."""
    params = dict(model.named_parameters())
    return torch.cat([params[n].detach().abs().flatten()[which(n).flatten()] for n in masks])


# --- prunable parameters ----------------------------------------------------------------------


def test_prunable_parameters_of_lenet5_are_conv_and_linear_weights_without_output(make_model):
    params = prunable_parameters(make_model("lenet5"))
    assert {n: p.numel() for n, p in params.items()} == LENET_PRUNABLE
    assert list(params) == list(LENET_PRUNABLE)  # module order


def test_prunable_parameters_include_output_layer_on_request(make_model):
    params = prunable_parameters(make_model("lenet5"), include_output=True)
    assert list(params) == [*LENET_PRUNABLE, "fc3.weight"]


def test_prunable_parameters_of_resnet20_exclude_biases_batchnorm_and_fc(make_model):
    model = make_model("resnet20", in_channels=3, image_size=32)
    params = prunable_parameters(model)
    modules = dict(model.named_modules())
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    assert list(params) == [f"{n}.weight" for n in convs]
    assert len(params) == 19  # stem + 9 blocks x 2 convolutions; option-A shortcuts have none
    assert "fc.weight" not in params
    assert not any(n.endswith(".bias") or ".bn" in n or n.startswith("bn") for n in params)
    for name, p in params.items():
        assert p is modules[name.removesuffix(".weight")].weight
    assert "fc.weight" in prunable_parameters(model, include_output=True)


def test_full_masks_keep_every_prunable_weight(make_model):
    model = make_model("lenet5")
    masks = full_masks(model)
    assert {n: m.shape for n, m in masks.items()} == {
        n: p.shape for n, p in prunable_parameters(model).items()
    }
    assert all(m.dtype == torch.bool and bool(m.all()) for m in masks.values())


# --- magnitude pruning ------------------------------------------------------------------------


@pytest.fixture
def lenet_and_mask(make_model):
    """A lenet5 and a mask that already removed 40% (so the next step sees pruned weights)."""
    model = make_model("lenet5", seed=3)
    return model, magnitude_step(model, full_masks(model), 0.4)


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.73])
def test_global_step_removes_exactly_round_rate_times_remaining(lenet_and_mask, rate):
    model, old = lenet_and_mask
    new = magnitude_step(model, old, rate, "global")
    remaining = _kept(old)
    assert _kept(old) - _kept(new) == round(rate * remaining)


def test_global_step_mask_is_nested_in_the_old_one(lenet_and_mask):
    model, old = lenet_and_mask
    new = magnitude_step(model, old, 0.5, "global")
    assert is_nested(new, old)
    assert not is_nested(old, new)


def test_global_step_removes_the_smallest_surviving_magnitudes(lenet_and_mask):
    model, old = lenet_and_mask
    # The mask was never applied, so the already-pruned weights still have their (small)
    # magnitudes: the ranking must consider only the survivors of ``old``.
    new = magnitude_step(model, old, 0.5, "global")
    removed = _magnitudes(model, old, lambda n: old[n] & ~new[n])
    kept = _magnitudes(model, old, lambda n: new[n])
    assert len(removed) > 0 and len(kept) > 0
    assert removed.max() <= kept.min()


def test_global_step_ignores_already_pruned_weights_even_if_large(make_model):
    model = make_model("lenet5", seed=4)
    old = full_masks(model)
    with torch.no_grad():
        model.fc1.weight[0, :10] = 100.0  # huge, but already pruned
    old["fc1.weight"][0, :10] = False
    new = magnitude_step(model, old, 0.3, "global")
    assert not bool(new["fc1.weight"][0, :10].any())
    assert _kept(old) - _kept(new) == round(0.3 * _kept(old))


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_layerwise_step_removes_round_rate_of_each_layers_survivors(lenet_and_mask, rate):
    model, old = lenet_and_mask
    new = magnitude_step(model, old, rate, "layerwise")
    assert is_nested(new, old)
    params = dict(model.named_parameters())
    for name in old:
        remaining = int(old[name].sum())
        assert remaining - int(new[name].sum()) == round(rate * remaining), name
        w = params[name].detach().abs()
        removed, kept = w[old[name] & ~new[name]], w[new[name]]
        assert removed.max() <= kept.min(), name


@pytest.mark.parametrize("scope", SCOPES)
def test_five_rounds_at_rate_0_4_keep_the_expected_counts(make_model, scope):
    model = make_model("lenet5", seed=5)
    masks = full_masks(model)
    kept = []
    for _ in range(5):
        masks = magnitude_step(model, masks, 0.4, scope)
        kept.append(_kept(masks))
    if scope == "global":
        assert kept == [36378, 21827, 13096, 7858, 4715]
        assert sparsity_report(masks)["sparsity"] == pytest.approx(0.92223, abs=1e-5)
    else:
        expected = dict(LENET_PRUNABLE)
        for k in range(5):
            expected = {n: c - round(0.4 * c) for n, c in expected.items()}
            assert kept[k] == sum(expected.values())


def test_magnitude_step_ties_are_broken_reproducibly(make_model):
    model = make_model("lenet5")
    with torch.no_grad():
        for p in prunable_parameters(model).values():
            p.fill_(0.5)  # every magnitude tied
    masks = full_masks(model)
    first = magnitude_step(model, masks, 0.3)
    second = magnitude_step(model, masks, 0.3)
    assert all(torch.equal(first[n], second[n]) for n in masks)
    assert _kept(masks) - _kept(first) == round(0.3 * LENET_TOTAL)


def test_magnitude_step_does_not_modify_its_input_mask(lenet_and_mask):
    model, old = lenet_and_mask
    before = {n: m.clone() for n, m in old.items()}
    magnitude_step(model, old, 0.5)
    assert all(torch.equal(before[n], old[n]) for n in old)


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_rate_outside_open_unit_interval_raises(make_model, rate):
    model = make_model("lenet5")
    with pytest.raises(ValueError, match="rate"):
        magnitude_step(model, full_masks(model), rate)


def test_unknown_scope_raises_naming_scopes(make_model):
    model = make_model("lenet5")
    with pytest.raises(ValueError, match="scope.*random"):
        magnitude_step(model, full_masks(model), 0.5, scope="random")


def test_masks_naming_unknown_parameters_raise_key_error(make_model):
    model = make_model("lenet5")
    with pytest.raises(KeyError, match="nope.weight"):
        magnitude_step(model, {"nope.weight": torch.ones(3, dtype=torch.bool)}, 0.5)


# --- mask utilities ---------------------------------------------------------------------------


def test_is_nested_requires_same_keys_shapes_and_subset():
    outer = {"a": torch.tensor([True, True, False])}
    assert is_nested({"a": torch.tensor([True, False, False])}, outer)
    assert is_nested(outer, outer)
    assert not is_nested({"a": torch.tensor([False, False, True])}, outer)
    assert not is_nested({"b": torch.tensor([True, False, False])}, outer)
    assert not is_nested({"a": torch.tensor([[True, False, False]])}, outer)


def test_sparsity_report_counts_kept_size_and_sparsity():
    masks = {
        "a": torch.tensor([True, False, False, True, True, False, False, False, False, False]),
        "b": torch.ones(5, 6, dtype=torch.bool),
    }
    report = sparsity_report(masks)
    assert report["kept"] == 33 and report["size"] == 40
    assert report["sparsity"] == pytest.approx(7 / 40)
    assert report["layers"]["a"] == {"kept": 3, "size": 10, "sparsity": pytest.approx(0.7)}
    assert report["layers"]["b"] == {"kept": 30, "size": 30, "sparsity": 0.0}


def test_sparsity_report_of_no_masks_is_zero():
    assert sparsity_report({}) == {"kept": 0, "size": 0, "sparsity": 0.0, "layers": {}}


def test_apply_masks_zeroes_exactly_the_masked_weights(lenet_and_mask):
    model, masks = lenet_and_mask
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    for name, p in params.items():
        if name in masks:
            assert bool((p[~masks[name]] == 0).all())
            assert torch.equal(p[masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(p, before[name])  # biases and the output layer untouched


def test_save_masks_load_masks_round_trip(lenet_and_mask, tmp_path):
    _, masks = lenet_and_mask
    path = tmp_path / "sub" / "mask.pt"
    save_masks(masks, path)
    loaded = load_masks(path)
    assert list(loaded) == list(masks)
    for name in masks:
        assert loaded[name].dtype == torch.bool
        assert torch.equal(loaded[name], masks[name])
    assert sorted(p.name for p in path.parent.iterdir()) == ["mask.pt"]  # no temp file left


# --- masks through training -------------------------------------------------------------------

SGD_MOMENTUM = TrainSettings(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-3)
SGD_NESTEROV = TrainSettings(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True)
ADAM = TrainSettings(optimizer="adam", lr=1e-3, weight_decay=1e-2)
OPTIMIZER_CASES = {"sgd_momentum": SGD_MOMENTUM, "sgd_nesterov": SGD_NESTEROV, "adam": ADAM}


@pytest.mark.parametrize("settings", [SGD_MOMENTUM, ADAM], ids=["sgd_momentum", "adam"])
def test_pruned_weights_stay_exactly_zero_through_training(make_model, synthetic_splits, settings):
    model = make_model("lenet5", seed=1)
    masks = magnitude_step(model, full_masks(model), 0.5)
    # The weights are dense on entry: train must zero the masked ones itself.
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = replace(settings, epochs=2, batch_size=64)
    train(model, synthetic_splits, cfg, seed=0, masks=masks, device=CPU)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        p = params[name].detach()
        assert bool((p[~mask] == 0.0).all()), name
        assert not torch.equal(p[mask], before[name][mask]), f"{name} did not train"
    assert sparsity_report(masks)["sparsity"] == pytest.approx(0.5, abs=1e-4)


def _optimizer_state_at_masked(optimizer, param, mask) -> dict[str, torch.Tensor]:
    state = optimizer.state[param]
    keys = [k for k in ("momentum_buffer", "exp_avg", "exp_avg_sq") if state.get(k) is not None]
    assert keys, f"optimizer keeps no per-weight state: {sorted(state)}"
    return {k: state[k][~mask] for k in keys}


@pytest.mark.parametrize("settings", OPTIMIZER_CASES.values(), ids=OPTIMIZER_CASES.keys())
def test_optimizer_state_stays_exactly_zero_at_masked_weights(
    make_model, synthetic_splits, settings
):
    """One step replicated as prunesim.training does it: masked weights are zero right after
    ``optimizer.step()`` (before the mask is re-applied) and momentum / Adam moments are zero
    at masked positions."""
    model = make_model("lenet5", seed=2)
    masks = magnitude_step(model, full_masks(model), 0.5)
    apply_masks(model, masks)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), settings)
    x = torch.as_tensor(synthetic_splits.train_x[:64]).float() / 255.0 - 0.5
    y = torch.as_tensor(synthetic_splits.train_y[:64])
    params = dict(model.named_parameters())
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        assert any(bool((params[n].grad[~m] != 0).any()) for n, m in masks.items())
        mask_gradients(model, masks)
        for name, mask in masks.items():
            assert bool((params[name].grad[~mask] == 0).all()), name
        optimizer.step()
        for name, mask in masks.items():
            assert bool((params[name].detach()[~mask] == 0).all()), name
            for key, values in _optimizer_state_at_masked(optimizer, params[name], mask).items():
                assert bool((values == 0).all()), f"{name} {key}"
        apply_masks(model, masks)


def test_without_gradient_masking_momentum_would_revive_pruned_weights(
    make_model, synthetic_splits
):
    """The control for the test above: the masking it checks is what keeps the state zero."""
    model = make_model("lenet5", seed=2)
    masks = magnitude_step(model, full_masks(model), 0.5)
    apply_masks(model, masks)
    optimizer = OPTIMIZERS["sgd"](model.parameters(), SGD_MOMENTUM)
    x = torch.as_tensor(synthetic_splits.train_x[:64]).float() / 255.0 - 0.5
    y = torch.as_tensor(synthetic_splits.train_y[:64])
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    p = model.fc1.weight
    assert bool((optimizer.state[p]["momentum_buffer"][~masks["fc1.weight"]] != 0).any())
    assert bool((p.detach()[~masks["fc1.weight"]] != 0).any())


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("steps", [1, 3])
def test_one_shot_keeps_iterative_imps_count_and_the_largest_weights(make_model, scope, steps):
    model = make_model()
    dense = full_masks(model)
    oneshot = magnitude_oneshot(model, dense, 0.3, steps, scope)
    iterative = dense
    for _ in range(steps):  # the same weights throughout: only the counts are compared
        iterative = magnitude_step(model, iterative, 0.3, scope)
    assert is_nested(oneshot, dense)
    if scope == "global":
        assert _kept(oneshot) == _kept(iterative)
        assert _kept(oneshot) == kept_after(LENET_TOTAL, 0.3, steps)
        groups = [list(dense)]
    else:
        for name in dense:
            assert int(oneshot[name].sum()) == int(iterative[name].sum())
            assert int(oneshot[name].sum()) == kept_after(LENET_PRUNABLE[name], 0.3, steps)
        groups = [[name] for name in dense]
    for names in groups:  # within what is ranked together, every kept weight is the larger
        part = {n: oneshot[n] for n in names}
        kept = _magnitudes(model, part, lambda n: oneshot[n])
        removed = _magnitudes(model, part, lambda n: ~oneshot[n])
        assert kept.min() >= removed.max()


def test_kept_after_rounds_each_step_as_magnitude_step_does():
    assert kept_after(60630, 0.4, 0) == 60630
    assert kept_after(10, 0.25, 1) == 8  # round(2.5) = 2 (banker's rounding) removed
    assert kept_after(10, 0.25, 2) == 6  # then round(2.0) = 2


def test_one_shot_needs_a_step_and_a_valid_rate(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="at least one step"):
        magnitude_oneshot(model, full_masks(model), 0.3, 0)
    with pytest.raises(ValueError, match="rate must be in"):
        magnitude_oneshot(model, full_masks(model), 1.0, 2)
