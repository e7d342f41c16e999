"""The benchmark scripts run end to end on tiny shapes (their numbers are not asserted: speed
is never a test; see benchmarks/)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from prunesim.metrics import METRICS, similarity

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "metrics.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )


def test_metrics_benchmark_prints_a_row_per_metric_with_baselines_and_all_metrics():
    result = _run("300,20,40", "60,80,10", "--repeat", "2", "--no-matrix")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    for metric in METRICS:
        assert sum(f"| {metric} |" in row for row in rows) == 2, metric
    assert sum("all metrics, shared factors" in row for row in rows) == 2
    assert "float64 matmul rate" in result.stdout


def test_metrics_benchmark_rejects_a_repeat_below_one():
    result = _run("300,20,40", "--repeat", "0", "--no-matrix")
    assert result.returncode == 2
    assert "--repeat must be at least 1, got 0" in result.stderr


def test_streaming_memory_benchmark_prints_a_row_per_sample_count():
    script = SCRIPT.with_name("streaming_memory.py")
    result = subprocess.run(
        [sys.executable, str(script), "300", "600"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["300", "600"]
    for _, _, seconds, peak_mib, ratio in rows:  # n, store MiB, seconds, peak RSS, RSS ratio
        assert float(seconds) > 0 and float(peak_mib) > 0 and float(ratio) > 0


def test_training_cost_prints_a_row_per_experiment_with_the_grids_epochs():
    script = SCRIPT.with_name("training_cost.py")
    config = SCRIPT.parents[1] / "config" / "smoke.yaml"
    result = subprocess.run(
        [sys.executable, str(script), str(config), "--images", "64"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| smoke |")]
    # two seeds x (2 dense epochs + 2 rounds x 2 epochs for IMP and for random_layerwise)
    assert len(rows) == 1 and "| 512 | 20 |" in rows[0]
    assert "hours of training on cpu" in result.stdout


def test_pipeline_accounting_splits_every_jobs_wall_time_into_work_and_fixed_cost(
    finished_smoke_run,
):
    script = SCRIPT.with_name("pipeline.py")
    result = subprocess.run(
        [sys.executable, str(script), "--results-of", str(finished_smoke_run), "--cores", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    for rule in ("train_dense", "prune", "extract_activations", "compare", "aggregate"):
        jobs, wall, work, fixed = rows[rule][:4]
        # every job's work was measured by run_job (no "~": not estimated from timestamps)
        assert int(jobs) > 0 and not work.startswith("~"), (rule, rows[rule])
        # the work (the job's own log) and the wall time (Snakemake's metadata) are measured
        # apart: the job's process started before its work and ended after it
        assert 0 < float(work) < float(wall), rule
        assert float(fixed) > 0, rule
    assert "fixed cost:" in result.stdout and "jobs' span" in result.stdout


def test_throughput_prints_prunesim_against_a_bare_loop_for_training_and_extraction():
    script = SCRIPT.with_name("throughput.py")
    args = ["--images", "128", "--probe", "16", "--batch", "8", "--repeat", "1"]
    result = subprocess.run(
        [sys.executable, str(script), *args, "--arch", "lenet5"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if "| lenet5 |" in line]
    assert [row[1].strip() for row in rows] == ["dense epoch", "IMP round epoch", "extraction"]
    for row in rows:
        ours, bare, ratio = (float(cell.replace(",", "")) for cell in row[2:])
        assert ours > 0 and bare > 0 and ratio == pytest.approx(ours / bare, rel=0.01, abs=0.01)


LIBRARIES = SCRIPT.parent / "libraries.py"


def test_libraries_benchmark_names_the_missing_library_files(tmp_path):
    result = subprocess.run(
        [sys.executable, str(LIBRARIES), "--libraries", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert str(tmp_path / "svcca" / "cca_core.py") in error
    assert "representation_similarity/Demo.ipynb" in error and "fetch them" in error


def test_libraries_benchmark_runs_only_the_notebooks_definitions(tmp_path, monkeypatch):
    # Kornblith's code is published as a notebook: its function definitions are loaded, its
    # demonstration statements (here one that would fail) are not run
    folder = tmp_path / "representation_similarity"
    folder.mkdir()
    cells = [
        {"cell_type": "markdown", "source": ["# demo"]},
        {
            "cell_type": "code",
            "source": ["import numpy as np\n", "def double(x):\n", "  return 2 * x\n"],
        },
        {
            "cell_type": "code",
            "source": ["print(undefined_name)\n", "def triple(x):\n", "  return 3 * x"],
        },
    ]
    (folder / "Demo.ipynb").write_text(json.dumps({"cells": cells}))
    monkeypatch.syspath_prepend(str(LIBRARIES.parent))
    libraries = importlib.import_module("libraries")
    loaded = libraries.load_kornblith(tmp_path)
    assert loaded["double"](4) == 8 and loaded["triple"](2) == 6
    assert loaded["np"].__name__ == "numpy"


def test_libraries_benchmark_ceilings_name_metrics_and_floors_it_times(monkeypatch):
    # the ceiling column divides a library's time by one of these floors: every row it names
    # must be a prunesim metric and every floor one that products_floors times
    monkeypatch.syspath_prepend(str(LIBRARIES.parent))
    libraries = importlib.import_module("libraries")
    floors = libraries.products_floors(*libraries.test_data(300, 20, 30), repeat=1)
    assert set(libraries.PRODUCTS_FLOOR) <= set(METRICS)
    assert set(libraries.PRODUCTS_FLOOR.values()) == set(floors)
    assert all(seconds > 0 for seconds in floors.values())


def test_cka_passes_prints_a_row_per_thread_count_and_times_kornblith_steps_for_the_same_value(
    monkeypatch,
):
    script = SCRIPT.with_name("cka_passes.py")
    result = subprocess.run(
        [sys.executable, str(script), "2000,60,80", "--repeat", "1", "--threads", "1", "2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = [
        line.split("|")[1:-1] for line in result.stdout.splitlines() if "| 2,000, 60, 80 |" in line
    ]
    assert [row[1].strip() for row in rows] == ["1", "2"]
    for row in rows:
        floor, ours, ratio = (float(cell.strip().rstrip("ms×").strip()) for cell in row[2:5])
        assert floor > 0 and ours > 0 and ratio > 0
    # the floor it times computes the same linear CKA as prunesim
    monkeypatch.syspath_prepend(str(script.parent))
    passes = importlib.import_module("cka_passes")
    x, y = passes.test_data(300, 20, 40)
    assert passes.kornblith_steps(x, y) == pytest.approx(similarity(x, y, "cka_linear"), abs=1e-12)


def test_raw_products_accuracy_surveys_the_route_at_its_bound_and_where_it_is_refused(
    monkeypatch,
):
    script = SCRIPT.with_name("raw_products_accuracy.py")
    result = subprocess.run(
        [sys.executable, str(script), "4,2,1,6", "300,12,9,3"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("|")[1].strip(): line.split("|")[3:-1]
        for line in result.stdout.splitlines()
        if line.startswith("| 4,") or line.startswith("| 300,")
    }
    assert [cells[0].strip() for cells in rows.values()] == ["refused", "taken"]
    assert all(0.0 <= float(cell) < 1e-11 for cell in rows["300, 12, 9"][1:])
    # every neuron sits at the route's bound, where its rounding is largest
    monkeypatch.syspath_prepend(str(script.parent))
    survey = importlib.import_module("raw_products_accuracy")
    for kind in range(3):
        for side in survey.at_the_bound(np.random.default_rng(kind), 500, 7, 5, kind):
            ratio = np.abs(side.mean(axis=0)) / side.std(axis=0)
            assert ((ratio >= 7.9 - 1e-9) & (ratio <= 7.99 + 1e-9)).all()
