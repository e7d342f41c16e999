"""Job: train the dense network of one seed (rule train_dense)."""

from __future__ import annotations

from prunesim.data import load_prepared
from prunesim.jobs import model_label, setup
from prunesim.jobs.model_files import ModelFiles, write_model_files
from prunesim.layout import model_identity
from prunesim.models import build_model
from prunesim.pruning.masks import full_masks
from prunesim.training import train, train_settings


def train_dense(
    data_file: str,
    arch: str,
    train_cfg: dict,
    seed: int,
    files: ModelFiles,
    include_output: bool = False,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
) -> None:
    """Train the dense network (architecture ``arch``) of one seed."""
    dev = setup(threads, seed, device)
    splits, _ = load_prepared(data_file)
    net = build_model(arch, splits.channels, splits.num_classes, splits.image_size)
    where = model_label(experiment, seed)
    result = train(net, splits, train_settings(train_cfg), seed=seed, device=dev, where=where)
    masks = full_masks(net, include_output)
    provenance = model_identity(experiment, seed, "dense", 0)
    write_model_files(net, masks, result, provenance, splits, files)
