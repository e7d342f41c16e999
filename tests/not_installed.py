"""Run Python code as if only some packages were installed: a subprocess whose path finder is
blind to every other top-level package, and that has no editable-install finder (so prunesim
itself is importable only from a folder on sys.path, as the Snakefile puts src/ there)."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys

from packaging.requirements import Requirement

PRELUDE = """
import importlib.machinery, sys
_allowed = set(sys.argv.pop(1).split(","))
class _NotInstalled:
    # the path finder, blind to every top-level package but the stdlib and the allowed ones
    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in _allowed or top.startswith("_"):
            return importlib.machinery.PathFinder.find_spec(name, path, target)
        return None
    @staticmethod
    def find_distributions(*args, **kwargs):  # installed packages' metadata, as usual
        return importlib.machinery.PathFinder.find_distributions(*args, **kwargs)
    @staticmethod
    def invalidate_caches():
        importlib.machinery.PathFinder.invalidate_caches()
sys.meta_path[:] = [
    _NotInstalled if f is importlib.machinery.PathFinder else f
    for f in sys.meta_path
    if "editable" not in type(f).__module__.lower() + getattr(f, "__module__", "").lower()
]
import pkgutil
_iter_modules = pkgutil.iter_modules
def _listed(path=None, prefix=""):  # plugin discovery lists top-level modules: hide them too
    for info in _iter_modules(path, prefix):
        if path is not None or _NotInstalled.find_spec(info.name) is not None:
            yield info
pkgutil.iter_modules = _listed
for _name in [m for m in sys.modules if m.partition(".")[0] == "prunesim"]:
    del sys.modules[_name]
"""


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names) -> set[str]:
    """The distributions ``names`` install, their own requirements included (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if key(name) in seen:
            continue
        seen.add(key(name))
        for spec in md.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def modules_of(distributions: set[str]) -> set[str]:
    """Top-level modules that the installed ``distributions`` provide."""
    return {
        module
        for module, dists in md.packages_distributions().items()
        if any(key(d) in distributions for d in dists)
    }


def run_with_only(modules: set[str], code: str, args=(), **kwargs) -> subprocess.CompletedProcess:
    """``python -c code *args`` where only the stdlib and ``modules`` can be imported."""
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + code, ",".join(sorted(modules)), *args],
        capture_output=True,
        text=True,
        **kwargs,
    )
