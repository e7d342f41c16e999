"""Tests for the pruning-method registry (prunesim.methods) and what follows from it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from prunesim.figures import method_label, round_label
from prunesim.jobs import stable_seed
from prunesim.methods import METHODS, STARTS_FROM, method_table

ROOT = Path(__file__).resolve().parents[1]
PRUNING = {
    "methods": list(METHODS),
    "rounds": 3,
    "rate": 0.4,
    "scope": "global",
    "retrain_epochs": None,
    "prune_output_layer": False,
    "epruner": {
        "betas": [0.8, 0.9],
        "initialisation": "authors",
        "vgg_late_beta": {"from_conv": 8, "beta": 0.92},
        "finetune_schedule": "experiment",
        "finetune_epochs": None,
    },
    "cka_layers": {
        "blocks": 2,
        "candidates": "authors",
        "finetune_schedule": "experiment",
        "finetune_epochs": 1,
        "criterion_samples": 100,
    },
}
TRAIN = {"epochs": 6}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_names_a_job_module_with_a_round_function(name):
    entry = METHODS[name]
    assert entry.name == name and entry.label and entry.summary
    assert entry.job.startswith("prunesim.jobs.")
    assert callable(importlib.import_module(entry.job).prune_round)
    assert entry.starts_from and set(entry.starts_from) <= set(STARTS_FROM)


def test_round_counts_follow_each_methods_own_setting():
    counts = {name: m.count_rounds(PRUNING) for name, m in METHODS.items()}
    assert counts == {
        "imp": 3,
        "imp_oneshot": 3,
        "imp_weight_rewind": 3,
        "imp_weight_rewind_oneshot": 3,
        "imp_finetune": 3,
        "imp_finetune_oneshot": 3,
        "retrain_only": 3,
        "random_global": 3,
        "random_layerwise": 3,
        "epruner": 2,
        "cka_layers": 2,
    }


def test_settings_resolve_the_round_and_null_fine_tuning_epochs():
    assert METHODS["epruner"].settings(PRUNING, TRAIN, 2) == {
        "beta": 0.9,
        "initialisation": "authors",
        "vgg_late_beta": {"from_conv": 8, "beta": 0.92},
        "finetune": {},  # finetune_schedule 'experiment': the train block as it is
        "finetune_epochs": 6,  # null: the experiment's train.epochs
        "include_output": False,
    }
    cka = METHODS["cka_layers"].settings(PRUNING, TRAIN, 1)
    assert cka["finetune_epochs"] == 1 and cka["candidates"] == "authors"
    assert METHODS["imp"].settings(PRUNING, TRAIN, 1) == {
        "rate": 0.4,
        "scope": "global",
        "retraining": "lr_rewind",
        "oneshot": False,
        "retrain_epochs": 6,  # null: the experiment's train.epochs
    }


def test_structured_methods_fine_tune_with_the_authors_schedules():
    """finetune_schedule 'authors' replaces the train block's optimizer and schedule with the
    authors' (EPruner: 150 epochs, decay at 50 and 100; CKA: 200, decay at 100 and 150), and
    null fine-tuning epochs become the schedule's own; given epochs shorten it."""
    authors = {
        "epruner": {**PRUNING["epruner"], "finetune_schedule": "authors"},
        "cka_layers": {**PRUNING["cka_layers"], "finetune_schedule": "authors"},
    }
    pruning = {**PRUNING, **authors}
    epruner = METHODS["epruner"].settings(pruning, TRAIN, 1)
    assert epruner["finetune_epochs"] == 150
    assert epruner["finetune"] == {
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.005,
        "schedule": "multistep",
        "milestones": [50, 100],
        "gamma": 0.1,
        "epochs": 150,
        "batch_size": 256,
        "clip_grad_norm": None,  # the experiment's clipping is not the authors'
    }
    cka = METHODS["cka_layers"].settings(pruning, TRAIN, 1)
    assert cka["finetune_epochs"] == 1  # given: the schedule shortened to it
    assert cka["finetune"]["epochs"] == 200 and cka["finetune"]["milestones"] == [100, 150]
    assert cka["finetune"]["nesterov"] is True and cka["finetune"]["batch_size"] == 128
    assert cka["finetune"]["clip_grad_norm"] is None
    # every replaced value is a key of the train block
    from prunesim.training import TrainSettings

    fields = set(TrainSettings.__dataclass_fields__)
    assert set(epruner["finetune"]) <= fields and set(cka["finetune"]) <= fields


def test_imp_variants_start_from_what_their_retraining_and_schedule_need():
    budget = {**PRUNING, "retrain_epochs": 2}
    for name, entry in METHODS.items():
        if not name.startswith("imp"):
            continue
        settings = entry.settings(budget, TRAIN, 1)
        assert settings["retrain_epochs"] == 2
        assert settings["oneshot"] == name.endswith("_oneshot")
        mode = {"imp_weight": "weight_rewind", "imp_finetu": "finetune"}.get(name[:10], "lr_rewind")
        assert settings["retraining"] == mode
        first = ("dense", "dense_mask") if settings["oneshot"] else ("model", "mask")
        assert entry.starts_from[:2] == first
        assert ("rewind" in entry.starts_from) == (mode == "weight_rewind")
    # every masked control shares IMP's budget, so "retrained exactly as `imp`" stays true
    for name in ("retrain_only", "random_global", "random_layerwise"):
        assert METHODS[name].settings(budget, TRAIN, 1)["retrain_epochs"] == 2


def test_method_seeds_are_fixed_numbers_of_the_name_alone():
    # fixed values: a change here changes every random baseline's masks
    assert stable_seed("random_global") == 3011215830
    assert stable_seed("random_layerwise") == 11808778
    assert len({stable_seed(name) for name in METHODS}) == len(METHODS)


def test_the_readme_method_table_is_the_registrys():
    assert method_table() in (ROOT / "README.md").read_text()


def test_figure_labels_come_from_the_registry():
    assert method_label("random_global") == METHODS["random_global"].label
    assert round_label("cka_layers") == "blocks removed"
    assert method_label("not_registered") == "not_registered"


def test_the_rewind_point_moves_with_the_budget_only_where_weights_are_rewound():
    from prunesim.methods import rewind_epoch

    train = {"epochs": 10}
    without = {**PRUNING, "methods": ["imp", "imp_finetune"], "retrain_epochs": 4}
    assert rewind_epoch(without, train) == 0  # changing t retrains no dense network
    rewinding = {**without, "methods": ["imp", "imp_weight_rewind_oneshot"]}
    assert rewind_epoch(rewinding, train) == 6
    assert rewind_epoch({**rewinding, "retrain_epochs": None}, train) == 0
