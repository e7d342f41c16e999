"""Tests for the model registry (prunesim.models)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from torch import nn

from prunesim.models import (
    MODELS,
    BasicBlock,
    build_model,
    output_layer,
    rebuild,
    recorded_layers,
)

NUM_CLASSES = 10
BATCH = 2

# (name, in_channels, image_size): the natural input of every registered model.
NATURAL_INPUTS = [
    ("lenet5", 1, 28),
    ("lenet5", 3, 32),
    ("lenet5_seed", 1, 28),
    ("vgg7_bn_fc256", 3, 32),
    ("vgg7_bn_fc256", 1, 32),
    ("vgg_svhn_seed", 3, 32),
    ("vgg11_bn", 3, 32),
    ("vgg16_bn", 3, 32),
    ("resnet20", 3, 32),
    ("resnet56", 3, 32),
    ("resnet20_projection", 3, 32),
]
CASE_IDS = [f"{name}-{c}x{s}x{s}" for name, c, s in NATURAL_INPUTS]


def _build(name: str, in_channels: int, image_size: int, seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, in_channels, NUM_CLASSES, image_size, **kw).eval()


def _input(in_channels: int, image_size: int) -> torch.Tensor:
    return torch.randn(
        BATCH, in_channels, image_size, image_size, generator=torch.Generator().manual_seed(1)
    )


def _hook_calls(
    model: nn.Module, x: torch.Tensor
) -> tuple[list[str], dict[str, torch.Tensor], torch.Tensor]:
    """One forward pass: module names in hook order, each module's output, and the logits."""
    calls: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if name == "":
            continue

        def hook(_module, _inputs, output, name=name):
            calls.append(name)
            outputs[name] = output

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls, outputs, logits


def test_registry_has_exactly_the_documented_models():
    assert set(MODELS) == {
        "lenet5",
        "lenet5_seed",
        "vgg7_bn_fc256",
        "vgg_svhn_seed",
        "vgg11_bn",
        "vgg16_bn",
        "resnet20",
        "resnet56",
        "resnet20_projection",
    }
    for name, spec in MODELS.items():
        assert spec.name == name
        assert spec.description


@pytest.mark.parametrize(("name", "in_channels", "image_size"), NATURAL_INPUTS, ids=CASE_IDS)
def test_natural_input_gives_batch_by_classes_logits(name, in_channels, image_size):
    model = _build(name, in_channels, image_size)
    with torch.no_grad():
        logits = model(_input(in_channels, image_size))
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(("name", "in_channels", "image_size"), NATURAL_INPUTS, ids=CASE_IDS)
def test_recorded_layers_fire_once_each_in_forward_order(name, in_channels, image_size):
    model = _build(name, in_channels, image_size)
    recorded = recorded_layers(model)
    assert recorded == list(model.recorded_layers)
    assert set(recorded) <= dict(model.named_modules()).keys()
    calls, _, _ = _hook_calls(model, _input(in_channels, image_size))
    assert [c for c in calls if c in set(recorded)] == recorded


@pytest.mark.parametrize(("name", "in_channels", "image_size"), NATURAL_INPUTS, ids=CASE_IDS)
def test_no_module_runs_twice_in_one_forward_pass(name, in_channels, image_size):
    model = _build(name, in_channels, image_size)
    calls, _, _ = _hook_calls(model, _input(in_channels, image_size))
    repeated = {m: n for m, n in Counter(calls).items() if n > 1}
    assert not repeated
    # and no module object is registered under two names (which would also mean reuse)
    modules = [m for _, m in model.named_modules(remove_duplicate=False)]
    assert len(modules) == len({id(m) for m in modules})


@pytest.mark.parametrize(("name", "in_channels", "image_size"), NATURAL_INPUTS, ids=CASE_IDS)
def test_output_layer_is_last_linear_and_produces_the_logits(name, in_channels, image_size):
    model = _build(name, in_channels, image_size)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert output_layer(model) == model.output_layer == linears[-1]
    assert recorded_layers(model)[-1] == output_layer(model)
    _, outputs, logits = _hook_calls(model, _input(in_channels, image_size))
    assert torch.equal(outputs[output_layer(model)], logits)


