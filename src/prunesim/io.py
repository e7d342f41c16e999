"""Small I/O helpers shared by every stage: atomic writes, JSON, code digests.

Every output is written to a temporary sibling and renamed into place, so an interrupted job
never leaves a half-written file or store where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class InputFileError(RuntimeError):
    """A file or store that a job reads is missing, incomplete, damaged or not what the job
    expects. The message is one line that names the path and what is wrong: the job stops
    rather than turn a damaged input into numbers."""


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it onto ``target`` only on success.

    Works for files and directories (zarr stores). On any exception the temporary path is
    removed and ``target`` is left exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary path {tmp}")
        _replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` onto ``target``. A file replaces a file atomically; otherwise (a directory
    is involved) the old target is first moved aside and deleted only once ``new`` is in."""
    if not os.path.lexists(target) or (new.is_file() and not target.is_dir()):
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{threading.get_ident()}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parsed JSON of ``path``; an :class:`InputFileError` naming the file and the line of a
    syntax error, or saying that it is missing or not text."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputFileError(f"{path}: file does not exist") from None
    except json.JSONDecodeError as err:
        raise InputFileError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
            "the file is damaged: delete it and rerun the job that writes it"
        ) from None
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not a text (JSON) file; it is damaged") from None


def code_digest(*modules: str) -> str:
    """SHA-256 (first 16 hex digits) of the source of the named prunesim modules.

    A package name covers every ``.py`` file below it. Rules pass this digest as a param, so
    editing the metrics code reruns the similarity jobs and not the training.
    """
    sha = hashlib.sha256()
    for module in sorted(set(modules)):
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ValueError(f"cannot digest module {module!r}: it is not importable")
        origin = Path(spec.origin)
        root = origin.parent
        files = sorted(root.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for file in files:
            sha.update(f"{module}:{file.relative_to(root)}\n".encode())
            sha.update(file.read_bytes())
    return sha.hexdigest()[:16]


def log_to(path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send this process's log records to ``path`` (a rule's log file), or stderr if ``None``."""
    handler = logging.FileHandler(path, mode="w") if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
