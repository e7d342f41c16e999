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
    "prune_output_layer": False,
    "epruner": {"betas": [0.8, 0.9], "finetune_epochs": None},
    "cka_layers": {"blocks": 2, "finetune_epochs": 1, "criterion_samples": 100},
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
        "retrain_only": 3,
        "random_global": 3,
        "random_layerwise": 3,
        "epruner": 2,
        "cka_layers": 2,
    }


def test_settings_resolve_the_round_and_null_fine_tuning_epochs():
    assert METHODS["epruner"].settings(PRUNING, TRAIN, 2) == {
        "beta": 0.9,
        "finetune_epochs": 6,  # null: the experiment's train.epochs
        "include_output": False,
    }
    assert METHODS["cka_layers"].settings(PRUNING, TRAIN, 1)["finetune_epochs"] == 1
    assert METHODS["imp"].settings(PRUNING, TRAIN, 1) == {"rate": 0.4, "scope": "global"}


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
