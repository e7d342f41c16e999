"""Debian packages a test needs (SLURM, a browser), installed with apt when missing."""

from __future__ import annotations

import os
import shutil
import subprocess


def missing(commands: tuple[str, ...]) -> list[str]:
    return [cmd for cmd in commands if shutil.which(cmd) is None]


def install(packages: tuple[str, ...], commands: tuple[str, ...]) -> str | None:
    """Install ``packages`` if one of ``commands`` is missing; the reason it failed, else
    None."""
    if not missing(commands):
        return None
    if os.geteuid() != 0:
        return f"{', '.join(missing(commands))} missing, and apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}"
    still = missing(commands)
    return f"still missing after apt-get install: {', '.join(still)}" if still else None
