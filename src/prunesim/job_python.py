"""Work that must happen before the first job, run in a job environment's Python where
Snakemake's own lacks the libraries it needs (the conda route: Snakemake in an environment of
its own, the jobs in ``envs/prunesim.yaml``).

A module of its own: the jobs do not import it, so it is in no job's code digest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

# The exit status of a `python -m prunesim.X` helper run in a Python that lacks the libraries
# it needs: the next candidate interpreter is tried.
LACKS_LIBRARIES = 3


def missing(libraries: Iterable[str]) -> list[str]:
    """The ``libraries`` (module names) that this Python cannot import."""
    return [name for name in libraries if importlib.util.find_spec(name) is None]


def _checkout_src() -> str | None:
    """This checkout's ``src/`` (the library's folder, beside pyproject.toml), to put on the
    job Python's path; None where prunesim is installed (its folder is site-packages, which
    another Python must not read)."""
    src = Path(__file__).resolve().parents[1]
    return str(src) if (src.parent / "pyproject.toml").is_file() else None


def in_job_python(
    module: str | list[str], request, pythons: Iterable[str], what: str, libraries: list[str]
):
    """Run ``python -m module`` (a name, or a name and its arguments) in the first of
    ``pythons`` (the jobs' interpreters) that can, with this checkout's library on its path
    and ``request`` as JSON on stdin; return its JSON answer. A RuntimeError says ``what``
    could not be done, and why, when none can."""
    path = [p for p in (_checkout_src(), os.environ.get("PYTHONPATH")) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)} if path else None
    failures = []
    for python in pythons:
        try:
            done = subprocess.run(
                [python, "-m", *([module] if isinstance(module, str) else module)],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                env=env,
            )
            if done.returncode == 0:
                return json.loads(done.stdout)
        except (OSError, ValueError) as err:  # no such interpreter; an answer that is not JSON
            failures.append(f"{python}: {type(err).__name__}: {err}")
            continue
        if done.returncode == LACKS_LIBRARIES:
            failures.append(f"{python}: lacks some of {libraries}")
        else:  # e.g. another workflow's environment, without prunesim's own dependencies
            lines = done.stderr.strip().splitlines() or ["(no message)"]
            failures.append(f"{python}: exit status {done.returncode}: {lines[-1]}")
    tried = "; ".join(failures) if failures else "no job environment (conda) to try"
    raise RuntimeError(
        f"{what} needs {libraries}, which Snakemake's Python lacks, and no job environment "
        f"could do it ({tried}): install the workflow's dependencies (pip install "
        "'prunesim[workflow]') or run with --software-deployment-method conda"
    )