@pytest.mark.parametrize(("name", "in_channels", "image_size"), NATURAL_INPUTS, ids=CASE_IDS)
def test_rebuild_from_json_arch_reproduces_outputs(name, in_channels, image_size):
    model = _build(name, in_channels, image_size, seed=0)
    arch = json.loads(json.dumps(model.arch))
    assert arch == {
        "name": name,
        "in_channels": in_channels,
        "num_classes": NUM_CLASSES,
        "image_size": image_size,
    }
    torch.manual_seed(123)  # different init: equality must come from the state dict
    clone = rebuild(arch).eval()
    clone.load_state_dict(model.state_dict())
    x = _input(in_channels, image_size)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
    assert recorded_layers(clone) == recorded_layers(model)


def test_same_seed_gives_identical_weights():
    a, b = _build("resnet20", 3, 32, seed=7), _build("resnet20", 3, 32, seed=7)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vgg7_bn_fc256", {"widths": [32, 32, 64, 64, 128, 128, 128], "hidden": 64}),
        ("vgg_svhn_seed", {"widths": [16, 16, 32, 32, 64, 64, 128]}),
        ("vgg11_bn", {"widths": (32, 64, 128, 128, 256, 256, 256, 256)}),
        ("vgg16_bn", {"widths": [8] * 13}),
        ("resnet20", {"stage_blocks": [1, 2, 1], "widths": [8, 16, 32]}),
        ("resnet56", {"stage_blocks": (2, 2, 2)}),
    ],
)
def test_custom_widths_and_blocks_round_trip_through_arch(name, kwargs):
    model = _build(name, 3, 32, **kwargs)
    arch = json.loads(json.dumps(model.arch))
    assert {k: arch[k] for k in kwargs} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()
    }
    clone = rebuild(arch).eval()
    clone.load_state_dict(model.state_dict())  # strict: identical shapes and names
    x = _input(3, 32)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
    if "widths" in kwargs:
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        if name.startswith("vgg"):
            assert [c.out_channels for c in convs] == list(kwargs["widths"])
        else:  # ResNet: the last conv has the last stage width
            assert convs[0].out_channels == kwargs["widths"][0]
            assert convs[-1].out_channels == kwargs["widths"][-1]
    if "stage_blocks" in kwargs:
        blocks = [n for n, m in model.named_modules() if isinstance(m, BasicBlock)]
        for stage, count in enumerate(kwargs["stage_blocks"], start=1):
            assert sum(n.startswith(f"layer{stage}.") for n in blocks) == count


@pytest.mark.parametrize(
    ("name", "in_channels", "image_size", "expected"),
    [
        ("lenet5", 1, 28, 61_706),
        ("resnet20", 3, 32, 269_722),
        # option A's count, plus three 1x1 projections (16x16, 16x32, 32x64) and their BatchNorm
        ("resnet20_projection", 3, 32, 269_722 + 16 * 16 + 16 * 32 + 32 * 64 + 2 * (16 + 32 + 64)),
        ("resnet56", 3, 32, 853_018),
        ("vgg11_bn", 3, 32, 9_231_114),
        ("vgg16_bn", 3, 32, 14_728_266),
    ],
)
def test_parameter_counts_match_reference_architectures(name, in_channels, image_size, expected):
    model = _build(name, in_channels, image_size)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_lenet5_flatten_size_follows_image_size():
    padded = _build("lenet5", 1, 28)
    classic = _build("lenet5", 1, 32)
    small = _build("lenet5", 1, 20)
    assert padded.conv1.padding == (2, 2) and classic.conv1.padding == (0, 0)
    assert padded.fc1.in_features == classic.fc1.in_features == 16 * 5 * 5
    assert small.fc1.in_features == 16 * 2 * 2
    assert small(_input(1, 20)).shape == (BATCH, NUM_CLASSES)


@pytest.mark.parametrize("name", ["resnet20", "resnet56"])
def test_resnet_downsampling_blocks_are_first_of_stages_2_and_3(name):
    model = _build(name, 3, 32)
    blocks = {n: m for n, m in model.named_modules() if isinstance(m, BasicBlock)}
    assert len(blocks) == (3 if name == "resnet20" else 9) * 3
    assert sorted(n for n, m in blocks.items() if m.downsample) == ["layer2.0", "layer3.0"]


def test_resnet_has_no_shortcut_parameters_and_kaiming_convs():
    model = _build("resnet20", 3, 32)
    assert not any("shortcut" in n for n, _ in model.named_parameters())
    conv = model.layer3[1].conv1  # fan_out = 64 * 9, so std ~ sqrt(2 / 576)
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)


