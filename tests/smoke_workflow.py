"""Helpers for tests that run real snakemake on a copy of the workflow (config/smoke.yaml).

``finished_smoke_run`` (a session fixture in conftest.py) runs the smoke config once;
``copy_run`` gives each test module or case its own copy of that finished run, with the
files' times and Snakemake's metadata, so a test may change or damage it freely.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "rules", "workflow", "config", "profiles", "envs")
EXPERIMENT = "smoke"
CONFIG = "config/smoke.yaml"
# The rules that read only the aggregate: a figure option reruns these and nothing else.
FIGURE_RULES = {
    "figure_similarity_vs_round",
    "figure_layer_heatmaps",
    "figure_metric_agreement",
    "figure_similarity_vs_accuracy",
    "figure_accuracy_vs_sparsity",
    "figure_units_per_round",
    "key_numbers",
}


def snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Real snakemake in ``workdir``; ``env`` adds environment variables (e.g. PYTHONPATH)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    environ = {**os.environ, **(env or {})}
    proc = subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=600, env=environ
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(workdir: Path, *args: str, env: dict | None = None) -> dict[str, int]:
    """Rule -> job count of a dry run (the 'Job stats' table); empty if nothing to do."""
    proc = snakemake(workdir, "--dry-run", *args, env=env)
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE))
    counts.pop("total", None)
    return {rule: int(n) for rule, n in counts.items()}


def planned_outputs(workdir: Path, *args: str, env: dict | None = None) -> set[str]:
    """The output files of every job a dry run plans (empty if nothing to do)."""
    proc = snakemake(workdir, "--dry-run", *args, env=env)
    lines = re.findall(r"^\s+output: (.*)$", proc.stdout + proc.stderr, flags=re.MULTILINE)
    return {path for line in lines for path in line.split(", ")}


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        else:
            shutil.copy2(src, dest / part)
    return dest


def copy_run(finished: Path, dest: Path) -> Path:
    """A copy of a finished run (workflow, results, .snakemake metadata, file times)."""
    shutil.copytree(finished, dest, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dest


def write_config(workdir: Path, name: str, edit) -> str:
    """A copy of the smoke config changed by ``edit(experiment_dict)``; returns its path."""
    config = yaml.safe_load((workdir / CONFIG).read_text())
    edit(config["experiments"][EXPERIMENT])
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(config))
    return f"config/{name}"
