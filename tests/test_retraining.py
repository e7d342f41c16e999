"""Tests for the retraining modes of IMP (Renda et al. 2020) and its one-shot form, through the
jobs the workflow runs: the dense run's rewind point, learning-rate rewinding, weight
rewinding and fine-tuning with a budget of t epochs, iterative and one-shot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import xarray as xr
from smoke_workflow import EXPERIMENT, copy_workflow, snakemake, write_config

from prunesim.checkpoint import load_checkpoint, save_checkpoint
from prunesim.data import DataSettings, prepare
from prunesim.io import InputFileError, read_json
from prunesim.jobs.dense import train_dense
from prunesim.jobs.model_files import ModelFiles
from prunesim.jobs.rounds import RoundJob, prune
from prunesim.methods import METHODS
from prunesim.models import build_model
from prunesim.pruning.magnitude import kept_after
from prunesim.pruning.masks import load_masks

SYNTHETIC = {"image_size": 28, "train_size": 64, "test_size": 32}
TRAIN = {"optimizer": "sgd", "lr": 0.05, "schedule": "cosine", "epochs": 3, "batch_size": 32}
# A learning rate of zero leaves every weight where retraining started: what each mode starts
# from is then visible in the round's model.
FROZEN = {**TRAIN, "lr": 0.0, "weight_decay": 0.0}


def _files(folder: Path) -> ModelFiles:
    folder.mkdir(parents=True, exist_ok=True)
    return ModelFiles(*(str(folder / n) for n in ("model.pt", "mask.pt", "summary.json")))


def _dense(tmp: Path, rewind_epoch: int) -> Path:
    folder = tmp / f"dense_rewind{rewind_epoch}"
    train_dense(
        str(tmp / "data.npz"),
        "lenet5",
        TRAIN,
        0,
        _files(folder),
        str(folder / "rewind.pt"),
        rewind_epoch,
        device="cpu",
        experiment="e",
    )
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Prepared data and the dense run of seed 0 (3 epochs), its rewind point after epoch 1."""
    tmp = tmp_path_factory.mktemp("retraining")
    prepare(DataSettings(name="synthetic", probe_size=16, synthetic=SYNTHETIC), tmp / "data.npz")
    _dense(tmp, 1)
    return tmp


def _round(run: Path, method: str, round_: int, train: dict, budget: int, inputs: dict) -> dict:
    pruning = {"rate": 0.5, "scope": "global", "retrain_epochs": budget}
    job = RoundJob(
        experiment="e",
        seed=0,
        method=method,
        round=round_,
        data=str(run / "data.npz"),
        inputs={k: str(v) for k, v in inputs.items()},
        outputs=_files(run / method / f"round{round_}"),
        train=train,
        settings=METHODS[method].settings(pruning, train, round_),
        arch="lenet5",
        device="cpu",
    )
    prune(job, METHODS[method].job)
    folder = run / method / f"round{round_}"
    net, provenance = load_checkpoint(folder / "model.pt")
    return {
        "weights": dict(net.named_parameters()),
        "mask": load_masks(folder / "mask.pt"),
        "provenance": provenance,
        "history": read_json(folder / "summary.json")["history"],
    }


def _weights(path: Path) -> dict[str, torch.Tensor]:
    net, _ = load_checkpoint(path)
    return dict(net.named_parameters())


def _dense_inputs(run: Path) -> dict:
    dense = run / "dense_rewind1"
    return {
        "model": dense / "model.pt",
        "mask": dense / "mask.pt",
        "dense": dense / "model.pt",
        "dense_mask": dense / "mask.pt",
        "rewind": dense / "rewind.pt",
    }


