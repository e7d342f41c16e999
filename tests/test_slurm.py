"""Cluster runs: the smoke workflow on a real single-node SLURM cluster through the executor
plugin and profiles/slurm, compared with a local run of the same config; and the local
profile's GPU limit.

The cluster run is interrupted on purpose: a training job is cancelled with scancel while it
runs, and a rerun (the profile sets --rerun-incomplete) finishes the DAG. The tests share
that run (module fixtures); each fixture records what its tests need, so they do not depend
on their order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import xarray as xr
from slurm_cluster import ClusterUnavailable, SlurmCluster, install
from smoke_workflow import EXPERIMENT, FIGURE_RULES, ROOT, copy_workflow

CONFIG = "config/smoke.yaml"
# Seed 0's first IMP round: by the time it runs, the dense networks are finished outputs. The
# plugin names a SLURM job by its rule and wildcard values in the job's comment.
CANCELLED_RULE, CANCELLED_WILDCARDS = "prune", "smoke_0_imp_1"
CANCELLED_OUTPUTS = [
    f"results/{EXPERIMENT}/seed0/imp/round1/{name}"
    for name in ("model.pt", "mask.pt", "summary.json")
]
CANCELLED_LOG = f"results/{EXPERIMENT}/seed0/imp/round1/train.log"
LOCAL_RULES = {"aggregate", *FIGURE_RULES, "all"}
CLUSTER_ARGS = (
    "--workflow-profile",
    "profiles/slurm",
    # The test cluster has no accounting database, so sacct cannot report job states.
    "--slurm-status-command",
    "squeue",
    # Jobs here take seconds: check their state after 1 s rather than the default 40.
    "--slurm-init-seconds-before-status-checks",
    "1",
    # Keep each job's SLURM log (the plugin deletes those of successful jobs).
    "--slurm-keep-successful-logs",
    "--configfile",
    CONFIG,
)
RUN_TIMEOUT = 1800


@dataclass
class Run:
    """One snakemake invocation in the background; its output goes to ``log``."""

    workdir: Path
    args: tuple[str, ...]
    env: dict[str, str] | None = None
    log: Path = field(init=False)
    proc: subprocess.Popen = field(init=False)

    def __post_init__(self):
        logs = self.workdir / "test-logs"
        logs.mkdir(exist_ok=True)
        self.log = logs / f"snakemake-{len(list(logs.iterdir()))}.txt"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "snakemake", *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait(self, check: bool = True) -> int:
        rc = self.proc.wait(timeout=RUN_TIMEOUT)
        if check and rc != 0:
            raise AssertionError(f"snakemake {' '.join(self.args)} failed:\n{self.output()}")
        return rc

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        """End the run if it still goes on (a failed test), by its process id."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def dry_run(workdir: Path, env: dict[str, str]) -> list[tuple[str, list[str]]]:
    """(rule, output paths) of every job a run would do now."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *CLUSTER_ARGS, "--dry-run"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [
        (rule, paths.split(", "))
        for rule, paths in re.findall(
            r"^(?:local)?rule (\w+):\n(?:    (?!output).*\n)*    output: (.*)$",
            proc.stdout,
            flags=re.MULTILINE,
        )
    ]


def outputs(jobs: list[tuple[str, list[str]]]) -> set[str]:
    return {path for _, paths in jobs for path in paths}


def executed_jobs(log: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """From a run's output: jobid -> rule of the jobs run on the cluster and of those run
    locally, and jobid -> the SLURM job id it was submitted with."""
    remote, local = {}, {}
    for is_local, rule, jobid in re.findall(
        r"^(local)?rule (\w+):\n(?:    (?!jobid).*\n)*    jobid: (\d+)$", log, flags=re.MULTILINE
    ):
        (local if is_local else remote)[jobid] = rule
    submitted = dict(re.findall(r"^Job (\d+) has been submitted with SLURM jobid (\d+)", log, re.M))
    return remote, local, submitted


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root: slurmd runs jobs as their users and apt installs SLURM")
    reason = install()
    if reason:
        pytest.skip(f"cannot install SLURM (slurm-wlm, munge): {reason}")
    try:
        with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except ClusterUnavailable as err:
        pytest.skip(str(err))


@dataclass
class Interrupted:
    workdir: Path
    run: Run
    rc: int
    slurm_id: str
    jobs: list[tuple[str, list[str]]]  # every job of the DAG, planned before the run
    planned_after: list[tuple[str, list[str]]]
    finished: dict[str, int]  # output path -> mtime, for every output present after the run


def mtime(workdir: Path, path: str) -> int:
    return (workdir / path).stat().st_mtime_ns


def cancel_mid_job(cluster: SlurmCluster, run: Run, comment: str, started: Path) -> str:
    """scancel the SLURM job with this comment once squeue shows it RUNNING and its script
    has begun (``started``, its log, exists): the cancel lands in the middle of its work."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        jobs = [j for j in cluster.jobs() if j["comment"] == comment and j["state"] == "RUNNING"]
        if jobs and started.exists():
            break
        if run.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{comment} never ran:\n{run.output()}\n{cluster.logs()}")
        time.sleep(0.1)
    cancel = cluster.command("scancel", jobs[0]["id"])
    assert cancel.returncode == 0, cancel.stderr
    return jobs[0]["id"]


