"""Structured pruning: EPruner (exemplar filters) and CKA-guided residual block removal."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunesim.accounting import count
from prunesim.checkpoint import load_checkpoint, save_checkpoint
from prunesim.jobs.rounds import finetune_settings
from prunesim.methods import AUTHORS_FINETUNING
from prunesim.models import build_model
from prunesim.pruning.epruner import epruner, exemplar_filters, vgg_late_beta
from prunesim.pruning.layers import cka_block_removal, remove_block
from prunesim.pruning.masks import full_masks, structured_sparsity
from prunesim.pruning.structure import (
    candidate_blocks,
    filter_groups,
    removable_blocks,
    removable_count,
)

# (model, input channels, image size): every architecture EPruner supports
ARCHITECTURES = [("lenet5", 1, 28), ("vgg11_bn", 3, 32), ("resnet20", 1, 16)]


def _model(name: str, channels: int, size: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, channels, 10, size)
    # BatchNorm statistics that are not the identity, so slicing them matters
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return model.eval()


# --- EPruner -----------------------------------------------------------------------------------


def test_exemplars_are_one_filter_per_cluster_of_near_identical_filters():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 4, 3, 3, generator=generator)
    weight = centres.repeat_interleave(5, dim=0) + 1e-3 * torch.randn(15, 4, 3, 3)
    exemplars = exemplar_filters(weight, beta=1.0, seed=0)
    assert len(exemplars) == 3
    assert sorted(int(e) // 5 for e in exemplars) == [0, 1, 2]


@pytest.mark.parametrize(("name", "channels", "size"), ARCHITECTURES)
def test_epruner_keeps_more_filters_as_beta_falls(name, channels, size):
    model = _model(name, channels, size)
    betas = [4.0, 2.0, 1.0, 0.5, 0.25, 0.1]
    totals = [sum(len(k) for k in epruner(model, beta, seed=0).kept.values()) for beta in betas]
    assert totals == sorted(totals), dict(zip(betas, totals, strict=True))
    assert totals[0] < totals[-1]


@pytest.mark.parametrize(("name", "channels", "size"), ARCHITECTURES)
def test_pruned_layers_have_the_exemplar_count_and_start_from_exemplar_weights(
    name, channels, size
):
    model = _model(name, channels, size)
    pruning = epruner(model, beta=1.0, seed=0, initialisation="inherit")
    old, new = dict(model.named_modules()), dict(pruning.model.named_modules())
    groups = filter_groups(model)
    # which input channels each layer kept: those its producer kept (all others: every one)
    kept_inputs = {g.consumer: pruning.kept[g.conv] for g in groups if g.positions == 1}
    for group in groups:
        kept = pruning.kept[group.conv]
        assert kept == sorted(exemplar_filters(old[group.conv].weight, 1.0, 0).tolist())
        assert new[group.conv].out_channels == len(kept)
        expected = old[group.conv].weight[kept]
        if group.conv in kept_inputs:
            expected = expected[:, kept_inputs[group.conv]]
        assert torch.equal(new[group.conv].weight, expected)
        if group.bn is not None:
            for stat in ("weight", "bias", "running_mean", "running_var"):
                assert torch.equal(getattr(new[group.bn], stat), getattr(old[group.bn], stat)[kept])


@pytest.mark.parametrize(("name", "channels", "size"), ARCHITECTURES)
def test_pruned_network_computes_the_parent_with_the_removed_filters_unread(name, channels, size):
    """Zeroing the next layer's inputs from the removed filters in the parent gives exactly
    the pruned network's function (``inherit``): slicing loses nothing else."""
    model = _model(name, channels, size)
    pruning = epruner(model, beta=1.0, seed=0, initialisation="inherit")
    modules = dict(model.named_modules())
    with torch.no_grad():
        for group in filter_groups(model):
            removed = sorted(
                set(range(modules[group.conv].out_channels)) - set(pruning.kept[group.conv])
            )
            columns = [c * group.positions + p for c in removed for p in range(group.positions)]
            modules[group.consumer].weight[:, columns] = 0
        x = torch.randn(8, channels, size, size)
        torch.testing.assert_close(pruning.model.eval()(x), model(x), rtol=1e-5, atol=1e-5)


