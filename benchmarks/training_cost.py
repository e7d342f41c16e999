"""What a config's training costs here: each experiment's training loop timed on this machine,
extrapolated to every epoch of its grid.

For each experiment, one short run of prunesim's training loop (its model, batch size,
optimizer and augmentation, on synthetic images of its dataset's shape) gives seconds per
training image; the config's whole grid (dense networks, every round of every method, with its
retraining or fine-tuning epochs, over every seed) gives the number of training images
processed; their product is the estimate. Every epoch is timed at the experiment's own batch
size (the structured methods' authors' fine-tuning batches are not timed separately), and
extraction and comparisons are not included. The measured time per image is printed beside
the estimate, and each experiment's speed relative to the first one's, so a run on another
machine (``--device cuda``) shows how the costs move.

    python benchmarks/training_cost.py config/paper.yaml [--images 1024] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from prunesim.config import load_config_file, load_schema, result_values, validate
from prunesim.data import DataSettings, get_spec, load_splits
from prunesim.device import torch_device
from prunesim.methods import METHODS
from prunesim.models import build_model
from prunesim.training import train, train_settings

ROOT = Path(__file__).resolve().parents[1]


def grid_epochs(exp: dict) -> int:
    """Epochs of training over an experiment's whole grid: each seed's dense run and every
    round of every method (its retraining budget or fine-tuning epochs)."""
    pruning, train_cfg = exp["pruning"], result_values(exp["train"])
    per_seed = train_cfg["epochs"]
    methods = list(pruning["methods"])
    # random baselines mirror IMP's masks: IMP's rounds run whether or not it is listed
    if any(m.startswith("random_") for m in methods) and "imp" not in methods:
        methods.append("imp")
    for name in methods:
        method = METHODS[name]
        for r in range(1, method.count_rounds(pruning) + 1):
            settings = method.settings(pruning, train_cfg, r)
            per_seed += settings.get("retrain_epochs", settings.get("finetune_epochs", 0))
    return per_seed * len(exp["seeds"])


def seconds_per_image(exp: dict, images: int, device: torch.device) -> float:
    """One epoch of the experiment's training loop on ``images`` synthetic images of its
    dataset's shape, after a warm-up epoch."""
    data = DataSettings(**exp["dataset"])
    spec = get_spec(data.name)
    channels, height, _ = spec.shape(data)
    synthetic = {"image_size": height, "channels": channels, "num_classes": spec.num_classes(data)}
    synthetic |= {"train_size": images, "test_size": 64}
    splits = load_splits(DataSettings(name="synthetic", probe_size=2, synthetic=synthetic))
    net = build_model(exp["model"], channels, spec.num_classes(data), height)
    settings = replace(train_settings(exp["train"]), epochs=1)
    train(net, splits, settings, 0, device=device)  # warm-up: allocations, kernel choice
    start = time.perf_counter()
    train(net, splits, settings, 1, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a config file, e.g. config/paper.yaml")
    parser.add_argument("--images", type=int, default=1024, help="images in the timed epoch")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    if args.images < 64:
        parser.error(f"--images must be at least 64, got {args.images}")
    config = load_config_file(args.config)
    schema = load_schema(ROOT / "config" / "config.schema.yaml")
    # the datasets need not be here: only their shapes and sizes are read
    for exp in config["experiments"].values():
        exp["dataset"]["download"] = True
    validate(config, schema)
    device = torch_device(args.device)
    print(f"training cost of {args.config} on {device} ({torch.get_num_threads()} threads)")
    print(
        "| experiment | model | training images | epochs (grid) | ms per image | "
        "speed vs first | estimated hours |"
    )
    print("|---|---|---|---|---|---|---|")
    first = None
    total = 0.0
    for name, exp in config["experiments"].items():
        data = DataSettings(**exp["dataset"])
        n_train = get_spec(data.name).train_size(data)
        epochs = grid_epochs(exp)
        rate = seconds_per_image(exp, args.images, device)
        first = first or rate
        hours = rate * n_train * epochs / 3600
        total += hours
        print(
            f"| {name} | {exp['model']} | {n_train:,} | {epochs:,} | {rate * 1e3:.3f} | "
            f"{first / rate:.2f} | {hours:,.1f} |"
        )
    print(f"total: {total:,.1f} hours of training on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
