"""Tests for the results layout (prunesim.layout)."""

from __future__ import annotations

import re

from prunesim.layout import STAGE_PATTERN, checkpoint_identity, model_dir, stage, stage_identity


def test_round_zero_of_any_method_is_the_dense_network():
    assert stage("imp", 0) == stage() == "dense"
    assert model_dir("e", 1, "cka_layers", 2) == "results/e/seed1/cka_layers/round2"
    assert re.fullmatch(STAGE_PATTERN, stage("random_global", 3))


def test_a_checkpoint_path_says_which_model_it_must_hold():
    assert checkpoint_identity("results/e/seed3/imp/round2/model.pt") == (
        "e",
        {"experiment": "e", "method": "imp", "round": 2, "seed": 3},
    )
    assert checkpoint_identity("results/e/seed0/dense/model.pt")[1] == stage_identity(
        "e", 0, "dense"
    )
    assert checkpoint_identity("elsewhere/model.pt") is None
    # the dense run's rewind point is the dense network's, at an earlier epoch
    assert checkpoint_identity("results/e/seed0/dense/rewind.pt")[1] == stage_identity(
        "e", 0, "dense"
    )
    assert checkpoint_identity("results/e/seed0/imp/round1/rewind.pt") is None
    assert checkpoint_identity("results/e/seed0/imp/round0/model.pt") is None  # not a stage
