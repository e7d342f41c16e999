"""Model registry: the CNNs whose layer representations are studied under pruning.

Every model is built through :func:`build_model` and carries three attributes that the rest of
the package relies on:

* ``recorded_layers`` -- names (as in ``named_modules()``) of the modules whose outputs are
  recorded, in forward order; each of them runs exactly once per forward pass, so a forward hook
  sees one activation per input batch.
* ``output_layer`` -- name of the final classifier ``nn.Linear`` (pruning may exclude it).
* ``arch`` -- JSON-serialisable build arguments; ``rebuild(model.arch)`` recreates the same
  architecture, so a checkpoint only needs ``arch`` and the ``state_dict``.

No module instance is called twice in one forward pass (each ReLU is its own module), so hooks
are unambiguous. Module names are short and readable (``conv1_2``, ``relu3_1``, ``layer2.0``)
because they end up as figure axis labels.
"""

from __future__ import annotations

import logging
import numbers
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MODELS",
    "BasicBlock",
    "GlobalAvgPool",
    "LeNet5",
    "ModelSpec",
    "ResNet",
    "VGG",
    "ZeroPadShortcut",
    "architecture",
    "build_model",
    "output_layer",
    "rebuild",
    "recorded_layers",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture.

    ``build(in_channels, num_classes, image_size, **arch_kwargs)`` is the raw constructor; use
    :func:`build_model`, which also validates the input size and stamps ``model.arch``.
    """

    name: str
    build: Callable[..., nn.Module]
    min_image_size: int
    description: str


# --------------------------------------------------------------------------------------------
# small helpers


def _positive_ints(values: Sequence[int], length: int, what: str) -> list[int]:
    """Validate a list of ``length`` positive integers (widths, block counts)."""
    values = list(values)
    if len(values) != length:
        raise ValueError(f"{what} must have {length} entries, got {len(values)}: {values}")
    if not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(f"{what} must be positive integers, got {values}")
    return [int(v) for v in values]


def _jsonable(value: Any, key: str) -> Any:
    """Normalise an architecture argument to plain JSON types (tuples become lists)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, key) for k, v in value.items()}
    raise TypeError(f"architecture argument {key!r} is not JSON-serialisable: {value!r}")


def _conv_bn_relu(
    layers: OrderedDict[str, nn.Module], suffix: str, in_channels: int, out_channels: int
) -> None:
    """Append ``conv{suffix}``, ``bn{suffix}``, ``relu{suffix}`` (3x3, padding 1) to ``layers``."""
    layers[f"conv{suffix}"] = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    layers[f"bn{suffix}"] = nn.BatchNorm2d(out_channels)
    layers[f"relu{suffix}"] = nn.ReLU()


