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
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from prunesim.data import Normalizer, Splits
from prunesim.device import torch_device
from prunesim.io import JobFailure, progress
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
    clip_grad_norm: float | None = None  # bound on the gradients' global L2 norm per step
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
    # the model's state dict (a CPU copy) after epoch ``keep_state_at`` (0: before training)
    kept_state: dict | None = None

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


def _scheduler_after(optimizer: torch.optim.Optimizer, s: TrainSettings, epochs_done: int):
    """The schedule of ``s`` on ``optimizer``, advanced past ``epochs_done`` epochs: the LR
    is the one the full run uses in epoch ``epochs_done + 1``."""
    scheduler = SCHEDULES[s.schedule](optimizer, s)
    with warnings.catch_warnings():
        # stepping before any optimizer step is the point here, not a mistake
        warnings.filterwarnings(
            "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
        )
        for _ in range(epochs_done):
            scheduler.step()
    return scheduler


def final_lr(s: TrainSettings) -> float:
    """The learning rate of the schedule's last epoch (fine-tuning's rate)."""
    optimizer = OPTIMIZERS[s.optimizer]([torch.zeros(1, requires_grad=True)], s)
    _scheduler_after(optimizer, s, s.epochs - 1)
    return optimizer.param_groups[0]["lr"]


def finetuning(s: TrainSettings, epochs: int) -> TrainSettings:
    """``epochs`` at the final learning rate of ``s``, held constant (Renda et al. 2020's
    fine-tuning)."""
    return replace(s, lr=final_lr(s), schedule="constant", milestones=(), epochs=epochs)


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
    epochs_done: int = 0,
    keep_state_at: int | None = None,
) -> TrainResult:
    """Train ``model`` in place with a fresh optimizer over epochs ``epochs_done + 1`` to
    ``settings.epochs`` of the LR schedule (the whole schedule by default; rewinding retrains
    with its last epochs). ``keep_state_at``: an epoch (0: before the first step) whose end
    state the result keeps (the dense run's rewind point).

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
    if not 0 <= epochs_done <= settings.epochs:
        raise ValueError(f"epochs_done {epochs_done} outside 0..{settings.epochs}")
    if keep_state_at is not None and not epochs_done <= keep_state_at <= settings.epochs:
        raise ValueError(f"keep_state_at {keep_state_at} outside {epochs_done}..{settings.epochs}")
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
    scheduler = _scheduler_after(optimizer, settings, epochs_done)
    result = TrainResult()
    if keep_state_at == epochs_done:
        result.kept_state = _state_copy(model)
    for epoch in range(epochs_done + 1, settings.epochs + 1):
        start = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0
        lr = optimizer.param_groups[0]["lr"]
        steps = batches(train_x, train_y, settings.batch_size, generator)
        total = -(-len(train_x) // settings.batch_size)
        epoch_steps = progress(steps, total, f"epoch {epoch} batches", log, final=False)
        for step, (xb, yb) in enumerate(epoch_steps):
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
            if settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
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
        if epoch == keep_state_at:
            result.kept_state = _state_copy(model)
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
    if epochs_done == settings.epochs:
        test_loss, test_acc = loss_and_accuracy(
            model, test_x, test_y, normalize, settings.eval_batch_size
        )
        result.history.append(
            {"epoch": epochs_done, "test_loss": test_loss, "test_accuracy": test_acc}
        )
    return result


def _state_copy(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
