"""Fault battery: bad configuration, damaged files, diverged training and killed runs, each
through the README's own command on a copy of one finished smoke run.

Every case asserts the exit status, that the message names the culprit (the key or the file)
and that nothing already computed was lost; where a rerun follows, that it gives the same
numbers. What is not an activation matrix is tested at the library's edge in test_metrics.py
("what is not an activation matrix, non-finite values, extreme scales").
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
import zarr
from smoke_workflow import CONFIG, EXPERIMENT, copy_run, snakemake

from prunesim.checkpoint import load_checkpoint, save_checkpoint
from prunesim.io import JobFailure, run_job
from prunesim.models import build_model

pytestmark = pytest.mark.workflow

BASE = f"results/{EXPERIMENT}"


def snapshot(workdir: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file under results/ (logs and benchmarks left out: a failed
    job rewrites its own log with the traceback, which is the point)."""
    files = {}
    for path in sorted((workdir / "results").rglob("*")):
        if path.is_file() and path.suffix not in (".log", ".tsv"):
            files[str(path.relative_to(workdir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def assert_nothing_lost(before: dict[str, str], after: dict[str, str], changed=()) -> None:
    """Every file of ``before`` is still there with the same content, but ``changed``."""
    lost = [p for p in before if p not in after and not any(p.startswith(c) for c in changed)]
    altered = [
        p
        for p in before
        if p in after and before[p] != after[p] and not any(p.startswith(c) for c in changed)
    ]
    assert not lost and not altered, f"lost {lost[:5]}, altered {altered[:5]}"


def aggregate_values(workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    with xr.open_dataset(workdir / BASE / "aggregate.nc") as ds:
        return ds.similarity.values.copy(), ds.test_accuracy.values.copy()


# What a recovery test reruns: every file but the figures (the figures have tests of their
# own); a deleted file is rebuilt, as under the default target.
NUMBERS = "numbers"


def assert_same_numbers(workdir: Path, reference: Path) -> None:
    values, accuracy = aggregate_values(workdir)
    ref_values, ref_accuracy = aggregate_values(reference)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(accuracy, ref_accuracy)


@pytest.fixture
def run_copy(finished_smoke_run, tmp_path) -> Path:
    return copy_run(finished_smoke_run, tmp_path / "run")


@pytest.fixture(scope="module")
def shared_copy(finished_smoke_run, tmp_path_factory) -> Path:
    """One copy for the cases that must stop before any job (they change nothing)."""
    return copy_run(finished_smoke_run, tmp_path_factory.mktemp("faults") / "run")


# --- configuration: stopped before any job, naming the key ------------------------------------


def _experiment_edit(key_path: str, value):
    def edit(config: dict) -> None:
        node = config["experiments"][EXPERIMENT]
        *parents, last = key_path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


CONFIG_FAULTS = {
    "rate_nan": (_experiment_edit("pruning.rate", math.nan), "pruning.rate: nan is not a finite"),
    "lr_inf": (_experiment_edit("train.lr", math.inf), "train.lr: inf is not a finite number"),
    "epochs_float": (_experiment_edit("train.epochs", 2.0), "train.epochs: 2.0 is a float"),
    "probe_size_float": (
        _experiment_edit("dataset.probe_size", 128.0),
        "dataset.probe_size: 128.0 is a float, not an integer (write 128)",
    ),
    "activation_batch_float": (
        _experiment_edit("activations.batch_size", 64.0),
        "activations.batch_size: 64.0 is a float",
    ),
    "seed_float": (_experiment_edit("seeds", [0.0, 1]), "seeds.0: 0.0 is a float"),
    "unknown_key": (_experiment_edit("colour", "red"), "only the keys documented"),
    "milestones_beyond_epochs": (
        _experiment_edit("train", {"epochs": 2, "schedule": "multistep", "milestones": [3]}),
        "train.milestones: [3]",
    ),
    "device_cuda_without_gpu": (
        lambda config: config.update(device="cuda"),
        "config key device: 'cuda', but this machine sees no CUDA GPU",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FAULTS))
def test_bad_config_value_stops_before_any_job_naming_the_key(shared_copy, case):
    if case == "device_cuda_without_gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    edit, expected = CONFIG_FAULTS[case]
    config = yaml.safe_load((shared_copy / CONFIG).read_text())
    edit(config)
    path = shared_copy / "config" / f"fault_{case}.yaml"
    path.write_text(yaml.safe_dump(config))
    before = snapshot(shared_copy)
    # The device is where jobs run, not a param: it stops a run that has a job to run (here
    # the dense networks, forced), before the first one; a finished run has nothing to stop.
    forced = ("--forcerun", "train_dense") if case == "device_cuda_without_gpu" else ()
    config_file = str(path.relative_to(shared_copy))
    proc = snakemake(shared_copy, "--configfile", config_file, *forced, check=False)
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "invalid configuration" in message and expected in message, message
    assert_nothing_lost(before, snapshot(shared_copy))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("experiments:\n  smoke: {model: [lenet5\n", "line 3, column 1: not valid YAML"),
        ("", "empty, expected a mapping of keys"),
        ("- a list\n", "a list, expected a mapping of keys"),
    ],
    ids=["syntax_error", "empty", "not_a_mapping"],
)
def test_unreadable_config_file_fails_and_the_checker_names_file_and_line(
    shared_copy, text, expected
):
    path = shared_copy / "config" / "broken.yaml"
    path.write_text(text)
    before = snapshot(shared_copy)
    # Snakemake reads a --configfile before the workflow starts: its own message, no job.
    proc = snakemake(shared_copy, "--configfile", "config/broken.yaml", check=False)
    assert proc.returncode != 0
    assert_nothing_lost(before, snapshot(shared_copy))
    check = subprocess.run(
        [sys.executable, "-m", "prunesim.config", "config/broken.yaml"],
        cwd=shared_copy,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert f"config file config/broken.yaml{', ' if 'line' in expected else ': '}" in check.stderr
    assert expected in check.stderr, check.stderr


def test_yaml_error_in_the_embedded_config_names_file_and_line(finished_smoke_run, tmp_path):
    workdir = copy_run(finished_smoke_run, tmp_path / "run")
    (workdir / "config/config.yaml").write_text("device: cpu\n  experiments: [\n")
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0
    assert "config file config/config.yaml, line 2, column 14: not valid YAML" in proc.stderr


# --- damaged files: refused before any job, naming the file ------------------------------------


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _chunk_files(store: Path, layer: str) -> list[Path]:
    return sorted(p for p in (store / layer / "c").rglob("*") if p.is_file())


def _drop_manifest(store: Path) -> None:
    group = zarr.open_group(store, mode="r+")
    del group.attrs["manifest"]


def _other_seed(path: Path) -> None:
    shutil.copy(path.parents[1].parent / "seed1/dense/model.pt", path)  # a new file: newer


def _other_architecture(path: Path) -> None:
    _, provenance = load_checkpoint(path)
    torch.manual_seed(0)
    save_checkpoint(build_model("resnet20", 1, 10, 28), path, provenance)


DAMAGED_FILES = {
    "data_flipped": ("data.npz", _flip_middle_byte, "prepared data", "Bad CRC-32"),
    "data_truncated": ("data.npz", _truncate, "prepared data", "cannot be read"),
    "dense_model_flipped": ("seed0/dense/model.pt", _flip_middle_byte, "checkpoint", ""),
    "round_model_truncated": ("seed0/imp/round1/model.pt", _truncate, "checkpoint", "truncated"),
    "mask_flipped": ("seed1/imp/round1/mask.pt", _flip_middle_byte, "mask file", ""),
    "metrics_not_json": (
        "seed1/dense/summary.json",
        lambda p: p.write_text('{"test_accuracy": 0.9,'),
        "",
        "not valid JSON (Expecting property name enclosed in double quotes at line 1",
    ),
    "similarity_flipped": ("seed0/imp/round2/similarity.nc", _flip_middle_byte, "similarity", ""),
    "store_without_manifest": (
        "seed1/dense/activations.zarr",
        _drop_manifest,
        "activation store",
        "has no complete manifest",
    ),
    "store_chunk_deleted": (
        "seed0/dense/activations.zarr",
        lambda p: _chunk_files(p, "relu2")[0].unlink(),
        "activation store",
        "layer 'relu2' has 1 of its 2 chunks",
    ),
    "model_of_another_seed": (
        "seed0/dense/model.pt",
        _other_seed,
        "checkpoint",
        "is of another model: seed 1 where 0 was expected",
    ),
    "model_of_another_architecture": (
        "seed0/imp/round1/model.pt",
        _other_architecture,
        "checkpoint",
        "model 'resnet20' where 'lenet5' was expected",
    ),
}


def _rerun_args(name: str) -> tuple[str, ...]:
    """A damaged file is newer than what was made from it, so the run reruns what reads it;
    but Snakemake dates a store by its folder, which damage inside it does not touch: a store
    is read again when the comparisons are rerun (here: forced)."""
    return ("--forcerun", "compare") if name.endswith(".zarr") else ()


@pytest.mark.parametrize("case", sorted(DAMAGED_FILES))
def test_damaged_file_stops_the_run_before_any_job_naming_it(run_copy, case):
    name, damage, kind, expected = DAMAGED_FILES[case]
    target = run_copy / BASE / name
    damage(target)
    before = snapshot(run_copy)
    proc = snakemake(run_copy, "--configfile", CONFIG, *_rerun_args(name), check=False)
    message = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"damaged input: {kind}" in message and f"{BASE}/{name}" in message, message
    assert expected in message, message
    assert "weights_only" not in message and "allow_pickle" not in message
    assert "Job stats" not in message.split("damaged input")[1]  # stopped before any job
    assert_nothing_lost(before, snapshot(run_copy))


@pytest.mark.parametrize(
    "case", ["similarity_flipped", "store_chunk_deleted", "round_model_truncated"]
)
def test_deleting_a_damaged_file_and_rerunning_rebuilds_the_same_numbers(
    run_copy, finished_smoke_run, case
):
    name, damage, _, _ = DAMAGED_FILES[case]
    target = run_copy / BASE / name
    damage(target)
    assert snakemake(run_copy, "--configfile", CONFIG, *_rerun_args(name), check=False).returncode
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    snakemake(run_copy, NUMBERS, "--configfile", CONFIG)
    assert target.exists()
    assert_same_numbers(run_copy, finished_smoke_run)


def test_chunk_with_other_values_fails_only_the_job_that_reads_it_with_one_line(run_copy):
    store = run_copy / BASE / "seed1/imp/round2/activations.zarr"
    group = zarr.open_group(store, mode="r+")
    values = group["fc3"][0:64]
    values[0, 0] += 1.0  # a valid chunk, but not what was extracted: only its checksum tells
    group["fc3"][0:64] = values
    before = snapshot(run_copy)
    proc = snakemake(run_copy, "--configfile", CONFIG, "--forcerun", "compare", check=False)
    assert proc.returncode != 0
    line = (
        f"prunesim: activation store '{BASE}/seed1/imp/round2/activations.zarr', layer 'fc3', "
        "samples 0-63: chunk is damaged"
    )
    assert line in proc.stderr, proc.stderr
    log = (run_copy / BASE / "seed1/imp/round2/similarity.log").read_text()
    assert "Traceback" in log and "DamagedStoreError" in log
    # Snakemake removed the failed job's own output before running it; the other comparisons
    # ran again or were not reached; nothing else changed.
    failed = f"{BASE}/seed1/imp/round2/similarity.nc"
    after = snapshot(run_copy)
    compared = [p for p in before if p.endswith("/similarity.nc")]
    assert_nothing_lost(before, after, changed=tuple(compared))
    assert [p for p in compared if p not in after] == [failed]


def test_diverged_training_stops_at_the_first_non_finite_loss_naming_the_model(run_copy):
    config = yaml.safe_load((run_copy / CONFIG).read_text())
    diverging = config["experiments"][EXPERIMENT]
    diverging.update(seeds=[3], train={"epochs": 2, "lr": 1.0e6, "batch_size": 64})
    config["experiments"] = {"diverge": diverging}
    (run_copy / "config/diverge.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(run_copy)
    proc = snakemake(run_copy, "--configfile", "config/diverge.yaml", check=False)
    assert proc.returncode != 0
    line = "prunesim: training diverged (experiment diverge, seed 3, dense): loss is nan at epoch 1"
    assert line in proc.stderr, proc.stderr
    assert "likely too high for this model (lower train.lr" in proc.stderr
    assert not (run_copy / "results/diverge/seed3/dense/model.pt").exists()
    assert_nothing_lost(before, snapshot(run_copy))


# --- killed jobs and a killed snakemake --------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_killed_jobs_are_removed_by_the_next_run(run_copy, finished_smoke_run):
    host = socket.gethostname().replace("-", "_")
    folder = run_copy / BASE / "seed0/imp/round2"
    store_tmp = folder / f".activations.zarr.tmp-{host}-{_dead_pid()}-1"
    shutil.copytree(folder / "activations.zarr", store_tmp)  # half a store, as if killed
    shutil.rmtree(folder / "activations.zarr")
    other_host = folder / ".model.pt.tmp-elsewhere-1-1"  # a job on another node: left alone
    other_host.write_bytes(b"partial")
    proc = snakemake(run_copy, NUMBERS, "--configfile", CONFIG)
    assert f"removed {store_tmp.relative_to(run_copy)}" in proc.stderr
    assert not store_tmp.exists() and other_host.exists()
    assert_same_numbers(run_copy, finished_smoke_run)


def _job_processes(workdir: Path) -> list[int]:
    out = subprocess.run(
        ["pgrep", "-f", str(workdir / ".snakemake" / "scripts")], capture_output=True, text=True
    )
    return [int(pid) for pid in out.stdout.split()]


def test_after_kill_9_of_snakemake_jobs_stop_and_unlock_then_rerun_completes(
    run_copy, finished_smoke_run
):
    shutil.rmtree(run_copy / BASE / "seed0/dense/activations.zarr")  # extraction, 6 comparisons
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", CONFIG]
    runner = subprocess.Popen(cmd, cwd=run_copy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _job_processes(run_copy) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _job_processes(run_copy), "no job started"
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 30
    while _job_processes(run_copy) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _job_processes(run_copy), "jobs of the killed snakemake run on"
    locked = snakemake(run_copy, "--configfile", CONFIG, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    snakemake(run_copy, "--unlock", "--configfile", CONFIG)
    snakemake(run_copy, NUMBERS, "--configfile", CONFIG)
    assert not list((run_copy / "results").rglob(".*.tmp-*"))
    assert_same_numbers(run_copy, finished_smoke_run)


# --- the job wrapper: one line on the console, the traceback in the log -----------------------


def test_job_failure_exits_1_with_one_line_and_the_traceback_in_the_log(tmp_path, capsys):
    def job(path):
        raise JobFailure(f"{path}: damaged")

    log = tmp_path / "job.log"
    with pytest.raises(SystemExit) as exit_:
        run_job(log, job, path="results/x/model.pt")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "prunesim: results/x/model.pt: damaged\n"
    assert "Traceback" in log.read_text() and "JobFailure" in log.read_text()


def test_unexpected_error_keeps_its_traceback_everywhere(tmp_path):
    def job():
        raise KeyError("bug")

    log = tmp_path / "job.log"
    with pytest.raises(KeyError):
        run_job(log, job)
    assert "Traceback" in log.read_text() and "KeyError" in log.read_text()


HEALTHY_BUT_TALKATIVE = """
import logging, os, sys, warnings
from prunesim.io import run_job

def job():
    warnings.warn("a library's deprecation warning")
    print("a print")
    print("a line to stderr", file=sys.stderr)
    os.write(2, b"a C library's message\\n")
    logging.getLogger("prunesim.test").info("a log line after them")

run_job(sys.argv[1], job)
"""


def test_a_healthy_job_is_silent_on_the_console_and_its_log_keeps_everything(tmp_path):
    log = tmp_path / "job.log"
    done = subprocess.run(
        [sys.executable, "-c", HEALTHY_BUT_TALKATIVE, str(log)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    text = log.read_text()
    said = ["deprecation warning", "a print", "a line to stderr", "a C library's message"]
    for line in [*said, "a log line after them"]:  # none written over by the next
        assert line in text, line
