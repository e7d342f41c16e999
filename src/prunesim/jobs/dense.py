"""Job: train the dense network of one seed (rule train_dense)."""

from __future__ import annotations

import prunesim
from prunesim.checkpoint import save_checkpoint
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
    rewind_file: str,
    rewind_epoch: int = 0,
    include_output: bool = False,
    device: str = "auto",
    threads: int = 1,
    experiment: str = "",
) -> None:
    """Train the dense network (architecture ``arch``) of one seed; ``rewind_file`` keeps its
    state after epoch ``rewind_epoch`` (0: the initialisation), where weight rewinding resets
    the surviving weights of its pruned networks."""
    dev = setup(threads, seed, device)
    splits, _ = load_prepared(data_file)
    net = build_model(arch, splits.channels, splits.num_classes, splits.image_size)
    where = model_label(experiment, seed)
    settings = train_settings(train_cfg)
    result = train(net, splits, settings, seed, device=dev, where=where, keep_state_at=rewind_epoch)
    provenance = model_identity(experiment, seed, "dense", 0)
    rewind_point = build_model(arch, splits.channels, splits.num_classes, splits.image_size)
    rewind_point.load_state_dict(result.kept_state)
    save_checkpoint(
        rewind_point,
        rewind_file,
        {**provenance, "epoch": rewind_epoch, "prunesim": prunesim.__version__},
    )
    write_model_files(net, full_masks(net, include_output), result, provenance, splits, files)