@pytest.fixture(scope="module")
def interrupted(cluster, tmp_path_factory) -> Interrupted:
    """A cluster run in which one training job is scancel-ed while it trains. --retries 0:
    the profile would resubmit the job once, but this run is to fail."""
    workdir = copy_workflow(tmp_path_factory.mktemp("cluster"))
    jobs = dry_run(workdir, cluster.env)
    run = Run(workdir, (*CLUSTER_ARGS, "--retries", "0"), cluster.env)
    try:
        slurm_id = cancel_mid_job(
            cluster,
            run,
            f"rule_{CANCELLED_RULE}_wildcards_{CANCELLED_WILDCARDS}",
            workdir / CANCELLED_LOG,
        )
        rc = run.wait(check=False)
    finally:
        run.stop()
    return Interrupted(
        workdir=workdir,
        run=run,
        rc=rc,
        slurm_id=slurm_id,
        jobs=jobs,
        planned_after=dry_run(workdir, cluster.env),
        finished={p: mtime(workdir, p) for p in outputs(jobs) if (workdir / p).exists()},
    )


@pytest.fixture(scope="module")
def recovered(interrupted, cluster) -> Run:
    run = Run(interrupted.workdir, CLUSTER_ARGS, cluster.env)
    try:
        run.wait()
    finally:
        run.stop()
    return run


@pytest.mark.slurm
def test_cancelled_job_fails_the_run_and_leaves_none_of_its_outputs(interrupted):
    out = interrupted.run.output()
    assert interrupted.rc != 0, out
    assert f"SLURM-job '{interrupted.slurm_id}' failed, SLURM status is: 'CANCELLED'" in out
    for path in CANCELLED_OUTPUTS:
        assert not (interrupted.workdir / path).exists(), f"{path} outlived its cancelled job"


@pytest.mark.slurm
def test_after_the_cancel_only_unfinished_jobs_are_planned(interrupted):
    """Every output on disk is one snakemake accepts as finished (none is marked incomplete
    or is older than its inputs), and the cancelled job is planned again."""
    planned = outputs(interrupted.planned_after)
    assert set(CANCELLED_OUTPUTS) <= planned
    assert not planned & set(interrupted.finished), "a finished output would be made again"
    assert interrupted.finished, "nothing had finished before the cancel"


@pytest.mark.slurm
def test_rerun_completes_and_keeps_every_finished_output(interrupted, recovered):
    for path in CANCELLED_OUTPUTS:
        assert (interrupted.workdir / path).is_file()
    remade = [p for p, t in interrupted.finished.items() if mtime(interrupted.workdir, p) != t]
    assert not remade, f"the rerun made these again: {remade}"


@pytest.mark.slurm
def test_every_cluster_job_went_through_sbatch(interrupted, recovered, cluster):
    """Each non-local job of the DAG ran as a SLURM job of its rule (by the job's SLURM
    comment and its own SLURM log), each local rule ran on the submit host."""
    states = {job["id"]: job for job in cluster.jobs()}
    completed, local_rules = [], set()
    for run in (interrupted.run, recovered):
        remote, local, submitted = executed_jobs(run.output())
        local_rules |= set(local.values())
        assert not set(local) & set(submitted), "a local job was submitted"
        assert set(remote) == set(submitted), "a cluster job ran without sbatch"
        for jobid, rule in remote.items():
            job = states[submitted[jobid]]
            assert job["comment"].startswith(f"rule_{rule}"), job
            logs = list(
                (interrupted.workdir / ".snakemake/slurm_logs").glob(
                    f"rule_{rule}/**/{job['id']}.log"
                )
            )
            assert len(logs) == 1, job
            if job["id"] == interrupted.slurm_id:
                assert job["state"] == "CANCELLED" and "CANCELLED" in logs[0].read_text()
            else:
                assert job["state"] == "COMPLETED" and f"rule {rule}:" in logs[0].read_text()
                completed.append(rule)
    assert local_rules == LOCAL_RULES
    assert sorted(completed) == sorted(r for r, _ in interrupted.jobs if r not in LOCAL_RULES)


def metrics(workdir: Path) -> dict[str, dict]:
    """Every model's summary.json without its wall-clock times."""
    found = {}
    for path in sorted((workdir / "results").rglob("summary.json")):
        data = json.loads(path.read_text())
        for epoch in data.get("history", []):
            epoch.pop("seconds", None)
        found[str(path.relative_to(workdir))] = data
    return found


@pytest.mark.slurm
def test_cluster_results_equal_a_local_run(interrupted, recovered, finished_smoke_run):
    """The session's local smoke run (same config, same code) is the reference."""
    local = finished_smoke_run
    cluster_metrics, local_metrics = metrics(interrupted.workdir), metrics(local)
    assert len(cluster_metrics) == 10  # 2 seeds x (dense + 2 IMP + 2 random rounds)
    assert cluster_metrics == local_metrics
    aggregate = f"results/{EXPERIMENT}/aggregate.nc"
    with (
        xr.open_dataset(interrupted.workdir / aggregate) as cluster,
        xr.open_dataset(local / aggregate) as local_aggregate,
    ):
        xr.testing.assert_equal(cluster, local_aggregate)


GPU_WORKFLOW = """
rule all:
    input: expand("gpu{i}.done", i=range(3))

# Each job holds a lock folder while it runs: a second GPU job at the same time fails mkdir.
rule gpu_job:
    output: "gpu{i}.done"
    resources: gpu=1
    shell: "mkdir gpu.busy && sleep 1 && rmdir gpu.busy && touch {output}"
"""


def test_local_profile_runs_one_gpu_job_at_a_time(tmp_path):
    (tmp_path / "Snakefile").write_text(GPU_WORKFLOW)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", str(ROOT / "profiles/default")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all((tmp_path / f"gpu{i}.done").is_file() for i in range(3))
