"""Small I/O helpers shared by every job: atomic writes, JSON, netCDF, job failures.

Every output is written to a temporary sibling and renamed into place, so an interrupted job
never leaves a half-written file or store where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class JobFailure(RuntimeError):
    """A foreseen way for a job to fail (a damaged input, diverged training, an absent GPU):
    the message is one line that says what is wrong and where. :func:`run_job` prints just
    that line and keeps the traceback in the job's log."""


class InputFileError(JobFailure):
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
    # One job writes one target, so any other temporary of it is a killed job's leftover.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        _remove(stale)
    tmp = target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary path {tmp}")
        _replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


_HOST = socket.gethostname().replace("-", "_")  # '-' separates the fields of the name
_TEMPORARY = re.compile(r"^\..+\.(?:tmp|old)-(?P<host>[^-]+)-(?P<pid>\d+)-\d+$")


def remove_stale_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries of jobs that were killed on this machine (their process is gone)
    below ``root``, and return them. Temporaries of other machines are left to the job that
    writes the same target next (see :func:`atomic_path`). Does not descend into stores."""
    removed = []
    for folder, subfolders, files in os.walk(root):
        for name in [*subfolders, *files]:
            match = _TEMPORARY.match(name)
            if match and match["host"] == _HOST and not _alive(int(match["pid"])):
                _remove(Path(folder) / name)
                removed.append(Path(folder) / name)
        subfolders[:] = [d for d in subfolders if not d.endswith(".zarr") and not d.startswith(".")]
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` onto ``target``. A file replaces a file atomically; otherwise (a directory
    is involved) the old target is first moved aside and deleted only once ``new`` is in."""
    if not os.path.lexists(target) or (new.is_file() and not target.is_dir()):
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{_HOST}-{os.getpid()}-{threading.get_ident()}")
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


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message, cut to ``limit`` characters: what a one-line
    failure message quotes of a library's error."""
    return (str(err).strip().splitlines() or [""])[0][:limit]


def write_netcdf(ds, path: str | os.PathLike[str]) -> None:
    """``ds`` as netCDF-4, atomically, with a Fletcher-32 checksum on every variable so that
    a damaged file fails to read instead of giving other numbers."""
    encoding = {name: {"fletcher32": True} for name in ds.variables if ds[name].ndim}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def read_netcdf(path: str | os.PathLike[str], what: str = "similarity file"):
    """The whole Dataset in ``path``, loaded; an :class:`InputFileError` naming the file if it
    is missing, not netCDF, or fails its checksums."""
    import xarray as xr

    if not Path(path).is_file():
        raise InputFileError(f"{what} {str(path)!r} does not exist")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except Exception as err:  # netCDF4/HDF5 raise OSError, RuntimeError, ValueError, ...
        raise InputFileError(
            f"{what} {str(path)!r} cannot be read ({type(err).__name__}: {first_line(err)}); it is "
            "truncated or damaged: delete it and rerun the job that writes it"
        ) from None


def log_to(path: str | os.PathLike[str] | None, level: int = logging.INFO) -> None:
    """Send this process's log records, warnings included, to ``path`` (a rule's log file),
    or stderr if ``None``."""
    if path:  # emptied once, then appended to: the job's own output (_output_into) goes there too
        Path(path).write_text("")
    handler = logging.FileHandler(path, mode="a") if path else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


PROGRESS_EVERY_S = 10.0  # a long job's log gains a line at least this often while it works


def progress(
    items: Iterable[T],
    total: int | None,
    what: str,
    logger: logging.Logger,
    every_s: float = PROGRESS_EVERY_S,
    final: bool = True,
) -> Iterator[T]:
    """``items``, logging ``what`` done so far (of ``total``), the elapsed time and an
    estimate of the rest whenever ``every_s`` seconds have passed, and once at the end (unless
    not ``final``: the caller logs its own summary): a steady pulse in a long job's log,
    whatever the size of each step."""
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            logger.info("%s", _progress_line(what, done, total, now - start))
    if final:
        logger.info("%s", _progress_line(what, done, total, time.monotonic() - start))


def _progress_line(what: str, done: int, total: int | None, elapsed: float) -> str:
    if not total:
        return f"{what}: {done} done in {elapsed:.1f} s"
    left = elapsed / done * (total - done) if done else math.nan
    return f"{what}: {done}/{total} ({100 * done / total:.0f}%) in {elapsed:.1f} s, about {left:.0f} s left"


def _snakemake_ancestor() -> int | None:
    """The pid of the nearest ancestor process that runs snakemake (Linux; else None)."""
    pid = os.getppid()
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if any(part.endswith((b"snakemake", b"snakemake/__main__.py")) for part in cmdline) or (
            b"-m" in cmdline and b"snakemake" in cmdline
        ):
            return pid
        pid = int(stat.rpartition(")")[2].split()[1])  # field 4, after the command name
    return None


def _stop_with(pid: int | None, log: logging.Logger, every: float = 5.0) -> None:
    """End this job when snakemake ``pid`` is gone (killed with -9, it cannot stop its jobs,
    which would otherwise run on, holding cores or a GPU, for outputs no one collects)."""
    if pid is None:
        return

    def watch() -> None:
        while _alive(pid):
            time.sleep(every)
        log.error("snakemake (pid %d) is gone: stopping this job", pid)
        logging.shutdown()
        os._exit(1)

    threading.Thread(target=watch, name="prunesim-watch-snakemake", daemon=True).start()


@contextlib.contextmanager
def _output_into(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """While the job runs, whatever it writes to stdout or stderr, at any level (print, a
    library's own warnings machinery, C code), goes to its log too: a healthy job is silent
    on the console."""
    if path is None:
        yield
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "a") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


WORK_LINE = "job work took"  # run_job's last log line, read by benchmarks/pipeline.py


def run_job(log_path: str | os.PathLike[str] | None, job, /, **kwargs) -> None:
    """Run one workflow job, ``job(**kwargs)``, logging to ``log_path``; its console output
    goes there too.

    A :class:`JobFailure` ends the process with exit status 1 after writing its traceback to
    the log and its one-line message to stderr (the console); any other exception is logged
    and raised as usual (a bug: its traceback is wanted everywhere)."""
    log_to(log_path)
    log = logging.getLogger("prunesim.job")
    _stop_with(_snakemake_ancestor(), log)
    started = time.perf_counter()
    try:
        with _output_into(log_path):
            job(**kwargs)
        # The job's own work, beside the whole process's wall time that Snakemake records:
        # their difference is the job's fixed cost (start-up, imports), which
        # benchmarks/pipeline.py reports per rule.
        log.info("%s %.3f s", WORK_LINE, time.perf_counter() - started)
    except JobFailure as err:
        log.error("job failed", exc_info=True)
        logging.shutdown()
        print(f"prunesim: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except BaseException:
        log.error("job failed", exc_info=True)
        raise