def _expected_fresh(model: nn.Module) -> set[str]:
    """What the authors' epruner_cifar.py leaves at a fresh initialisation, written out per
    architecture: cluster_resnet's bn1 of every block; cluster_vgg's every BatchNorm,
    convolution bias and linear layer (LeNet-5 follows the VGG rule)."""
    stats = ("weight", "bias", "running_mean", "running_var")
    names = dict(model.named_modules())
    if "layer1" in names:  # a ResNet
        blocks = [n for n in names if n.count(".") == 1 and n.startswith("layer")]
        return {f"{b}.bn1.{stat}" for b in blocks for stat in stats}
    fresh = set()
    for name, module in names.items():
        if isinstance(module, nn.BatchNorm2d):
            fresh |= {f"{name}.{stat}" for stat in stats}
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            fresh.add(f"{name}.bias")
        if isinstance(module, nn.Linear):
            fresh.add(f"{name}.weight")
    return fresh


@pytest.mark.parametrize(("name", "channels", "size"), ARCHITECTURES)
def test_authors_initialisation_resets_what_their_code_resets_and_keeps_the_rest(
    name, channels, size
):
    model = _model(name, channels, size)
    with torch.no_grad():  # biases that are not a fresh network's zeros
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.normal_()
    inherited = epruner(model, beta=1.0, seed=3, initialisation="inherit").model.state_dict()
    authors = epruner(model, beta=1.0, seed=3, initialisation="authors")
    state = authors.model.state_dict()
    fresh = _expected_fresh(model)
    assert fresh and fresh <= set(state)
    assert state.keys() == inherited.keys()
    generator = torch.Generator().manual_seed(3)  # the linear layers' draws, in forward order
    linear_draws = {
        f"{n}.weight": torch.randn(m.weight.shape, generator=generator) * 0.01
        for n, m in authors.model.named_modules()
        if isinstance(m, nn.Linear)
    }
    for key, value in state.items():
        if key not in fresh:  # the parent's (sliced) tensors, exactly as before
            assert torch.equal(value, inherited[key]), key
            continue
        leaf = key.rpartition(".")[2]
        if key in linear_draws:
            expected = linear_draws[key]
        elif leaf in ("running_var",) or (leaf == "weight" and value.dim() == 1):
            expected = torch.ones_like(value)  # BatchNorm scale, running variance
        else:
            expected = torch.zeros_like(value)  # BatchNorm shift, running mean, biases
        assert torch.equal(value, expected), key
        assert not torch.equal(value, inherited[key]), key  # it did change
    # the exemplar filters' weights are the parent's in both
    for group in filter_groups(model):
        assert torch.equal(state[f"{group.conv}.weight"], inherited[f"{group.conv}.weight"])


def test_late_beta_clusters_from_the_given_convolution_on():
    model = _model("vgg11_bn", 3, 32)
    groups = filter_groups(model)
    modules = dict(model.named_modules())
    beta, late = 0.1, 4.0
    pruning = epruner(model, beta, seed=0, late_beta=(5, late))
    for i, group in enumerate(groups):
        weight = modules[group.conv].weight
        expected = exemplar_filters(weight, late if i >= 5 else beta, 0).tolist()
        assert pruning.kept[group.conv] == expected, (i, group.conv)
    plain = epruner(model, beta, seed=0)
    assert [pruning.kept[g.conv] for g in groups[:5]] == [plain.kept[g.conv] for g in groups[:5]]
    assert [pruning.kept[g.conv] for g in groups[5:]] != [plain.kept[g.conv] for g in groups[5:]]


def test_the_late_beta_setting_applies_to_vgg_models_only():
    setting = {"from_conv": 8, "beta": 0.92}
    assert vgg_late_beta(_model("vgg16_bn", 3, 32), setting) == (8, 0.92)
    # vgg11_bn has 8 convolutions: none from index 8 on, so no late beta is recorded
    assert vgg_late_beta(_model("vgg11_bn", 3, 32), setting) is None
    assert vgg_late_beta(_model("resnet20", 1, 16), setting) is None
    assert vgg_late_beta(_model("lenet5", 1, 28), setting) is None
    assert vgg_late_beta(_model("vgg11_bn", 3, 32), None) is None