def _init_conv_bn(model: nn.Module) -> None:
    """Kaiming-normal convolutions (zero bias), unit/zero BatchNorm; linears keep torch defaults."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------
# LeNet-5


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.

    Classic on 32x32 inputs; on 28x28 (MNIST-like) the first convolution pads by 2 so the
    feature maps match the 32x32 network. The flattened size follows from ``image_size``.
    ``widths`` (default 6, 16) sets the filter counts of ``conv1`` and ``conv2``.

    ``seed_variant=True`` is the seed study's LeNet-5 (marcozullich/pruned_layer_similarity,
    ``layer_sim/networks.py``): no padding, 2x2 average pooling. Both record every ReLU and
    pool and the logits (the seed's MNIST demo hooks ``(nn.ReLU, nn.AvgPool2d)``).
    """

    recorded_layers: tuple[str, ...]
    output_layer: str

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: Sequence[int] | None = None,
        seed_variant: bool = False,
    ) -> None:
        conv1, conv2 = _positive_ints([6, 16] if widths is None else widths, 2, "lenet5 widths")
        padding = 2 if image_size == 28 and not seed_variant else 0
        pool = nn.AvgPool2d if seed_variant else nn.MaxPool2d
        side = (image_size + 2 * padding - 4) // 2  # conv1 (5x5), pool1
        side = (side - 4) // 2  # conv2 (5x5), pool2
        if side < 1:
            raise ValueError(f"lenet5: image_size {image_size} leaves no spatial extent")
        super().__init__(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, conv1, 5, padding=padding)),
                    ("relu1", nn.ReLU()),
                    ("pool1", pool(2)),
                    ("conv2", nn.Conv2d(conv1, conv2, 5)),
                    ("relu2", nn.ReLU()),
                    ("pool2", pool(2)),
                    ("flatten", nn.Flatten()),
                    ("fc1", nn.Linear(conv2 * side * side, 120)),
                    ("relu3", nn.ReLU()),
                    ("fc2", nn.Linear(120, 84)),
                    ("relu4", nn.ReLU()),
                    ("fc3", nn.Linear(84, num_classes)),
                ]
            )
        )
        self.recorded_layers = ("relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "fc3")
        self.output_layer = "fc3"


def _build_lenet5_seed(
    in_channels: int, num_classes: int, image_size: int, widths: Sequence[int] | None = None
) -> LeNet5:
    return LeNet5(in_channels, num_classes, image_size, widths, seed_variant=True)


# --------------------------------------------------------------------------------------------
# VGG

# Convolution widths per stage; every stage ends in a 2x2 max pool.
_VGG_STAGES: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg7_bn_fc256": ((64, 64), (128, 128), (256, 256, 256)),
    # the seed study's VGG_SVHN (marcozullich/pruned_layer_similarity, layer_sim/networks.py)
    "vgg_svhn_seed": ((32, 32), (64, 64), (128, 128), (256,)),
    "vgg11_bn": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg16_bn": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}


class VGG(nn.Sequential):
    """VGG with BatchNorm: stages of conv3x3+BN+ReLU, each followed by a 2x2 max pool.

    Modules are named ``conv{stage}_{i}``, ``bn{stage}_{i}``, ``relu{stage}_{i}``,
    ``pool{stage}`` (1-based). With ``hidden=None`` the classifier is a single ``fc``
    (the common CIFAR variant); otherwise ``fc1`` -> ``relu_fc1`` -> ``fc2``. With
    ``global_pool`` the last pool's output is averaged over positions (``gap``, not
    recorded, as in the seed study's network) instead of flattened.
    Convolutions keep their bias, as in the reference CIFAR implementations.
    """

    recorded_layers: tuple[str, ...]
    output_layer: str

    def __init__(
        self,
        stages: Sequence[Sequence[int]],
        in_channels: int,
        num_classes: int,
        image_size: int,
        hidden: int | None = None,
        global_pool: bool = False,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        recorded: list[str] = []
        channels = in_channels
        for s, stage in enumerate(stages, start=1):
            for i, width in enumerate(stage, start=1):
                _conv_bn_relu(layers, f"{s}_{i}", channels, width)
                recorded.append(f"relu{s}_{i}")
                channels = width
            layers[f"pool{s}"] = nn.MaxPool2d(2)
            recorded.append(f"pool{s}")
        side = image_size // 2 ** len(stages)
        if side < 1:
            raise ValueError(f"VGG: image_size {image_size} leaves no spatial extent")
        if global_pool:
            layers["gap"] = GlobalAvgPool()
            features = channels
        else:
            layers["flatten"] = nn.Flatten()
            features = channels * side * side
        if hidden is None:
            layers["fc"] = nn.Linear(features, num_classes)
            recorded.append("fc")
        else:
            layers["fc1"] = nn.Linear(features, hidden)
            layers["relu_fc1"] = nn.ReLU()
            layers["fc2"] = nn.Linear(hidden, num_classes)
            recorded += ["relu_fc1", "fc2"]
        super().__init__(layers)
        _init_conv_bn(self)
        self.recorded_layers = tuple(recorded)
        self.output_layer = recorded[-1]


def _vgg_stages(name: str, widths: Sequence[int] | None) -> list[list[int]]:
    """Default stage widths for ``name``, or ``widths`` (flat, cfg order) split into stages."""
    default = _VGG_STAGES[name]
    if widths is None:
        return [list(stage) for stage in default]
    flat = _positive_ints(widths, sum(len(stage) for stage in default), f"{name} widths")
    stages, start = [], 0
    for stage in default:
        stages.append(flat[start : start + len(stage)])
        start += len(stage)
    return stages


def _build_vgg7_bn_fc256(
    in_channels: int,
    num_classes: int,
    image_size: int,
    widths: Sequence[int] | None = None,
    hidden: int = 256,
) -> VGG:
    """7-conv VGG-BN (64-256, three pools) with a 256-unit hidden classifier layer."""
    (hidden,) = _positive_ints([hidden], 1, "vgg7_bn_fc256 hidden")
    stages = _vgg_stages("vgg7_bn_fc256", widths)
    return VGG(stages, in_channels, num_classes, image_size, hidden=hidden)


def _build_vgg_svhn_seed(
    in_channels: int, num_classes: int, image_size: int, widths: Sequence[int] | None = None
) -> VGG:
    """The seed study's VGG_SVHN: 7 conv-BN-ReLU (32, 32, 64, 64, 128, 128, 256), a 2x2 max
    pool after each of four stages, global average pooling and one linear layer."""
    stages = _vgg_stages("vgg_svhn_seed", widths)
    return VGG(stages, in_channels, num_classes, image_size, global_pool=True)


def _build_vgg11_bn(
    in_channels: int, num_classes: int, image_size: int, widths: Sequence[int] | None = None
) -> VGG:
    """CIFAR VGG-11 (cfg A) with BatchNorm and a single linear classifier."""
    return VGG(_vgg_stages("vgg11_bn", widths), in_channels, num_classes, image_size)


def _build_vgg16_bn(
    in_channels: int, num_classes: int, image_size: int, widths: Sequence[int] | None = None
) -> VGG:
    """CIFAR VGG-16 (cfg D) with BatchNorm and a single linear classifier."""
    return VGG(_vgg_stages("vgg16_bn", widths), in_channels, num_classes, image_size)


# --------------------------------------------------------------------------------------------
# CIFAR ResNet (He et al. 2016, option-A shortcuts)


class ZeroPadShortcut(nn.Module):
    """Parameter-free option-A shortcut: subsample by ``stride``, zero-pad the new channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"option-A shortcut cannot shrink channels ({in_channels} -> {out_channels})"
            )
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_front}, {self.pad_back})"


class ProjectionShortcut(nn.Sequential):
    """A 1x1 convolution (``stride``, no bias) and BatchNorm: the projection shortcut of
    TensorFlow's official ResNet v1, which every stage's first block uses."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(out_channels),
            )
        )


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers with a residual connection; ``relu2`` follows the addition.

    ``downsample`` is True when the block halves the spatial size (stride 2);
    ``inner_channels`` (default ``out_channels``) is the width of ``conv1``, the only width
    filter pruning may change (the residual sum fixes ``conv2``'s). The shortcut is the
    identity where shapes allow, else option A's zero padding, or with ``projection`` a
    :class:`ProjectionShortcut` (whatever the shapes).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        inner_channels: int | None = None,
        projection: bool = False,
    ) -> None:
        super().__init__()
        inner = out_channels if inner_channels is None else inner_channels
        self.downsample = stride != 1
        self.conv1 = nn.Conv2d(in_channels, inner, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(inner, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if projection:
            self.shortcut = ProjectionShortcut(in_channels, out_channels, stride)
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))

    @property
    def removable(self) -> bool:
        """Whether the network stays well-formed without this block: its shortcut is the
        identity (no stride, no new channels)."""
        return isinstance(self.shortcut, nn.Identity)


