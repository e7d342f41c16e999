"""Tests for the training loop (prunesim.training): determinism, learning, logging, schedules."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import pytest
import torch

from prunesim.data import DataSettings, load_splits
from prunesim.training import (
    AUGMENTATIONS,
    OPTIMIZERS,
    SCHEDULES,
    TrainingDivergedError,
    TrainSettings,
    final_lr,
    finetuning,
    train,
)

CPU = torch.device("cpu")
FAST = TrainSettings(lr=0.05, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def tiny_splits():
    """A very small synthetic problem (16x16) for tests that only look at the loop's mechanics."""
    syn = {"image_size": 16, "train_size": 40, "test_size": 20}
    return load_splits(DataSettings(name="synthetic", probe_size=10, synthetic=syn))


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_bit_identical_weights(make_model, synthetic_splits):
    first, second = make_model(seed=0), make_model(seed=0)
    train(first, synthetic_splits, FAST, seed=11, device=CPU)
    train(second, synthetic_splits, FAST, seed=11, device=CPU)
    a, b = _state(first), _state(second)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_different_seed_gives_different_weights(make_model, synthetic_splits):
    first, second = make_model(seed=0), make_model(seed=0)  # same initial weights
    train(first, synthetic_splits, FAST, seed=11, device=CPU)
    train(second, synthetic_splits, FAST, seed=12, device=CPU)  # another batch order
    assert not torch.equal(first.fc1.weight, second.fc1.weight)


