"""Parameter and FLOP counts, dense and remaining after pruning."""

import torch

from prunesim.accounting import count
from prunesim.pruning.magnitude import magnitude_step
from prunesim.pruning.masks import apply_masks, full_masks


def test_lenet5_dense_counts_match_the_architecture(make_model):
    model = make_model("lenet5")
    counts = count(model, (1, 28, 28))
    assert counts["parameters"]["dense"] == counts["parameters"]["remaining"] == 61_706
    # conv1 6x28x28 outputs x 25 taps; conv2 16x10x10 x 150; fc 400x120 + 120x84 + 84x10
    macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert counts["flops"]["dense"] == 2 * macs == counts["flops"]["remaining"]


def test_pruned_weights_reduce_remaining_parameters_and_flops_exactly(make_model):
    model = make_model("lenet5")
    masks = magnitude_step(model, full_masks(model), 0.5, "global")
    apply_masks(model, masks)
    removed = {name: int((~mask).sum()) for name, mask in masks.items()}
    counts = count(model, (1, 28, 28))
    assert counts["parameters"]["remaining"] == 61_706 - sum(removed.values())
    positions = {"conv1.weight": 28 * 28, "conv2.weight": 10 * 10}
    fewer = sum(2 * n * positions.get(name, 1) for name, n in removed.items())
    assert counts["flops"]["dense"] - counts["flops"]["remaining"] == fewer


def test_counting_leaves_the_model_mode_and_weights_unchanged(make_model):
    model = make_model("lenet5")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count(model, (1, 28, 28))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
