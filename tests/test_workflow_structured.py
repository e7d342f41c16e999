"""Structured pruning through the whole DAG: EPruner and CKA layer pruning (and one IMP round)
on a small ResNet-20 (synthetic data), run by real snakemake in a temporary copy of the
workflow; and which jobs rerun when the library's code or an execution-only value changes.

The tests share one completed run (module-scoped fixture); a test that changes anything works
on its own copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
import zarr
from smoke_workflow import ROOT, copy_run, copy_workflow, planned_jobs, planned_outputs, snakemake

from prunesim.aggregate import ABSENT
from prunesim.checkpoint import load_checkpoint
from prunesim.pruning.masks import load_masks
from prunesim.pruning.structure import filter_groups

pytestmark = pytest.mark.workflow

EXPERIMENT = "structured"
CONFIG = {
    "device": "cpu",
    "experiments": {
        EXPERIMENT: {
            "dataset": {
                "name": "synthetic",
                "probe_size": 64,
                "synthetic": {
                    "image_size": 16,
                    "channels": 1,
                    "num_classes": 4,
                    "train_size": 256,
                    "test_size": 64,
                },
            },
            "model": "resnet20",
            "seeds": [0],
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
            "pruning": {
                "methods": ["imp", "retrain_only", "epruner", "cka_layers"],
                "rounds": 1,
                "epruner": {"betas": [1.0, 2.0], "finetune_epochs": 1},
                "cka_layers": {"blocks": 2, "finetune_epochs": 1, "criterion_samples": 64},
            },
            "activations": {"batch_size": 32},
            "similarity": {"metrics": ["cka_linear", "nbs"], "views": ["gap"]},
        }
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("structured"))
    (workdir / "config/test_structured.yaml").write_text(yaml.safe_dump(CONFIG))
    snakemake(workdir, "--configfile", "config/test_structured.yaml")
    return workdir


def _seed_dir(workdir: Path) -> Path:
    return workdir / "results" / EXPERIMENT / "seed0"


def test_each_round_and_step_is_its_own_job_with_its_files(run):
    for method in ("epruner", "cka_layers"):
        for r in (1, 2):
            folder = _seed_dir(run) / method / f"round{r}"
            for name in ("model.pt", "mask.pt", "summary.json", "train.log"):
                assert (folder / name).is_file(), folder / name
            assert zarr.open_group(folder / "activations.zarr", mode="r").attrs["manifest"]


def test_retrain_only_prunes_nothing_and_retrains_like_imp(run):
    seed_dir = _seed_dir(run)
    dense, _ = load_checkpoint(seed_dir / "dense/model.pt")
    control, provenance = load_checkpoint(seed_dir / "retrain_only/round1/model.pt")
    assert provenance["method"] == "retrain_only" and provenance["round"] == 1
    masks = load_masks(seed_dir / "retrain_only/round1/mask.pt")
    assert all(bool(m.all()) for m in masks.values())
    before, after = dense.state_dict(), control.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it was retrained
    summary = json.loads((seed_dir / "retrain_only/round1/summary.json").read_text())
    imp = json.loads((seed_dir / "imp/round1/summary.json").read_text())
    assert summary["sparsity"]["sparsity"] == 0.0
    assert len(summary["history"]) == len(imp["history"])  # the same schedule


def test_epruner_rounds_prune_the_dense_network_at_their_beta(run):
    dense, _ = load_checkpoint(_seed_dir(run) / "dense/model.pt")
    kept_total = []
    for r, beta in ((1, 1.0), (2, 2.0)):
        folder = _seed_dir(run) / "epruner" / f"round{r}"
        metrics = json.loads((folder / "summary.json").read_text())
        model, provenance = load_checkpoint(folder / "model.pt")
        assert provenance["beta"] == beta and metrics["beta"] == beta
        modules = dict(model.named_modules())
        for group in filter_groups(dense):
            width = metrics["widths"][group.conv]
            assert width["kept"] == modules[group.conv].out_channels
            assert width["kept"] == len(provenance["exemplars"][group.conv])
        kept_total.append(sum(w["kept"] for w in metrics["widths"].values()))
        assert metrics["parameters"]["remaining"] == sum(
            int(torch.count_nonzero(p)) for p in model.parameters()
        )
        assert metrics["parameters"]["dense"] == sum(p.numel() for p in dense.parameters())
    assert kept_total[1] < kept_total[0]  # the larger beta keeps fewer filters


def test_cka_steps_remove_one_block_each_and_never_a_downsampling_one(run):
    removed = []
    for r in (1, 2):
        folder = _seed_dir(run) / "cka_layers" / f"round{r}"
        model, provenance = load_checkpoint(folder / "model.pt")
        metrics = json.loads((folder / "summary.json").read_text())
        removed.append(provenance["removed"])
        assert model.arch["removed_blocks"] == sorted(removed)
        assert provenance["removed"] == max(
            provenance["criterion_cka"], key=provenance["criterion_cka"].get
        )
        assert not provenance["removed"].endswith(".0") or provenance["removed"] == "layer1.0"
        assert provenance["removed"] not in model.recorded_layers
        assert 0 < metrics["sparsity"]["sparsity"] < 1
    assert len(set(removed)) == 2


def test_aggregate_marks_removed_layers_absent_and_keeps_the_others(run):
    with xr.open_dataset(run / "results" / EXPERIMENT / "aggregate.nc") as ds:
        ds = ds.load()
    assert set(ds.pruning.values) == {"imp", "retrain_only", "epruner", "cka_layers"}
    assert list(ds["round"].values) == [0, 1, 2]
    step2 = ds.sel(seed=0, pruning="cka_layers", round=2, metric="cka_linear", view="gap")
    model, provenance = load_checkpoint(_seed_dir(run) / "cka_layers/round2/model.pt")
    for layer in ds.layer_b.values:
        value = float(step2.similarity.sel(layer_a=layer, layer_b=layer))
        if layer in provenance["removed_blocks"]:
            assert np.isnan(value)
            assert str(step2.nan_reason.sel(layer_a=layer, layer_b=layer).values) == ABSENT
        else:
            assert np.isfinite(value), layer
    dense = ds.sel(seed=0, round=0)
    assert np.all(dense.sparsity == 0)
    assert np.all(dense.parameters_remaining == 1) and np.all(dense.flops_remaining == 1)
    pruned = ds.sel(seed=0, round=[1, 2], pruning=["epruner", "cka_layers"])
    assert np.all((pruned.flops_remaining > 0) & (pruned.flops_remaining < 1))
    assert np.all(np.isfinite(pruned.test_accuracy))


def test_figures_cover_every_method(run):
    figures = run / "results" / "figures" / EXPERIMENT
    for name in ("similarity_main_gap", "accuracy_vs_sparsity", "units_per_round"):
        for ext in ("pdf", "png"):
            assert (figures / f"{name}.{ext}").stat().st_size > 0
    table = (figures / "key_numbers.html").read_text()
    for label in ("EPruner", "CKA layer"):
        assert label in table, label


def test_nothing_to_do_after_a_complete_run_and_steps_rerun_alone(run):
    assert planned_jobs(run, "--configfile", "config/test_structured.yaml") == {}
    target = f"results/{EXPERIMENT}/seed0/cka_layers/round2/model.pt"
    jobs = planned_jobs(
        run, target, "--forcerun", target, "--configfile", "config/test_structured.yaml"
    )
    assert jobs == {"prune": 1}


# --- code identity: an edit reruns exactly the jobs whose code it changes -----------------------

STRUCTURED = "config/test_structured.yaml"


@pytest.fixture
def editable(run, tmp_path) -> tuple[Path, dict]:
    """A copy of the finished run with its own copy of the library (first on PYTHONPATH)."""
    workdir = copy_run(run, tmp_path / "run")
    shutil.copytree(ROOT / "src" / "prunesim", tmp_path / "src" / "prunesim")
    return workdir, {"PYTHONPATH": str(tmp_path / "src")}


def _edit(tmp_path: Path, module: str) -> None:
    path = tmp_path / "src" / "prunesim" / module
    path.write_text(path.read_text() + "\n# an edit\n")


def _models(outputs: set[str]) -> set[str]:
    """The model folders (below results/EXP/seed0) whose model.pt or store a plan rewrites."""
    prefix = f"results/{EXPERIMENT}/seed0/"
    return {
        p.removeprefix(prefix).rsplit("/", 1)[0]
        for p in outputs
        if p.startswith(prefix) and p.endswith(("model.pt", "activations.zarr"))
    }


def test_an_unedited_copy_of_the_library_reruns_nothing(editable):
    workdir, env = editable
    assert planned_jobs(workdir, "--configfile", STRUCTURED, env=env) == {}


def test_editing_a_metric_reruns_comparisons_and_cka_layer_pruning_never_training(
    editable, tmp_path
):
    workdir, env = editable
    _edit(tmp_path, "metrics/factors.py")
    jobs = planned_jobs(workdir, "--configfile", STRUCTURED, env=env)
    assert "train_dense" not in jobs and "prepare_data" not in jobs
    outputs = planned_outputs(workdir, "--configfile", STRUCTURED, env=env)
    rebuilt = _models(outputs)
    # CKA layer pruning computes its criterion with the metrics: both steps rerun, and their
    # stores are extracted again; no other model is rebuilt
    assert {m for m in rebuilt if not m.startswith("cka_layers/")} == set()
    assert {"cka_layers/round1", "cka_layers/round2"} <= rebuilt
    # every comparison of every model reruns
    compared = {p for p in outputs if p.endswith("/similarity.nc")}
    assert f"results/{EXPERIMENT}/seed0/dense/similarity.nc" in compared
    assert f"results/{EXPERIMENT}/seed0/epruner/round2/similarity.nc" in compared


def test_editing_epruner_reruns_epruner_rounds_and_what_follows_them_only(editable, tmp_path):
    workdir, env = editable
    _edit(tmp_path, "pruning/epruner.py")
    outputs = planned_outputs(workdir, "--configfile", STRUCTURED, env=env)
    assert _models(outputs) == {"epruner/round1", "epruner/round2"}
    compared = {p for p in outputs if p.endswith("/similarity.nc")}
    assert compared == {
        f"results/{EXPERIMENT}/seed0/epruner/round{r}/similarity.nc" for r in (1, 2)
    }
    assert f"results/{EXPERIMENT}/aggregate.nc" in outputs


def test_values_that_change_no_result_rerun_nothing(run, tmp_path):
    workdir = copy_run(run, tmp_path / "run")
    config = yaml.safe_load((workdir / STRUCTURED).read_text())
    config["device"] = "auto"  # the same computation on this CPU-only machine
    exp = config["experiments"][EXPERIMENT]
    exp["train"]["eval_batch_size"] = 7
    exp["similarity"]["cross_memory_mb"] = 1
    exp["dataset"]["download"] = False
    exp["pruning"] = dict(reversed(list(exp["pruning"].items())))  # key order in the file
    (workdir / "config/changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_jobs(workdir, "--configfile", "config/changed.yaml") == {}