def test_training_on_synthetic_reaches_accuracy_far_above_chance(make_model, synthetic_splits):
    model = make_model(seed=0)
    settings = TrainSettings(optimizer="sgd", lr=0.05, epochs=5, batch_size=32)
    result = train(model, synthetic_splits, settings, seed=0, device=CPU)
    chance = 1 / synthetic_splits.num_classes
    assert result.final["test_accuracy"] >= 0.8 > 5 * chance
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_history_has_one_record_per_epoch_with_the_metrics(make_model, tiny_splits):
    settings = replace(FAST, epochs=3)
    result = train(make_model(image_size=16), tiny_splits, settings, seed=0, device=CPU)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for record in result.history:
        for key in ("lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert math.isfinite(record[key]), key
        assert 0.0 <= record["train_accuracy"] <= 1.0 and 0.0 <= record["test_accuracy"] <= 1.0
    assert result.final is result.history[-1]


def test_one_log_line_per_epoch_with_loss_and_accuracies(make_model, tiny_splits, caplog):
    settings = replace(FAST, epochs=3)
    with caplog.at_level(logging.INFO, logger="prunesim.training"):
        result = train(make_model(image_size=16), tiny_splits, settings, seed=0, device=CPU)
    lines = [r.getMessage() for r in caplog.records if r.name == "prunesim.training"]
    assert len(lines) == 3
    for epoch, (line, record) in enumerate(zip(lines, result.history, strict=True), start=1):
        assert f"epoch {epoch}/3" in line
        assert "loss" in line and "train_acc" in line and "test_acc" in line
        assert f"{record['test_accuracy']:.4f}" in line


def test_zero_epochs_leave_weights_unchanged_and_report_test_accuracy(make_model, tiny_splits):
    model = make_model(image_size=16)
    before = _state(model)
    result = train(model, tiny_splits, replace(FAST, epochs=0), seed=0, device=CPU)
    after = _state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [r["epoch"] for r in result.history] == [0]
    assert 0.0 <= result.final["test_accuracy"] <= 1.0


def _lrs(make_model, splits, **kw) -> list[float]:
    settings = replace(FAST, **kw)
    result = train(make_model(image_size=16), splits, settings, seed=0, device=CPU)
    return [r["lr"] for r in result.history]


def test_cosine_schedule_gives_the_expected_lr_per_epoch(make_model, tiny_splits):
    lrs = _lrs(make_model, tiny_splits, schedule="cosine", lr=0.1, epochs=4)
    expected = [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-12)  # 0.1, 0.0854, 0.05, 0.0146


def test_multistep_schedule_multiplies_lr_by_gamma_after_each_milestone(make_model, tiny_splits):
    lrs = _lrs(
        make_model,
        tiny_splits,
        schedule="multistep",
        lr=0.1,
        epochs=4,
        milestones=(1, 3),
        gamma=0.5,
    )
    # torch semantics: after ``m`` epochs have run, the LR is multiplied by gamma.
    assert lrs == pytest.approx([0.1, 0.05, 0.05, 0.025], rel=1e-12)


def test_constant_schedule_keeps_lr(make_model, tiny_splits):
    assert _lrs(make_model, tiny_splits, schedule="constant", lr=0.02, epochs=3) == [0.02] * 3


@pytest.mark.parametrize(
    "schedule", [{"schedule": "cosine"}, {"schedule": "multistep", "milestones": (2, 4)}]
)
def test_resumed_training_runs_the_schedules_last_epochs(make_model, tiny_splits, schedule):
    full = _lrs(make_model, tiny_splits, lr=0.1, epochs=5, **schedule)
    settings = replace(FAST, lr=0.1, epochs=5, **schedule)
    result = train(make_model(image_size=16), tiny_splits, settings, 0, device=CPU, epochs_done=3)
    assert [r["epoch"] for r in result.history] == [4, 5]
    assert [r["lr"] for r in result.history] == pytest.approx(full[3:], rel=1e-12)
    assert final_lr(settings) == pytest.approx(full[-1], rel=1e-12)


def test_fine_tuning_holds_the_final_learning_rate(make_model, tiny_splits):
    settings = replace(FAST, lr=0.1, epochs=4, schedule="multistep", milestones=(1, 3), gamma=0.5)
    tuned = finetuning(settings, 3)
    assert (tuned.schedule, tuned.lr, tuned.epochs) == ("constant", 0.025, 3)
    result = train(make_model(image_size=16), tiny_splits, tuned, 0, device=CPU)
    assert [r["lr"] for r in result.history] == [0.025] * 3


def test_the_kept_state_is_the_networks_at_that_epoch(make_model, tiny_splits):
    model = make_model(image_size=16)
    initial = _state(model)
    settings = replace(FAST, epochs=2)
    at_start = train(model, tiny_splits, settings, 0, device=CPU, keep_state_at=0).kept_state
    assert all(torch.equal(initial[k], at_start[k]) for k in initial)
    model = make_model(image_size=16)
    at_end = train(model, tiny_splits, settings, 0, device=CPU, keep_state_at=2).kept_state
    final = _state(model)
    assert all(torch.equal(final[k], at_end[k]) for k in final)
    # the state after epoch 1 of a 2-epoch run: an epoch's update after it is what differs
    model = make_model(image_size=16)
    middle = train(model, tiny_splits, settings, 0, device=CPU, keep_state_at=1).kept_state
    assert not all(torch.equal(final[k], middle[k]) for k in final)
    assert not all(torch.equal(initial[k], middle[k]) for k in initial)


def test_resuming_or_keeping_outside_the_schedule_is_refused(make_model, tiny_splits):
    model = make_model(image_size=16)
    with pytest.raises(ValueError, match="epochs_done 3 outside 0..2"):
        train(model, tiny_splits, replace(FAST, epochs=2), 0, device=CPU, epochs_done=3)
    with pytest.raises(ValueError, match="keep_state_at 0 outside 1..2"):
        train(
            model,
            tiny_splits,
            replace(FAST, epochs=2),
            0,
            device=CPU,
            epochs_done=1,
            keep_state_at=0,
        )


def test_clipping_bounds_every_steps_gradient_norm(make_model, tiny_splits):
    # one step of plain SGD (a single batch, no momentum or decay): the update is lr x gradient
    one_step = replace(FAST, lr=1.0, momentum=0.0, weight_decay=0.0, batch_size=40, epochs=1)

    def update_norm(settings) -> float:
        model = make_model(image_size=16)
        before = _state(model)
        train(model, tiny_splits, settings, seed=0, device=CPU)
        after = _state(model)
        return math.sqrt(sum(float(((after[k] - before[k]) ** 2).sum()) for k in after))

    assert update_norm(replace(one_step, clip_grad_norm=1e-3)) == pytest.approx(1e-3, rel=1e-3)
    assert update_norm(one_step) > 1e-2


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_every_augmentation_trains_reproducibly(make_model, tiny_splits, augment):
    settings = replace(FAST, augment=augment)
    first, second = make_model(image_size=16), make_model(image_size=16)
    train(first, tiny_splits, settings, seed=3, device=CPU)
    train(second, tiny_splits, settings, seed=3, device=CPU)
    assert torch.equal(first.conv1.weight, second.conv1.weight)


@pytest.mark.parametrize(
    ("key", "value", "registry"),
    [("optimizer", "rmsprop", OPTIMIZERS), ("schedule", "linear", SCHEDULES)],
)
def test_unknown_optimizer_or_schedule_raises_listing_known_names(
    make_model, tiny_splits, key, value, registry
):
    with pytest.raises(ValueError, match=f"unknown {key} '{value}'") as err:
        train(make_model(image_size=16), tiny_splits, replace(FAST, **{key: value}), 0, device=CPU)
    for name in registry:
        assert repr(name) in str(err.value)


def test_unknown_augmentation_raises(make_model, tiny_splits):
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        train(make_model(image_size=16), tiny_splits, replace(FAST, augment="mixup"), 0, CPU)


def test_non_finite_loss_stops_training_naming_model_epoch_batch_and_lr(make_model, tiny_splits):
    model = make_model("lenet5", image_size=16)
    with torch.no_grad():
        model.conv1.weight[0, 0, 0, 0] = math.nan
    with pytest.raises(TrainingDivergedError) as err:
        train(model, tiny_splits, FAST, seed=0, device=CPU, where="seed 0, dense")
    message = str(err.value)
    assert message.startswith("training diverged (seed 0, dense): loss is nan at epoch 1, batch 1")
    assert "learning rate 0.05" in message and "lower train.lr" in message


def test_parameters_that_overflow_after_a_finite_loss_stop_training(make_model, tiny_splits):
    """One batch per epoch: its loss is finite, the step with an infinite rate is not."""
    model = make_model("lenet5", image_size=16)
    settings = replace(FAST, lr=math.inf, batch_size=64)
    with pytest.raises(TrainingDivergedError, match=r"parameters \['conv1.weight'.* after epoch 1"):
        train(model, tiny_splits, settings, seed=0, device=CPU)
