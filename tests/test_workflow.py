"""The whole DAG on config/smoke.yaml, run by real snakemake in a temporary copy of the workflow.

Every test gets its own copy of one completed run (``finished_smoke_run``, run once per
session), so a test may rerun or change jobs without touching the others, in any order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from smoke_workflow import (
    EXPERIMENT,
    ROOT,
    copy_run,
    planned_jobs,
    snakemake,
    write_config,
)

from prunesim.checkpoint import load_checkpoint
from prunesim.metrics import METRICS, REGISTRY
from prunesim.pruning.masks import load_masks

LAYERS = ["relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "fc3"]
# The rules that depend on activations: a similarity change or re-extraction reruns only these.
DOWNSTREAM_OF_ACTIVATIONS = {
    "compare",
    "compare_seeds",
    "aggregate",
    "figure_similarity_vs_depth",
    "figure_similarity_vs_round",
    "figure_accuracy_vs_sparsity",
    "all",
}

pytestmark = pytest.mark.workflow


@pytest.fixture
def smoke_run(finished_smoke_run, tmp_path) -> Path:
    return copy_run(finished_smoke_run, tmp_path / "run")


def model_dirs(workdir: Path) -> list[Path]:
    base = workdir / "results" / EXPERIMENT
    return [
        base / f"seed{s}" / stage for s in (0, 1) for stage in ("dense", "imp/round1", "imp/round2")
    ]


def test_smoke_run_writes_models_masks_and_summaries(smoke_run):
    for folder in model_dirs(smoke_run):
        for name in ("model.pt", "mask.pt", "summary.json", "train.log"):
            assert (folder / name).is_file(), folder / name
        summary = json.loads((folder / "summary.json").read_text())
        assert 0.0 <= summary["test_accuracy"] <= 1.0
        expected = {"dense": 0.0, "round1": 0.5, "round2": 0.75}[folder.name]
        assert summary["sparsity"]["sparsity"] == pytest.approx(expected, abs=1e-4)
        for quantity in ("parameters", "flops"):
            dense, remaining = summary[quantity]["dense"], summary[quantity]["remaining"]
            assert (remaining < dense) if expected else (remaining <= dense)
        epochs = [
            line for line in (folder / "train.log").read_text().splitlines() if "epoch" in line
        ]
        assert len(epochs) == 2 and all("test_acc" in line for line in epochs)


def test_smoke_run_writes_chunked_zarr_stores_with_manifest(smoke_run):
    for folder in model_dirs(smoke_run):
        group = zarr.open_group(folder / "activations.zarr", mode="r")
        manifest = group.attrs["manifest"]
        assert manifest["complete"] and manifest["layers"] == LAYERS and manifest["n"] == 128
        for layer in LAYERS:
            array = group[layer]
            assert array.shape[0] == 128 and array.chunks[0] == 64
            assert array.compressors, f"{layer} is stored uncompressed"
        assert group["relu1"].shape == (128, 6, 28, 28)
        assert group["fc3"].shape == (128, 10)


def test_smoke_run_writes_similarity_datasets(smoke_run):
    for folder in model_dirs(smoke_run):
        with xr.open_dataset(folder / "similarity.nc") as ds:
            assert ds.similarity.dims == ("metric", "view", "layer_a", "layer_b")
            assert list(ds.metric.values) == list(METRICS)
            assert list(ds.view.values) == ["flatten", "gap", "channels"]
            assert list(ds.layer_a.values) == LAYERS == list(ds.layer_b.values)
            assert "metric_definitions" in ds.attrs and ds.attrs["n_samples"] == 128
    dense = model_dirs(smoke_run)[0] / "similarity.nc"
    with xr.open_dataset(dense) as ds:
        diagonal = np.diagonal(ds.similarity.values, axis1=-2, axis2=-1)
        reasons = np.diagonal(ds.nan_reason.values, axis1=-2, axis2=-1)
        defined = np.isfinite(diagonal)
        # what identical representations give: 1, or 0 for the Procrustes angle (an arccos,
        # so 0 only to about 1e-7)
        perfect = np.array([REGISTRY[m].perfect for m in ds.metric.values])[:, None, None]
        perfect = np.broadcast_to(perfect, diagonal.shape)
        tolerance = np.where(perfect == 0.0, 1e-6, 1e-9)
        assert (np.abs(diagonal - perfect)[defined] <= tolerance[defined]).all()
        assert all(reasons[~defined]), "a NaN without a reason"
        assert defined[list(METRICS).index("cka_linear")].all()


def test_smoke_run_aggregates_over_seeds_methods_and_rounds(smoke_run):
    with xr.open_dataset(smoke_run / "results" / EXPERIMENT / "aggregate.nc") as ds:
        assert ds.similarity.dims == (
            "seed",
            "pruning",
            "round",
            "metric",
            "view",
            "layer_a",
            "layer_b",
        )
        assert list(ds.seed.values) == [0, 1] and list(ds["round"].values) == [0, 1, 2]
        assert ds.sparsity.dims == ("seed", "pruning", "round")
        np.testing.assert_allclose(
            ds.sparsity.sel(pruning="imp").values, [[0, 0.5, 0.75]] * 2, atol=1e-4
        )
        assert np.all(np.isfinite(ds.test_accuracy.values))
        assert ds.seed_similarity.dims == ("seed_pair", "metric", "view", "layer_a", "layer_b")
        assert list(ds.seed_pair.values) == ["0-1"]


def test_random_baselines_mirror_imp_sparsity_and_keep_pruned_weights_zero(smoke_run):
    import torch

    base = smoke_run / "results" / EXPERIMENT
    for seed in (0, 1):
        for r in (1, 2):
            imp = json.loads((base / f"seed{seed}/imp/round{r}/summary.json").read_text())
            for method in ("random_layerwise",):
                folder = base / f"seed{seed}/{method}/round{r}"
                info = json.loads((folder / "summary.json").read_text())
                assert info["sparsity"]["kept"] == imp["sparsity"]["kept"]
                if method == "random_layerwise":
                    assert info["sparsity"]["layers"] == imp["sparsity"]["layers"]
                weights = load_checkpoint(folder / "model.pt")[0].state_dict()
                for name, mask in load_masks(folder / "mask.pt").items():
                    assert torch.all(weights[name][~mask] == 0), f"{folder}: {name} revived"
    with xr.open_dataset(base / "aggregate.nc") as ds:
        assert set(ds.pruning.values) == {"imp", "random_layerwise"}
        np.testing.assert_array_equal(
            ds.sparsity.sel(pruning="random_layerwise").values,
            ds.sparsity.sel(pruning="imp").values,
        )


def test_smoke_run_draws_every_figure(smoke_run):
    figures = smoke_run / "results" / "figures" / EXPERIMENT
    stems = [f"similarity_vs_depth_{m}" for m in ("imp", "random_layerwise")]
    stems += [f"similarity_vs_round_{v}" for v in ("flatten", "gap", "channels")]
    for stem in (*stems, "accuracy_vs_sparsity"):
        assert (figures / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (figures / f"{stem}.png").read_bytes().startswith(b"\x89PNG")


def test_second_run_has_nothing_to_do(smoke_run):
    assert planned_jobs(smoke_run, "--configfile", "config/smoke.yaml") == {}


def test_changing_a_similarity_option_reruns_similarity_and_figures_only(smoke_run):
    config = write_config(
        smoke_run, "smoke_views.yaml", lambda exp: exp["similarity"].update(views=["gap"])
    )
    jobs = planned_jobs(smoke_run, "--configfile", config)
    assert set(jobs) == DOWNSTREAM_OF_ACTIVATIONS
    assert jobs["compare"] == 10 and jobs["compare_seeds"] == 1  # 2 seeds x (dense + 2 x 2)


def test_forcerun_reruns_the_rule_and_only_what_depends_on_it(smoke_run):
    jobs = planned_jobs(
        smoke_run, "--configfile", "config/smoke.yaml", "--forcerun", "extract_activations"
    )
    assert jobs.pop("extract_activations") == 10
    assert set(jobs) == DOWNSTREAM_OF_ACTIVATIONS
    dense = model_dirs(smoke_run)[0] / "model.pt"
    before = dense.stat().st_mtime_ns
    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--forcerun", "aggregate")
    assert dense.stat().st_mtime_ns == before, "re-running aggregate retrained a model"
    assert planned_jobs(smoke_run, "--configfile", "config/smoke.yaml") == {}


def test_a_single_output_file_can_be_requested(smoke_run):
    target = model_dirs(smoke_run)[2] / "similarity.nc"
    target.unlink()
    rel = str(target.relative_to(smoke_run))
    # --configfile takes several values: the target goes first.
    assert planned_jobs(smoke_run, rel, "--configfile", "config/smoke.yaml") == {"compare": 1}
    snakemake(smoke_run, rel, "--configfile", "config/smoke.yaml")
    assert target.is_file()


BAD_CONFIGS = {
    "rate": (lambda exp: exp["pruning"].update(rate=1.5), "pruning.rate"),
    "metric": (lambda exp: exp["similarity"].update(metrics=["cka_magic"]), "similarity.metrics"),
    "dataset": (lambda exp: exp["dataset"].update(name="imagenet"), "dataset.name"),
    "epochs": (lambda exp: exp["train"].update(epochs=-1), "train.epochs"),
    "data_root": (
        lambda exp: exp["dataset"].update(name="mnist", data_root="/nonexistent/mnist"),
        "dataset.data_root",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_stops_before_any_job_naming_the_key(smoke_run, case):
    edit, key = BAD_CONFIGS[case]
    config = write_config(smoke_run, f"bad_{case}.yaml", edit)
    before = sorted(p for p in (smoke_run / "results").rglob("*"))
    proc = snakemake(smoke_run, "--configfile", config, check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert key in message, message
    assert "invalid configuration" in message
    assert sorted(p for p in (smoke_run / "results").rglob("*")) == before


def test_workflow_lint_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout


def test_rerunning_a_training_job_reproduces_its_model_exactly(smoke_run):
    """Same config and seed, same numbers on CPU: retraining IMP round 1 of seed 1 gives
    bit-identical weights and summary."""
    import torch

    folder = model_dirs(smoke_run)[4]  # seed1/imp/round1
    before = load_checkpoint(folder / "model.pt")[0].state_dict()
    summary_before = json.loads((folder / "summary.json").read_text())
    target = str((folder / "model.pt").relative_to(smoke_run))
    snakemake(smoke_run, target, "--force", "--configfile", "config/smoke.yaml")
    after = load_checkpoint(folder / "model.pt")[0].state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    summary_after = json.loads((folder / "summary.json").read_text())
    assert summary_after["test_accuracy"] == summary_before["test_accuracy"]
    assert summary_after["sparsity"] == summary_before["sparsity"]