class GlobalAvgPool(nn.Module):
    """Average over the spatial dimensions, returning a flat ``(batch, channels)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class ResNet(nn.Module):
    """CIFAR ResNet: stem (``conv1``/``bn1``/``relu1``), stages ``layer1``..``layerK``, ``avgpool``
    (flattened, shape ``(batch, channels)``), ``fc``.

    Stage ``k`` has ``stage_blocks[k]`` blocks of width ``widths[k]``; the stem has ``widths[0]``
    channels and every stage after the first starts with a stride-2 block. ``inner_widths``
    (one per block, in order) sets each block's ``conv1`` width. Blocks named in
    ``removed_blocks`` (``"layer2.1"``) are left out; the others keep their names, so a layer
    of a pruned network is matched by name to the same layer of its parent. With
    ``projection_shortcuts`` every stage's first block has a 1x1 projection shortcut
    (TensorFlow's official ResNet v1, as Renda et al. 2020 train it) instead of option A.
    """

    recorded_layers: tuple[str, ...]
    output_layer: str

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stage_blocks: Sequence[int],
        widths: Sequence[int],
        inner_widths: Sequence[int] | None = None,
        removed_blocks: Sequence[str] = (),
        projection_shortcuts: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu1 = nn.ReLU()
        recorded = ["relu1"]
        channels = widths[0]
        default_inner = [w for b, w in zip(stage_blocks, widths, strict=True) for _ in range(b)]
        # Every block of the full architecture, removed ones included (what the arch lists).
        self.inner_widths = list(inner_widths or default_inner)
        self.block_names = [
            f"layer{s}.{b}" for s, count in enumerate(stage_blocks, start=1) for b in range(count)
        ]
        inner = iter(self.inner_widths)
        for s, (blocks, width) in enumerate(zip(stage_blocks, widths, strict=True), start=1):
            stage: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(blocks):
                stride = 2 if s > 1 and b == 0 else 1
                inner_width = next(inner)
                if f"layer{s}.{b}" in removed_blocks:
                    continue
                projection = projection_shortcuts and b == 0
                stage[str(b)] = BasicBlock(channels, width, stride, inner_width, projection)
                channels = width
                recorded.append(f"layer{s}.{b}")
            self.add_module(f"layer{s}", nn.Sequential(stage))
        self.avgpool = GlobalAvgPool()
        self.fc = nn.Linear(channels, num_classes)
        self.num_stages = len(stage_blocks)
        _init_conv_bn(self)
        self.recorded_layers = (*recorded, "avgpool", "fc")
        self.output_layer = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        for s in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{s}")(x)
        return self.fc(self.avgpool(x))


def _build_resnet(
    depth: int,
    in_channels: int,
    num_classes: int,
    stage_blocks: Sequence[int] | None,
    widths: Sequence[int] | None,
    inner_widths: Sequence[int] | None = None,
    removed_blocks: Sequence[str] = (),
    projection: bool = False,
) -> ResNet:
    """ResNet-``depth`` (depth = 6n + 2) with optional per-stage block counts and widths,
    per-block inner widths and removed blocks; ``projection``: 1x1 projection shortcuts."""
    n = (depth - 2) // 6
    name = f"resnet{depth}" + ("_projection" if projection else "")
    blocks = _positive_ints([n] * 3 if stage_blocks is None else stage_blocks, 3, f"{name} blocks")
    chans = _positive_ints([16, 32, 64] if widths is None else widths, 3, f"{name} widths")
    decreasing = any(b < a for a, b in zip(chans[:-1], chans[1:], strict=True))
    if decreasing and not projection:
        raise ValueError(f"{name} widths must be non-decreasing (option-A shortcuts), got {chans}")
    if inner_widths is not None:
        inner_widths = _positive_ints(inner_widths, sum(blocks), f"{name} inner_widths")
    names = [f"layer{s}.{b}" for s, count in enumerate(blocks, start=1) for b in range(count)]
    for block in removed_blocks:
        if block not in names:
            raise ValueError(f"{name}: removed block {block!r} is not one of {names}")
        stage, index = (int(part) for part in block.removeprefix("layer").split("."))
        if stage > 1 and index == 0:
            raise ValueError(f"{name}: {block!r} is a downsampling block and cannot be removed")
        if projection and index == 0:
            raise ValueError(f"{name}: {block!r} has a projection shortcut and cannot be removed")
    return ResNet(
        in_channels, num_classes, blocks, chans, inner_widths, list(removed_blocks), projection
    )


def _resnet(depth: int, projection: bool = False) -> Callable[..., ResNet]:
    """The builder of ResNet-``depth``; ``image_size`` is irrelevant thanks to global pooling."""

    def build(
        in_channels: int,
        num_classes: int,
        image_size: int,
        stage_blocks: Sequence[int] | None = None,
        widths: Sequence[int] | None = None,
        inner_widths: Sequence[int] | None = None,
        removed_blocks: Sequence[str] = (),
    ) -> ResNet:
        return _build_resnet(
            depth,
            in_channels,
            num_classes,
            stage_blocks,
            widths,
            inner_widths,
            removed_blocks,
            projection,
        )

    return build


# --------------------------------------------------------------------------------------------
# registry and public helpers

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("lenet5", LeNet5, 16, "LeNet-5 (ReLU, max pool); conv1 padded on 28x28 inputs"),
        ModelSpec(
            "lenet5_seed",
            _build_lenet5_seed,
            16,
            "the seed study's LeNet-5: no padding, average pools",
        ),
        ModelSpec(
            "vgg7_bn_fc256",
            _build_vgg7_bn_fc256,
            8,
            "7-conv VGG-BN (64,64,M,128,128,M,256,256,256,M) + 256-unit hidden fc",
        ),
        ModelSpec(
            "vgg_svhn_seed",
            _build_vgg_svhn_seed,
            16,
            "the seed study's VGG_SVHN: 7-conv VGG-BN (32,32,M,64,64,M,128,128,M,256,M), "
            "global average pool, one linear layer",
        ),
        ModelSpec("vgg11_bn", _build_vgg11_bn, 32, "CIFAR VGG-11-BN with one linear classifier"),
        ModelSpec("vgg16_bn", _build_vgg16_bn, 32, "CIFAR VGG-16-BN with one linear classifier"),
        ModelSpec("resnet20", _resnet(20), 1, "CIFAR ResNet-20 (He et al. 2016, option A)"),
        ModelSpec("resnet56", _resnet(56), 1, "CIFAR ResNet-56 (He et al. 2016, option A)"),
        ModelSpec(
            "resnet20_projection",
            _resnet(20, projection=True),
            1,
            "CIFAR ResNet-20 with 1x1 projection shortcuts (conv + BN) in every stage's first "
            "block: TensorFlow's official ResNet v1, as Renda et al. 2020 train it",
        ),
    )
}


def build_model(
    name: str, in_channels: int, num_classes: int, image_size: int, **arch_kwargs: Any
) -> nn.Module:
    """Build registered model ``name`` for square ``image_size`` inputs.

    ``arch_kwargs`` are architecture options (``widths``; ``stage_blocks`` for ResNets;
    ``hidden`` for ``vgg7_bn_fc256``). The result carries ``recorded_layers``, ``output_layer`` and
    ``arch`` (all build arguments, JSON-serialisable) so it can be recreated by :func:`rebuild`.
    Initialisation draws from torch's global RNG: seed it first for reproducible weights.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    if image_size < spec.min_image_size:
        raise ValueError(
            f"model {name!r} needs image_size >= {spec.min_image_size}, got {image_size}"
        )
    for what, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model {name!r}: {what} must be a positive integer, got {value!r}")
    arch = {
        "name": name,
        "in_channels": int(in_channels),
        "num_classes": int(num_classes),
        "image_size": int(image_size),
        **{key: _jsonable(value, key) for key, value in arch_kwargs.items()},
    }
    model = spec.build(in_channels, num_classes, image_size, **arch_kwargs)
    model.arch = arch
    logger.debug("built %s with %d parameters", arch, sum(p.numel() for p in model.parameters()))
    return model


def rebuild(arch: dict[str, Any]) -> nn.Module:
    """Recreate a model from its ``model.arch`` (e.g. from a checkpoint); weights are fresh."""
    missing = {"name", "in_channels", "num_classes", "image_size"} - set(arch)
    if missing:
        raise ValueError(f"arch is missing {sorted(missing)}: {arch}")
    return build_model(**arch)


def _attribute(model: nn.Module, attribute: str) -> Any:
    """Fetch a registry attribute, with a clear error for models not built here."""
    try:
        return getattr(model, attribute)
    except AttributeError:
        raise TypeError(
            f"{type(model).__name__} has no {attribute!r}; "
            "build it with prunesim.models.build_model"
        ) from None


def recorded_layers(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs are recorded, in forward order."""
    return list(_attribute(model, "recorded_layers"))


def architecture(model: nn.Module) -> dict[str, Any]:
    """The build arguments of a registered model (``model.arch``), as :func:`rebuild` takes."""
    return dict(_attribute(model, "arch"))


def output_layer(model: nn.Module) -> str:
    """Name of the final classifier ``nn.Linear`` (which pruning may exclude)."""
    return _attribute(model, "output_layer")
