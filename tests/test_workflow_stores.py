"""`keep_activations: false` through real snakemake on config/smoke.yaml: activation stores
dropped once compared, nothing rebuilt for their absence, and extracted again when a
comparison needs them.

``dropped_run`` (once per module) is the session's finished smoke run without its stores, as a
finished run with the switch off is (``--delete-temp-output`` makes one so: tested below), then
run with the switch off after a change of the similarity metrics and views: every store is
extracted again, compared and dropped, and the aggregate and every figure are made again. The
trained models are reused (the switch does not touch them). The tests only read it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import xarray as xr
import yaml
from smoke_workflow import (
    CONFIG,
    EXPERIMENT,
    FIGURE_RULES,
    copy_run,
    planned_jobs,
    snakemake,
)

pytestmark = pytest.mark.workflow

STORE = "activations.zarr"
MODELS = 10  # 2 seeds x (dense + 2 methods x 2 rounds)
# The rules that run again when the stores are read again (as in test_workflow.py).
DOWNSTREAM_OF_ACTIVATIONS = {"compare", "compare_seeds", "aggregate", *FIGURE_RULES, "all"}
REMOVED = f"Removing temporary output results/{EXPERIMENT}/"  # Snakemake's line per store


def few_metrics(exp):
    """Three metrics and one view, for time (still a main and a companion figure)."""
    exp["similarity"]["metrics"] = ["cka_linear", "svcca", "nbs"]
    exp["similarity"]["views"] = exp["figures"]["views"] = ["gap"]


def smoke_config(workdir: Path, name: str, keep: bool, edit=None) -> str:
    """The smoke config with ``keep_activations: keep`` and ``edit(experiment)``."""
    config = yaml.safe_load((workdir / CONFIG).read_text())
    config["keep_activations"] = keep
    if edit is not None:
        edit(config["experiments"][EXPERIMENT])
    (workdir / "config" / name).write_text(yaml.safe_dump(config))
    return f"config/{name}"


def stores(workdir: Path) -> list[Path]:
    return sorted((workdir / "results").rglob(STORE))


def comparisons(workdir: Path) -> list[Path]:
    """Every similarity.nc of the run: one per model and one per seed pair."""
    return sorted((workdir / "results").rglob("similarity.nc"))


def assert_reads_every_store_again(jobs: dict[str, int]) -> None:
    jobs = dict(jobs)
    assert jobs.pop("extract_activations") == MODELS
    assert set(jobs) == DOWNSTREAM_OF_ACTIVATIONS
    assert jobs["compare"] == MODELS and jobs["compare_seeds"] == 1


@dataclass
class DroppedRun:
    workdir: Path
    config: str  # the config it ran with
    planned: dict[str, int]  # what a dry run planned before
    stderr: str  # Snakemake's log of the run


@pytest.fixture(scope="module")
def dropped_run(finished_smoke_run, tmp_path_factory) -> DroppedRun:
    workdir = copy_run(finished_smoke_run, tmp_path_factory.mktemp("dropped") / "run")
    for path in [*stores(workdir), workdir / "results" / "figures"]:
        shutil.rmtree(path)
    config = smoke_config(workdir, "smoke_drop.yaml", keep=False, edit=few_metrics)
    planned = planned_jobs(workdir, "--configfile", config)
    proc = snakemake(workdir, "--configfile", config)
    return DroppedRun(workdir, config, planned, proc.stderr)


def test_a_similarity_change_extracts_every_store_again_compares_and_drops_it(dropped_run):
    assert_reads_every_store_again(dropped_run.planned)
    assert dropped_run.stderr.count(REMOVED) == MODELS
    assert stores(dropped_run.workdir) == []


def test_without_stores_every_comparison_aggregate_and_figure_is_made(
    finished_smoke_run, dropped_run
):
    run = dropped_run.workdir
    kept = [p.relative_to(finished_smoke_run) for p in comparisons(finished_smoke_run)]
    assert [p.relative_to(run) for p in comparisons(run)] == kept
    assert len(kept) == MODELS + 1
    for path in comparisons(run):
        with xr.open_dataset(path) as ds:
            assert set(ds.metric.values) == {"cka_linear", "svcca", "nbs"}
            assert list(ds.view.values) == ["gap"] and ds.attrs["n_samples"] == 128
    with xr.open_dataset(run / "results" / EXPERIMENT / "aggregate.nc") as ds:
        assert list(ds.view.values) == ["gap"]

    def figures(workdir, view):
        folder = workdir / "results" / "figures" / EXPERIMENT
        return {p.name.replace(view, "VIEW") for p in folder.iterdir()}

    assert figures(run, "gap") == figures(finished_smoke_run, "channels")


def test_second_run_without_stores_has_nothing_to_do(dropped_run):
    assert planned_jobs(dropped_run.workdir, "--configfile", dropped_run.config) == {}


def test_report_without_stores_is_written_and_reruns_nothing(dropped_run, tmp_path):
    report = tmp_path / "report.html"
    snakemake(dropped_run.workdir, "--configfile", dropped_run.config, "--report", str(report))
    assert report.read_text().lower().startswith("<!doctype html>")
    assert planned_jobs(dropped_run.workdir, "--configfile", dropped_run.config) == {}


def test_forcerun_compare_extracts_the_stores_again(dropped_run):
    assert_reads_every_store_again(
        planned_jobs(
            dropped_run.workdir, "--configfile", dropped_run.config, "--forcerun", "compare"
        )
    )


def test_the_switch_alone_reruns_nothing_and_delete_temp_output_drops_the_stores(
    finished_smoke_run, tmp_path
):
    """On a finished run with stores, switching them off plans nothing; Snakemake's
    --delete-temp-output then deletes them (as config/README.md says), and still nothing is
    planned."""
    run = copy_run(finished_smoke_run, tmp_path / "run")
    config = smoke_config(run, "smoke_drop.yaml", keep=False)
    assert planned_jobs(run, "--configfile", config) == {}
    assert len(stores(run)) == MODELS
    proc = snakemake(run, "--configfile", config, "--delete-temp-output")
    assert proc.stderr.count(f"Deleting results/{EXPERIMENT}/") == MODELS
    assert stores(run) == []
    assert len(comparisons(run)) == MODELS + 1
    assert planned_jobs(run, "--configfile", config) == {}


def test_switching_stores_back_on_extracts_them_and_reruns_what_reads_them(dropped_run, tmp_path):
    """The other way round, as config/README.md says: kept stores are targets, so the missing
    ones are extracted, and every job that reads a new file runs again."""
    run = copy_run(dropped_run.workdir, tmp_path / "run")
    config = smoke_config(run, "smoke_keep.yaml", keep=True, edit=few_metrics)
    assert_reads_every_store_again(planned_jobs(run, "--configfile", config))
