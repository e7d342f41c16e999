"""Training and extraction throughput of prunesim against a bare PyTorch loop, on one device.

For each architecture, on synthetic CIFAR-shaped data (3 × 32 × 32, 10 classes), in one
process and on the same device:

* **dense training**: one epoch of prunesim's training loop (:func:`prunesim.training.train`:
  its optimizer, schedule, per-epoch evaluation on a small test set, divergence checks)
  against a bare loop over the same images (the same model, optimizer and batch size: forward,
  loss, backward, step, nothing else);
* **one IMP round**: global magnitude pruning of 20% of the weights, then one epoch of masked
  retraining, against the bare loop that multiplies each weight by its mask after every step
  (the least a masked loop can do);
* **extraction**: :func:`prunesim.activations.record_activations` writing every recorded
  layer of the probe images into a zarr store, against bare forward passes whose hooks copy
  the same layers' outputs to host memory.

Each line prints images per second for both and their ratio (prunesim / bare: the target is
0.9 or more). Every timing is the best of ``--repeat`` runs after a warm-up run. Not a test.

    python benchmarks/throughput.py                                  # CPU, small sizes
    python benchmarks/throughput.py --device cuda --images 20000 --probe 10000   # on a GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prunesim.activations import record_activations  # noqa: E402
from prunesim.data import DataSettings, Normalizer, load_splits  # noqa: E402
from prunesim.device import torch_device  # noqa: E402
from prunesim.models import build_model  # noqa: E402
from prunesim.pruning.magnitude import magnitude_step  # noqa: E402
from prunesim.pruning.masks import apply_masks, full_masks  # noqa: E402
from prunesim.training import OPTIMIZERS, TrainSettings, train  # noqa: E402

ARCHITECTURES = ("resnet20", "vgg_svhn_seed")  # Renda et al.'s ResNet-20, the seed study's VGG
SETTINGS = TrainSettings(lr=0.05, momentum=0.9, weight_decay=5e-4, epochs=1, batch_size=128)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run, device: torch.device, repeat: int) -> float:
    """Least wall time of ``repeat`` calls of ``run`` after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def bare_epoch(model: nn.Module, images, labels, masks=None) -> None:
    """The minimal training epoch: forward, loss, backward, step (and a mask multiply)."""
    model.train()
    optimizer = OPTIMIZERS[SETTINGS.optimizer](model.parameters(), SETTINGS)
    loss_fn = nn.CrossEntropyLoss()
    params = dict(model.named_parameters())
    for start in range(0, len(images), SETTINGS.batch_size):
        x = images[start : start + SETTINGS.batch_size]
        y = labels[start : start + SETTINGS.batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()
        if masks is not None:
            with torch.no_grad():
                for name, mask in masks.items():
                    params[name].mul_(mask)


def bare_extraction(model: nn.Module, layers: list[str], images, batch_size) -> None:
    """Forward passes whose hooks copy the layers' outputs to host memory."""
    modules = dict(model.named_modules())
    kept: list[torch.Tensor] = []
    hooks = [
        modules[name].register_forward_hook(lambda _m, _i, out: kept.append(out.float().cpu()))
        for name in layers
    ]
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                model(images[start : start + batch_size])
    finally:
        for hook in hooks:
            hook.remove()


def measure(arch: str, args, device: torch.device) -> list[tuple[str, float, float]]:
    """(what, prunesim images/s, bare images/s) for one architecture."""
    synthetic = {"image_size": 32, "channels": 3, "num_classes": 10}
    # CIFAR's proportions: a test set a fifth of the training set, evaluated every epoch
    synthetic |= {"train_size": args.images, "test_size": max(args.images // 5, args.probe)}
    splits = load_splits(DataSettings(name="synthetic", probe_size=2, synthetic=synthetic))
    normalize = Normalizer(*splits.channel_stats(), device=device)
    # the bare loop gets its images normalised once, beforehand: the least work per step
    images = normalize(torch.as_tensor(splits.train_x, device=device))
    labels = torch.as_tensor(splits.train_y, device=device)
    probe = normalize(torch.as_tensor(splits.test_x[: args.probe], device=device))
    model = build_model(arch, 3, 10, 32).to(device)
    rows = []

    def ours_dense():
        train(model, splits, SETTINGS, 0, device=device)

    def bare_dense():
        bare_epoch(model, images, labels)

    rows.append(("dense epoch", *_rates(len(images), ours_dense, bare_dense, device, args)))

    masks = magnitude_step(model, full_masks(model), 0.2, "global")
    apply_masks(model, masks)
    device_masks = {name: mask.to(device) for name, mask in masks.items()}

    def ours_round():
        train(model, splits, SETTINGS, 0, masks=masks, device=device)

    def bare_round():
        bare_epoch(model, images, labels, device_masks)

    rows.append(("IMP round epoch", *_rates(len(images), ours_round, bare_round, device, args)))

    layers = list(model.recorded_layers)
    with tempfile.TemporaryDirectory() as tmp:

        def ours_extract():
            record_activations(model, layers, probe, Path(tmp) / "store.zarr", args.batch)

        def bare_extract():
            bare_extraction(model, layers, probe, args.batch)

        rows.append(("extraction", *_rates(len(probe), ours_extract, bare_extract, device, args)))
    return rows


def _rates(count: int, ours, bare, device, args) -> tuple[float, float]:
    return (
        count / best_seconds(ours, device, args.repeat),
        count / best_seconds(bare, device, args.repeat),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--images", type=int, default=2048, help="training images per epoch")
    parser.add_argument("--probe", type=int, default=1000, help="images extracted")
    parser.add_argument("--batch", type=int, default=500, help="extraction batch size")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs after a warm-up")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    if args.images < SETTINGS.batch_size or args.probe < 1 or args.repeat < 1:
        parser.error(
            f"need --images >= {SETTINGS.batch_size}, --probe >= 1 and --repeat >= 1, got "
            f"{args.images}, {args.probe}, {args.repeat}"
        )
    device = torch_device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"throughput on {device} ({name}; {torch.get_num_threads()} CPU threads)")
    print("| model | what | prunesim images/s | bare loop images/s | prunesim / bare |")
    print("|---|---|---:|---:|---:|")
    for arch in args.arch:
        for what, ours, bare in measure(arch, args, device):
            print(f"| {arch} | {what} | {ours:,.0f} | {bare:,.0f} | {ours / bare:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
