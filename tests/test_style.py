"""The code base stays formatted and lint-clean (ruff for Python, snakefmt for Snakemake)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_PATHS = ["src", "tests", "workflow", "benchmarks"]
SNAKEMAKE_PATHS = ["Snakefile", "rules", "workflow/Snakefile"]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_python_code_passes_ruff_lint():
    proc = run(sys.executable, "-m", "ruff", "check", *PYTHON_PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_code_is_ruff_formatted():
    proc = run(sys.executable, "-m", "ruff", "format", "--check", *PYTHON_PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakemake_files_are_snakefmt_formatted():
    proc = run(sys.executable, "-m", "snakefmt", "--check", *SNAKEMAKE_PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