def test_the_rewind_point_is_the_dense_runs_state_and_changes_nothing_else(run):
    late = _dense(run, 3)
    early = run / "dense_rewind1"
    final = _weights(early / "model.pt")
    # the dense network does not depend on where its rewind point is taken
    assert all(torch.equal(final[k], v) for k, v in _weights(late / "model.pt").items())
    # after the last epoch the rewind point is the trained network; after epoch 1 it is not
    assert all(torch.equal(final[k], v) for k, v in _weights(late / "rewind.pt").items())
    assert not all(torch.equal(final[k], v) for k, v in _weights(early / "rewind.pt").items())
    _, provenance = load_checkpoint(early / "rewind.pt")
    assert (provenance["method"], provenance["round"], provenance["epoch"]) == ("dense", 0, 1)


def test_each_mode_retrains_from_its_own_starting_point(run):
    inputs = _dense_inputs(run)
    dense, rewound = _weights(inputs["dense"]), _weights(inputs["rewind"])
    starts = {"imp": dense, "imp_finetune": dense, "imp_weight_rewind": rewound}
    for method, start in starts.items():
        result = _round(run, method, 1, FROZEN, 2, inputs)
        for name, mask in result["mask"].items():
            assert torch.equal(result["weights"][name], start[name] * mask), (method, name)
    modes = {"imp": "lr_rewind", "imp_finetune": "finetune"}
    modes["imp_weight_rewind"] = "weight_rewind"
    for method, mode in modes.items():
        _, provenance = load_checkpoint(run / method / "round1" / "model.pt")
        assert provenance["retraining"] == mode


def test_an_iterative_round_starts_from_the_previous_round(run):
    inputs = _dense_inputs(run)
    first = _round(run, "imp_finetune", 1, FROZEN, 2, inputs)
    previous = run / "imp_finetune" / "round1"
    second = _round(
        run,
        "imp_finetune",
        2,
        FROZEN,
        2,
        {**inputs, "model": previous / "model.pt", "mask": previous / "mask.pt"},
    )
    for name, mask in second["mask"].items():
        assert not (mask & ~first["mask"][name]).any()  # a subset of round 1's
        assert torch.equal(second["weights"][name], first["weights"][name] * mask)
    kept = sum(int(m.sum()) for m in second["mask"].values())
    total = sum(m.numel() for m in second["mask"].values())
    assert kept == kept_after(total, 0.5, 2)


def test_weight_rewinding_restores_the_whole_state_batchnorm_statistics_included(tmp_path):
    rewound = build_model("resnet20", 1, 10, 28)
    with torch.no_grad():  # a state unlike a fresh network's, buffers included
        for tensor in rewound.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor).abs())
    path = tmp_path / "rewind.pt"
    identity = {"experiment": "e", "method": "dense", "round": 0, "seed": 0}
    save_checkpoint(rewound, path, {**identity, "epoch": 3})
    job = RoundJob(
        experiment="e",
        seed=0,
        method="imp_weight_rewind",
        round=1,
        data="",
        inputs={"rewind": str(path)},
        outputs=_files(tmp_path / "out"),
        train=TRAIN,
        settings={},
        arch="resnet20",
    )
    net = build_model("resnet20", 1, 10, 28)
    job.load_rewind_point(net, 3)
    expected = rewound.state_dict()
    assert any("running_var" in key for key in expected)
    assert all(torch.equal(value, expected[key]) for key, value in net.state_dict().items())


def test_rewinding_runs_the_schedules_last_epochs_and_fine_tuning_its_final_rate(run):
    inputs = _dense_inputs(run)
    lrr = _round(run, "imp", 1, TRAIN, 2, inputs)["history"]
    assert [r["epoch"] for r in lrr] == [2, 3]
    dense_lrs = [r["lr"] for r in read_json(run / "dense_rewind1" / "summary.json")["history"]]
    assert [r["lr"] for r in lrr] == pytest.approx(dense_lrs[1:], rel=1e-12)
    weight_rewound = _round(run, "imp_weight_rewind", 1, TRAIN, 2, inputs)["history"]
    assert [r["lr"] for r in weight_rewound] == pytest.approx(dense_lrs[1:], rel=1e-12)
    tuned = _round(run, "imp_finetune", 1, TRAIN, 2, inputs)["history"]
    assert [r["epoch"] for r in tuned] == [1, 2]
    assert [r["lr"] for r in tuned] == pytest.approx([dense_lrs[-1]] * 2, rel=1e-12)