# --- CKA block removal ---------------------------------------------------------------------------


def _resnet_with_identity_block(block: str) -> nn.Module:
    """A ResNet-20 in which ``block``'s residual branch outputs zero: since its input is
    post-ReLU (non-negative), the block is the identity."""
    model = _model("resnet20", 1, 16)
    bn2 = dict(model.named_modules())[f"{block}.bn2"]
    with torch.no_grad():
        bn2.weight.zero_()
        bn2.bias.zero_()
    return model


@pytest.mark.parametrize("block", ["layer1.1", "layer2.2", "layer3.1"])
def test_cka_removal_removes_the_identity_block(block):
    model = _resnet_with_identity_block(block)
    images = torch.randn(64, 1, 16, 16)
    removal = cka_block_removal(model, images)
    assert removal.removed == block
    assert removal.scores[block] == pytest.approx(1.0, abs=1e-9)
    assert max(v for k, v in removal.scores.items() if k != block) < 1 - 1e-6
    assert block not in dict(removal.model.named_modules())
    torch.testing.assert_close(removal.model.eval()(images), model(images), rtol=0, atol=1e-5)


def test_downsampling_blocks_are_never_candidates():
    model = _model("resnet20", 1, 16)
    assert removable_blocks(model) == [
        "layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"
    ]  # fmt: skip
    for block in ("layer2.0", "layer3.0"):
        assert dict(model.named_modules())[block].downsample
        with pytest.raises(ValueError, match="not a removable block"):
            remove_block(model, block)
    images = torch.randn(16, 1, 16, 16)
    for _ in range(7):
        removal = cka_block_removal(model, images, "any_non_downsampling")
        assert not dict(model.named_modules())[removal.removed].downsample
        model = removal.model.eval()
    assert removable_blocks(model) == []
    with pytest.raises(ValueError, match="no removable residual block"):
        cka_block_removal(model, images, "any_non_downsampling")


def _stage_blocks(model: nn.Module) -> dict[int, list[str]]:
    stages: dict[int, list[str]] = {}
    for block in (n for n in dict(model.named_modules()) if n.count(".") == 1):
        if block.startswith("layer"):
            stages.setdefault(int(block[5 : block.index(".")]), []).append(block)
    return stages


@pytest.mark.parametrize("stage_blocks", [(3, 3, 3), (4, 5, 3)])
def test_authors_candidates_keep_every_stage_first_block_and_two_blocks(stage_blocks):
    torch.manual_seed(0)
    model = build_model("resnet20", 1, 10, 16, stage_blocks=list(stage_blocks)).eval()
    assert candidate_blocks(model, "authors") == [
        f"layer{s}.{b}" for s, n in enumerate(stage_blocks, start=1) for b in range(1, n)
    ]
    assert "layer1.0" in candidate_blocks(model, "any_non_downsampling")
    steps = removable_count(model, "authors")
    assert steps == sum(n - 2 for n in stage_blocks)
    images = torch.randn(16, 1, 16, 16)
    for _ in range(steps):
        candidates = candidate_blocks(model, "authors")
        stages = _stage_blocks(model)
        for block in candidates:
            stage = int(block[5 : block.index(".")])
            assert block != stages[stage][0]  # never a stage's first block
            assert len(stages[stage]) > 2  # never leaves a stage with fewer than 2
        removal = cka_block_removal(model, images, "authors")
        assert removal.removed in candidates and set(removal.scores) == set(candidates)
        model = removal.model.eval()
    stages = _stage_blocks(model)
    assert [blocks for _, blocks in sorted(stages.items())] == [
        [f"layer{s}.0", *blocks[1:]] for s, blocks in sorted(stages.items())
    ]
    assert all(len(blocks) == 2 for blocks in stages.values())
    assert candidate_blocks(model, "authors") == []
    with pytest.raises(ValueError, match="no removable residual block left under the 'authors'"):
        cka_block_removal(model, images, "authors")
    # the other rule would still remove more: the difference is the rule's alone
    assert len(candidate_blocks(model, "any_non_downsampling")) == 4  # layer1.0 and 3 others


