"""Where a workflow run's time goes: per rule, each job's own work against its fixed cost.

A job's wall time is what Snakemake records for it (``.snakemake/metadata``: start and end of
the job's process). Its work is the time the job function itself ran, which
:func:`prunesim.io.run_job` writes as the last line of the job's log; the rest, wall − work, is
the job's fixed cost: starting Python, Snakemake's script preamble, imports, reading the config.
For logs written before that line existed, the work is taken from the log's first and last
timestamps (marked ``~``: it misses what the job did before its first log line).

    python benchmarks/pipeline.py                  # run the default config in a fresh directory
    python benchmarks/pipeline.py --cores 2 --keep /tmp/run   # keep the run's directory
    python benchmarks/pipeline.py --results-of /path/to/checkout   # a finished run there

The table is per rule: jobs, the sum of their wall times (job-seconds, which the cores share),
their work, their fixed cost and its mean per job, and each rule's share of all job-seconds.
Below it: the run's wall clock (first job's start to last job's end, and the whole command
when run here) against the job-seconds over the cores, which shows how much of the run the
scheduling and the order of jobs leave idle. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prunesim.io import WORK_LINE  # noqa: E402 (the checkout's own, beside this script)

TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
WORK = re.compile(re.escape(WORK_LINE) + r" ([0-9.]+) s")


@dataclass
class Job:
    rule: str
    start: float
    end: float
    work: float | None  # None: no log, or a log without timestamps
    measured: bool  # work from run_job's line (else from the log's timestamps)

    @property
    def wall(self) -> float:
        return self.end - self.start


def work_in(log: Path) -> tuple[float | None, bool]:
    """(seconds of the job's own work, whether run_job measured it) from its log."""
    if not log.is_file():
        return None, False
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if match := WORK.search(line):
            return float(match.group(1)), True
    stamps = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in lines
        if (m := TIMESTAMP.match(line))
    ]
    return (stamps[-1] - stamps[0], False) if stamps else (None, False)


def jobs_of(directory: Path) -> list[Job]:
    """Every finished job of the run in ``directory``, from Snakemake's metadata."""
    metadata = directory / ".snakemake" / "metadata"  # one record per output file
    if not metadata.is_dir():
        raise SystemExit(f"no Snakemake metadata in {directory} (expected {metadata})")
    seen: dict[tuple, Job] = {}
    for record_file in metadata.iterdir():
        record = json.loads(record_file.read_text())
        start, end = record.get("starttime"), record.get("endtime")
        if record.get("incomplete") or start is None or end is None:
            continue
        key = (record["rule"], record.get("job_hash"), tuple(record.get("log") or ()))
        if key in seen:  # each output's record has its own start, within the job's
            job = seen[key]
            job.start, job.end = min(job.start, start), max(job.end, end)
            continue
        logs = [directory / path for path in record.get("log") or []]
        work, measured = work_in(logs[0]) if logs else (None, False)
        seen[key] = Job(record["rule"], start, end, work, measured)
    return sorted(seen.values(), key=lambda job: job.start)


def table(jobs: list[Job], cores: int | None, command_seconds: float | None) -> str:
    by_rule: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_rule[job.rule].append(job)
    total = sum(job.wall for job in jobs)
    rows = [
        "| rule | jobs | wall (job-s) | work (s) | fixed (s) | fixed per job (s) | share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    order = sorted(by_rule, key=lambda rule: -sum(job.wall for job in by_rule[rule]))
    all_work = all_fixed = 0.0
    for rule in order:
        group = by_rule[rule]
        wall = sum(job.wall for job in group)
        timed = [job for job in group if job.work is not None]
        work = sum(job.work for job in timed)
        fixed = sum(job.wall - job.work for job in timed)
        all_work, all_fixed = all_work + work, all_fixed + fixed
        mark = "" if all(job.measured for job in timed) else "~"
        if timed:
            split = f"{mark}{work:.1f} | {mark}{fixed:.1f} | {mark}{fixed / len(timed):.2f}"
        else:  # logs without run_job's line or timestamps: the wall time only
            split = "– | – | –"
        rows.append(f"| {rule} | {len(group)} | {wall:.1f} | {split} | {wall / total:.0%} |")
    timed_jobs = sum(job.work is not None for job in jobs)
    rows.append(
        f"| all | {len(jobs)} | {total:.1f} | {all_work:.1f} | {all_fixed:.1f} | "
        f"{all_fixed / max(timed_jobs, 1):.2f} | 100% |"
    )
    span = jobs[-1].end - min(job.start for job in jobs) if jobs else 0.0
    lines = ["\n".join(rows), ""]
    lines.append(f"jobs' span (first start to last end): {span:.1f} s")
    if command_seconds is not None:
        lines.append(
            f"whole command (Snakemake's start-up and DAG included): {command_seconds:.1f} s"
        )
    if cores:
        lines.append(
            f"job-seconds over {cores} cores: {total / cores:.1f} s, so the span is "
            f"{span / (total / cores):.2f}x a perfectly packed run"
        )
    untimed = len(jobs) - timed_jobs
    lines.append(
        f"fixed cost: {all_fixed:.1f} of {total:.1f} job-seconds ({all_fixed / max(total, 1e-9):.0%})"
        + (f"; {untimed} jobs' logs gave no split (in neither column)" if untimed else "")
    )
    return "\n".join(lines)


def run(directory: Path, cores: int, config: Path, extra: list[str]) -> float:
    """The workflow in ``directory`` with this checkout's Snakefile, default profile and
    ``config``; returns the command's wall seconds."""
    command = [
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(directory),
        "--cores",
        str(cores),
        "--quiet",
        "progress",
        *extra,
        "--configfile",
        str(config.resolve()),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=directory)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-of", type=Path, help="a directory holding a finished run")
    parser.add_argument("--cores", type=int, default=None, help="cores for the run (default all)")
    parser.add_argument("--keep", type=Path, help="run in this (new or empty) directory, kept")
    parser.add_argument(
        "--configfile",
        type=Path,
        default=ROOT / "config" / "config.yaml",
        help="the config to run (default: config/config.yaml)",
    )
    parser.add_argument("snakemake_args", nargs="*", help="passed on to snakemake (after --)")
    args = parser.parse_args(argv)
    cores = args.cores or os.cpu_count()
    if args.results_of:
        print(table(jobs_of(args.results_of), args.cores, None))
        return
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        directory = args.keep
        seconds = run(directory, cores, args.configfile, args.snakemake_args)
        print(table(jobs_of(directory), cores, seconds))
        return
    with tempfile.TemporaryDirectory(prefix="prunesim-pipeline-") as tmp:
        seconds = run(Path(tmp), cores, args.configfile, args.snakemake_args)
        print(table(jobs_of(Path(tmp)), cores, seconds))


if __name__ == "__main__":
    main()