def test_projection_resnet_projects_the_first_block_of_every_stage():
    model = _build("resnet20_projection", 3, 32)
    for stage, (in_channels, out_channels, stride) in enumerate(
        [(16, 16, 1), (16, 32, 2), (32, 64, 2)], start=1
    ):
        first = getattr(model, f"layer{stage}")[0]
        conv, bn = first.shortcut.conv, first.shortcut.bn
        assert (conv.in_channels, conv.out_channels) == (in_channels, out_channels)
        assert conv.kernel_size == (1, 1) and conv.stride == (stride, stride) and conv.bias is None
        assert bn.num_features == out_channels
        assert not first.removable
        assert all(block.removable for block in getattr(model, f"layer{stage}")[1:])
    with pytest.raises(ValueError, match="'layer1.0' has a projection shortcut"):
        _build("resnet20_projection", 3, 32, removed_blocks=["layer1.0"])


def test_resnet_shortcut_subsamples_and_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2)
    x = torch.randn(BATCH, 16, 8, 8)
    out = block.shortcut(x)
    assert out.shape == (BATCH, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_min_image_size_builds_and_runs(name):
    size = MODELS[name].min_image_size
    model = _build(name, 3, size)
    assert model(_input(3, size)).shape == (BATCH, NUM_CLASSES)


def test_unknown_model_name_is_a_value_error_naming_known_models():
    with pytest.raises(ValueError, match=r"unknown model 'alexnet'.*resnet20"):
        build_model("alexnet", 3, 10, 32)


@pytest.mark.parametrize(
    ("name", "image_size"),
    [("vgg16_bn", 28), ("lenet5", 8), ("vgg7_bn_fc256", 4), ("vgg_svhn_seed", 8)],
)
def test_too_small_image_is_a_value_error_naming_model_size_and_minimum(name, image_size):
    minimum = MODELS[name].min_image_size
    with pytest.raises(ValueError, match=rf"{name}.*>= {minimum}.*got {image_size}"):
        build_model(name, 3, 10, image_size)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("vgg16_bn", {"widths": [64] * 12}, "13 entries"),
        ("resnet20", {"stage_blocks": [3, 0, 3]}, "positive"),
        ("resnet20", {"widths": [32, 16, 64]}, "non-decreasing"),
    ],
)
def test_invalid_arch_kwargs_are_value_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_model(name, 3, 10, 32, **kwargs)


def test_helpers_reject_models_not_built_by_the_registry():
    with pytest.raises(TypeError, match="build_model"):
        recorded_layers(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="missing"):
        rebuild({"name": "resnet20"})


# The seed study's networks as marcozullich/pruned_layer_similarity defines them
# (layer_sim/networks.py): every parameter's shape in forward order, written out from that
# file, and the layers its hooks record (outputs of nn.ReLU and nn.MaxPool2d, then the logits).
def _conv_bn(c_in: int, c_out: int) -> list[tuple[int, ...]]:
    return [(c_out, c_in, 3, 3), (c_out,), (c_out,), (c_out,)]  # conv w, b; BN w, b


SEED_NETWORKS = {
    "vgg_svhn_seed": (
        3,
        32,
        [
            *_conv_bn(3, 32),
            *_conv_bn(32, 32),
            *_conv_bn(32, 64),
            *_conv_bn(64, 64),
            *_conv_bn(64, 128),
            *_conv_bn(128, 128),
            *_conv_bn(128, 256),
            (10, 256),
            (10,),
        ],  # fmt: skip
        12,  # 7 ReLU + 4 max pools (global average pool and linear: not hooked) + logits
    ),
    "lenet5_seed": (
        1,
        28,
        [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 256), (120,), (84, 120), (84,)]
        + [(10, 84), (10,)],
        7,  # 4 ReLU + 2 average pools (the seed's MNIST demo hooks ReLU and AvgPool2d) + logits
    ),
}


@pytest.mark.parametrize("name", sorted(SEED_NETWORKS))
def test_the_seed_studys_networks_have_its_parameters_and_recorded_layers(name):
    channels, size, shapes, recorded = SEED_NETWORKS[name]
    model = _build(name, channels, size)
    assert [tuple(p.shape) for p in model.parameters()] == shapes
    assert len(recorded_layers(model)) == recorded
    assert recorded_layers(model)[-1] == output_layer(model)
    kinds = {type(module) for module in model.modules()}
    if name == "lenet5_seed":
        assert nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds
        assert [layer for layer in recorded_layers(model) if layer.startswith("pool")] == [
            "pool1",
            "pool2",
        ]
    else:
        assert nn.Linear in kinds and sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