def test_remaining_layers_keep_their_names_and_weights():
    model = _model("resnet20", 1, 16)
    smaller = remove_block(remove_block(model, "layer2.1"), "layer1.0")
    assert smaller.arch["removed_blocks"] == ["layer1.0", "layer2.1"]
    assert "layer2.1" not in smaller.recorded_layers
    assert "layer2.2" in smaller.recorded_layers
    parent = model.state_dict()
    for key, value in smaller.state_dict().items():
        assert torch.equal(value, parent[key]), key


@pytest.mark.parametrize("method", ["epruner", "cka_layers"])
def test_structurally_pruned_network_reloads_from_its_files_identically(method, tmp_path):
    model = _model("resnet20", 1, 16)
    if method == "epruner":
        pruned = epruner(model, beta=1.0, seed=0).model
    else:
        pruned = cka_block_removal(model, torch.randn(32, 1, 16, 16)).model
    save_checkpoint(pruned, tmp_path / "model.pt", {"method": method})
    reloaded, provenance = load_checkpoint(tmp_path / "model.pt")
    assert provenance == {"method": method}
    assert reloaded.arch == pruned.arch
    assert reloaded.recorded_layers == pruned.recorded_layers
    state = pruned.state_dict()
    assert reloaded.state_dict().keys() == state.keys()
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(reloaded.eval()(x), pruned.eval()(x))


# --- accounting ----------------------------------------------------------------------------------


def test_structured_sparsity_and_counts_are_measured_against_the_dense_parent():
    model = _model("resnet20", 1, 16)
    smaller = remove_block(model, "layer3.1")
    report = structured_sparsity(smaller, model)
    assert report["layers"]["layer3.1.conv1.weight"] == {
        "kept": 0,
        "size": 64 * 64 * 9,
        "sparsity": 1,
    }
    assert report["layers"]["layer3.2.conv1.weight"]["sparsity"] == 0
    removed = 2 * 64 * 64 * 9
    dense_size = sum(mask.numel() for mask in full_masks(model).values())
    assert report["size"] == dense_size
    assert report["sparsity"] == pytest.approx(removed / dense_size)
    counts = count(smaller, (1, 16, 16), dense=model)
    assert counts["parameters"]["dense"] == sum(p.numel() for p in model.parameters())
    # the block's two convolutions and two BatchNorms (weight and bias each) are gone
    removed_parameters = removed + 4 * 64
    assert counts["parameters"]["remaining"] == counts["parameters"]["dense"] - removed_parameters
    flops = count(model, (1, 16, 16))["flops"]["dense"]
    assert counts["flops"]["dense"] == flops
    assert counts["flops"]["remaining"] == flops - 2 * removed * 4 * 4  # 4x4 maps in stage 3


def test_finetuning_runs_the_schedule_over_its_own_epochs():
    cfg = {"epochs": 40, "milestones": [20, 30], "schedule": "multistep", "lr": 0.1}
    assert finetune_settings(cfg, 4) == {**cfg, "epochs": 4, "milestones": [2, 3]}
    assert finetune_settings(cfg, 1)["milestones"] == []


@pytest.mark.parametrize(
    ("method", "epochs", "milestones"),
    [("epruner", 150, [50, 100]), ("epruner", 15, [5, 10]), ("cka_layers", 20, [10, 15])],
)
def test_authors_fine_tuning_replaces_the_schedule_and_shortens_it(method, epochs, milestones):
    """A job fine-tunes with the train block the authors' values replace, shortened to the
    round's epochs (what ``prune_round`` hands ``finetune_and_save``)."""
    train = {"epochs": 8, "lr": 0.05, "schedule": "cosine", "milestones": [], "augment": "crop"}
    cfg = finetune_settings({**train, **AUTHORS_FINETUNING[method]}, epochs)
    assert cfg["epochs"] == epochs and cfg["milestones"] == milestones
    assert cfg["lr"] == 0.01 and cfg["schedule"] == "multistep"
    assert cfg["augment"] == "crop"  # augmentation stays the experiment's
