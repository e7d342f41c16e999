"""The one training loop: optimizer and LR schedule from settings, mask enforcement, seeding.

Used for the dense network and for every retraining / fine-tuning step of the pruning methods.
With masks, pruned weights stay exactly zero through every step: their gradients are zeroed
before the optimizer step (so momentum and Adam moments never see them) and the mask is
re-applied after it (so weight decay or any optimizer detail cannot revive them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from prunesim.data import Normalizer, Splits
from prunesim.device import torch_device
from prunesim.io import JobFailure
from prunesim.pruning.masks import Masks, apply_masks, mask_gradients

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The ``train`` block of an experiment's config."""

    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | multistep | constant
    milestones: tuple[int, ...] = ()  # multistep: epochs at which the LR is multiplied by gamma
    gamma: float = 0.1
    epochs: int = 8
    batch_size: int = 64
    augment: str = "none"  # none | crop | crop_flip
    eval_batch_size: int = 1000


def train_settings(train_cfg: dict) -> TrainSettings:
    """The settings of a config's ``train`` block (lists as tuples)."""
    cfg = dict(train_cfg)
    cfg["milestones"] = tuple(cfg.get("milestones", ()))
    return TrainSettings(**cfg)


class TrainingDivergedError(JobFailure):
    """The loss became NaN or infinite: training stops there instead of saving a broken
    network that every later job would turn into numbers."""


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


def _sgd(params, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
    )


def _adam(params, s: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam}

SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, TrainSettings], object]] = {
    "cosine": lambda opt, s: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs),
    "multistep": lambda opt, s: torch.optim.lr_scheduler.MultiStepLR(
        opt, milestones=list(s.milestones), gamma=s.gamma
    ),
    "constant": lambda opt, s: torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0),
}

AUGMENTATIONS = ("none", "crop", "crop_flip")


def _augment(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Random 4-pixel-padded crops (and horizontal flips): the standard CIFAR augmentation."""
    if kind == "none":
        return images
    n, _, h, w = images.shape
    padded = nn.functional.pad(images, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator).tolist()
    dx = torch.randint(0, 9, (n,), generator=generator).tolist()
    out = torch.stack(
        [padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(zip(dy, dx, strict=True))]
    )
    if kind == "crop_flip":
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


def batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches in a seeded random order (``generator``) or in order (``None``)."""
    n = len(x)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size].to(x.device)
        yield x[idx], y[idx]


@torch.inference_mode()
def loss_and_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, normalize: Normalizer, batch_size: int
) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on uint8 images ``x``."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for xb, yb in batches(x, y, batch_size):
        logits = model(normalize(xb))
        loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    return loss_sum / len(x), correct / len(x)


def train(
    model: nn.Module,
    splits: Splits,
    settings: TrainSettings,
    seed: int,
    masks: Masks | None = None,
    device: torch.device | None = None,
    where: str = "",
) -> TrainResult:
    """Train ``model`` in place with a fresh optimizer and the full LR schedule.

    One log line per epoch (loss, train and test accuracy, LR). With ``masks``, masked weights
    are zero on entry and stay exactly zero through every step. A NaN or infinite loss stops
    training with a :class:`TrainingDivergedError` naming ``where`` (which model), the epoch
    and the batch.
    """
    if settings.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {settings.optimizer!r}; expected {sorted(OPTIMIZERS)}")
    if settings.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {settings.schedule!r}; expected {sorted(SCHEDULES)}")
    if settings.augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {settings.augment!r}; expected {AUGMENTATIONS}")
    device = device or torch_device("auto")
    model.to(device)
    masks = {k: v.to(device) for k, v in masks.items()} if masks else None
    if masks:
        apply_masks(model, masks)
    generator = torch.Generator().manual_seed(seed)
    normalize = Normalizer(*splits.channel_stats(), device=device)
    train_x = torch.as_tensor(splits.train_x, device=device)
    train_y = torch.as_tensor(splits.train_y, device=device)
    test_x = torch.as_tensor(splits.test_x, device=device)
    test_y = torch.as_tensor(splits.test_y, device=device)

    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), settings)
    scheduler = SCHEDULES[settings.schedule](optimizer, settings)
    result = TrainResult()
    for epoch in range(1, settings.epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        for step, (xb, yb) in enumerate(batches(train_x, train_y, settings.batch_size, generator)):
            xb = _augment(xb, settings.augment, generator)
            logits = model(normalize(xb))
            loss = nn.functional.cross_entropy(logits, yb)
            if not math.isfinite(loss_value := loss.item()):
                raise TrainingDivergedError(
                    f"training diverged{f' ({where})' if where else ''}: loss is {loss_value} at "
                    f"epoch {epoch}, batch {step + 1}, learning rate {lr:g}; the learning rate is "
                    "likely too high for this model (lower train.lr, or check the data)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if masks:
                mask_gradients(model, masks)
            optimizer.step()
            if masks:
                apply_masks(model, masks)
            loss_sum += loss_value * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
        scheduler.step()
        broken = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
        if broken:  # the last step of the epoch overflowed after a finite loss
            raise TrainingDivergedError(
                f"training diverged{f' ({where})' if where else ''}: parameters {broken[:3]} "
                f"hold NaN or infinity after epoch {epoch}, learning rate {lr:g}; the learning "
                "rate is likely too high for this model (lower train.lr)"
            )
        test_loss, test_acc = loss_and_accuracy(
            model, test_x, test_y, normalize, settings.eval_batch_size
        )
        record = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_sum / len(train_x),
            "train_accuracy": correct / len(train_x),
            "test_loss": test_loss,
            "test_accuracy": test_acc,
            "seconds": time.perf_counter() - start,
        }
        result.history.append(record)
        log.info(
            "epoch %d/%d  loss %.4f  train_acc %.4f  test_acc %.4f  lr %.4g  (%.1f s)",
            epoch,
            settings.epochs,
            record["train_loss"],
            record["train_accuracy"],
            test_acc,
            lr,
            record["seconds"],
        )
    if settings.epochs == 0:
        test_loss, test_acc = loss_and_accuracy(
            model, test_x, test_y, normalize, settings.eval_batch_size
        )
        result.history.append({"epoch": 0, "test_loss": test_loss, "test_accuracy": test_acc})
    return result
