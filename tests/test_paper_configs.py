"""The papers' configs (config/paper.yaml, config/renda_resnet20.yaml): they validate, say what
the papers did, and plan the whole grid. Their datasets are not here: the dry runs stand on
empty files where the datasets' files go (validation checks only that they exist), and no job
runs; the loaders are tested on real formats in test_data_formats.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from smoke_workflow import ROOT, copy_workflow, planned_jobs

from prunesim.config import load_schema, validate
from prunesim.data import DataSettings, get_spec

PAPER_CONFIGS = ("paper.yaml", "renda_resnet20.yaml")


def _fill_data_roots(config: dict, root: Path) -> None:
    """Empty files wherever each experiment's dataset is read from, under ``root``."""
    for exp in config["experiments"].values():
        spec = get_spec(exp["dataset"]["name"])
        for name in spec.required_files:
            path = root / exp["dataset"]["data_root"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


def _config(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_a_paper_config_without_its_data_names_the_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"data_root: .*data/"):
        validate(_config(name), load_schema(ROOT / "config" / "config.schema.yaml"))


def test_the_seed_grid_is_the_seed_studys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config("paper.yaml")
    _fill_data_roots(config, tmp_path)
    validate(config, load_schema(ROOT / "config" / "config.schema.yaml"))
    experiments = config["experiments"]
    grid = {(e["dataset"]["name"], e["model"]) for e in experiments.values()}
    assert grid == {
        ("mnist", "lenet5_seed"),
        ("svhn", "vgg_svhn_seed"),
        ("cifar10", "vgg_svhn_seed"),
    }
    for exp in experiments.values():
        assert len(exp["seeds"]) >= 3
        pruning = exp["pruning"]
        assert (pruning["rate"], pruning["scope"], pruning["retrain_epochs"]) == (
            0.2,
            "global",
            None,
        )
        assert {"imp", "retrain_only", "random_global", "random_layerwise"} <= set(
            pruning["methods"]
        )
        assert exp["dataset"]["probe_size"] <= 5000
        similarity = exp["similarity"]
        assert {"cca_mean", "svcca", "pwcca", "cka_linear", "nbs"} <= set(similarity["metrics"])
        assert {"channels", "flatten"} <= set(similarity["views"])
        assert (similarity["svcca_variance"], similarity["cca_threshold"]) == (0.99, 0.98)
        data = DataSettings(**exp["dataset"])
        assert data.probe_size <= get_spec(data.name).test_size(data)


def test_rendas_comparison_runs_every_mode_with_their_schedule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config("renda_resnet20.yaml")
    _fill_data_roots(config, tmp_path)
    validate(config, load_schema(ROOT / "config" / "config.schema.yaml"))
    budgets = set()
    for exp in config["experiments"].values():
        assert (exp["dataset"]["name"], exp["model"], len(exp["seeds"])) == (
            "cifar10",
            "resnet20_projection",
            3,
        )
        train = exp["train"]
        assert (train["epochs"], train["batch_size"], train["lr"]) == (182, 128, 0.1)
        assert (train["milestones"], train["gamma"], train["weight_decay"]) == (
            [91, 136],
            0.1,
            2e-4,
        )
        pruning = exp["pruning"]
        assert (pruning["rate"], pruning["rounds"], pruning["scope"]) == (0.2, 10, "global")
        modes = {"imp", "imp_weight_rewind", "imp_finetune"}
        assert modes | {f"{m}_oneshot" for m in modes} == set(pruning["methods"])
        budgets.add(pruning["retrain_epochs"])
    assert budgets == {None, 30}


@pytest.mark.parametrize(
    ("name", "dense", "rounds"),
    [
        # 3 experiments x 3 seeds; IMP and its three controls, 10 rounds each
        ("paper.yaml", 9, 9 * 4 * 10),
        # 2 budgets x 3 seeds; six modes, 10 rounds each
        ("renda_resnet20.yaml", 6, 6 * 6 * 10),
    ],
)
def test_a_paper_config_plans_its_whole_grid_and_every_figure(name, dense, rounds, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    _fill_data_roots(_config(name), workdir)
    jobs = planned_jobs(workdir, "--configfile", f"config/{name}")
    assert jobs["train_dense"] == dense and jobs["prune"] == rounds
    experiments = len(_config(name)["experiments"])
    assert jobs["aggregate"] == experiments
    assert jobs["key_numbers"] == experiments and jobs["figure_accuracy_vs_sparsity"] == experiments