def test_one_shot_reaches_iterative_imps_sparsity_from_the_dense_network(run):
    inputs = _dense_inputs(run)
    result = _round(run, "imp_oneshot", 2, FROZEN, 2, inputs)
    total = sum(m.numel() for m in result["mask"].values())
    assert sum(int(m.sum()) for m in result["mask"].values()) == kept_after(total, 0.5, 2)
    dense = _weights(inputs["dense"])
    for name, mask in result["mask"].items():
        assert torch.equal(result["weights"][name], dense[name] * mask)
    assert result["provenance"]["oneshot"] is True


def test_a_rewind_point_of_another_epoch_is_refused(run):
    inputs = _dense_inputs(run)  # its rewind point is epoch 1; a budget of 1 needs epoch 2
    with pytest.raises(InputFileError, match="epoch 1 where 2 was expected"):
        _round(run, "imp_weight_rewind", 1, TRAIN, 1, inputs)


def test_the_workflow_runs_weight_rewinding_and_fine_tuning_side_by_side(tmp_path):
    """The rules wire each mode's inputs (the dense run's rewind.pt and mask for one-shot
    weight rewinding, the previous round for iterative fine-tuning) through a real run."""
    workdir = copy_workflow(tmp_path / "wf")

    def edit(exp):
        exp["seeds"] = [0]
        exp["pruning"] = {
            "methods": ["imp_weight_rewind_oneshot", "imp_finetune"],
            "rounds": 1,
            "rate": 0.5,
            "retrain_epochs": 1,
        }
        exp["similarity"] = {"metrics": ["cka_linear"], "views": ["flatten"], "permutations": 0}
        exp["similarity"]["bootstrap"] = 0
        exp["figures"] = {"views": ["flatten"]}

    config = write_config(workdir, "modes.yaml", edit)
    snakemake(workdir, "numbers", "--configfile", config)
    seed = workdir / "results" / EXPERIMENT / "seed0"
    _, rewind = load_checkpoint(seed / "dense" / "rewind.pt")
    assert rewind["epoch"] == 1  # train.epochs 2 - retrain_epochs 1
    for method, mode in (
        ("imp_weight_rewind_oneshot", "weight_rewind"),
        ("imp_finetune", "finetune"),
    ):
        _, provenance = load_checkpoint(seed / method / "round1" / "model.pt")
        assert (provenance["retraining"], provenance["retrain_epochs"]) == (mode, 1)
        assert len(read_json(seed / method / "round1" / "summary.json")["history"]) == 1
    aggregate = xr.open_dataset(workdir / "results" / EXPERIMENT / "aggregate.nc")
    assert set(aggregate["pruning"].values) == {"imp_weight_rewind_oneshot", "imp_finetune"}

    # A rewind point of another epoch (t changed; rounds forced while Snakemake's triggers
    # look at times only, so the dense run is not redone) is refused before any job runs,
    # and the round it would have fed keeps its files.
    def shorter_budget(exp):
        edit(exp)
        exp["pruning"]["retrain_epochs"] = 2  # rounds now rewind to epoch 0

    config = write_config(workdir, "budget2.yaml", shorter_budget)
    kept = seed / "imp_weight_rewind_oneshot" / "round1" / "model.pt"
    before = kept.stat().st_mtime_ns
    run = snakemake(
        workdir,
        "numbers",
        "--forcerun",
        "prune",
        "--rerun-triggers",
        "mtime",
        "--configfile",
        config,
        check=False,
    )
    assert run.returncode != 0
    assert "damaged input" in run.stderr and "rewind.pt" in run.stderr
    assert "epoch 1 where 0 was expected" in run.stderr
    assert kept.stat().st_mtime_ns == before
