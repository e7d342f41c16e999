"""Tests for atomic writes, JSON and netCDF helpers, and job failures (prunesim.io)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from prunesim.io import (
    InputFileError,
    atomic_path,
    progress,
    read_json,
    read_netcdf,
    remove_stale_temporaries,
    write_json,
    write_netcdf,
)


class Boom(Exception):
    pass


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- atomic_path ------------------------------------------------------------------------------


def test_atomic_path_leaves_existing_file_untouched_and_no_temp_when_body_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise Boom
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["out.txt"]


def test_atomic_path_creates_nothing_when_body_raises(tmp_path):
    target = tmp_path / "new" / "store.zarr"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "chunk").write_bytes(b"\0")
        raise Boom
    assert not target.exists()
    assert _listing(target.parent) == []


def test_atomic_path_keeps_nothing_visible_at_target_until_the_body_ends(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
        assert tmp != target and tmp.parent == target.parent
        assert not target.exists()
    assert target.read_text() == "new"
    assert _listing(tmp_path) == ["out.txt"]


def test_atomic_path_replaces_an_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _listing(tmp_path) == ["out.txt"]


def test_atomic_path_replaces_an_existing_directory_entirely(tmp_path):
    target = tmp_path / "store.zarr"
    (target / "stale").mkdir(parents=True)
    (target / "stale" / "chunk").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "fresh").write_text("new")
    assert _listing(target) == ["fresh"]
    assert _listing(tmp_path) == ["store.zarr"]


def test_atomic_path_replaces_a_file_with_a_directory(tmp_path):
    target = tmp_path / "thing"
    target.write_text("a file")
    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert target.is_dir()


def test_atomic_path_raises_and_keeps_target_when_nothing_was_written(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(target):
        pass
    assert target.read_text() == "old"


def test_atomic_path_clears_a_stale_temp_left_by_an_earlier_crash(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("first")
        stale = tmp  # the temporary name this process uses for ``target``
    stale.mkdir()  # as if a killed job had left its temporary folder
    (stale / "junk").write_text("x")
    with atomic_path(target) as tmp:
        assert not tmp.exists()
        tmp.write_text("fresh")
    assert target.read_text() == "fresh"
    assert _listing(tmp_path) == ["out.txt"]


def test_write_json_read_json_round_trip_with_sorted_keys(tmp_path):
    data = {"b": [1, 2.5, None], "a": {"z": True, "y": "text"}}
    path = tmp_path / "sub" / "summary.json"
    write_json(path, data)
    assert read_json(path) == data
    text = path.read_text()
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")


def test_atomic_path_removes_temporaries_of_the_same_target_left_by_killed_jobs(tmp_path):
    target = tmp_path / "store.zarr"
    killed = tmp_path / ".store.zarr.tmp-othernode-4242-1"
    killed.mkdir()
    other_target = tmp_path / ".other.zarr.tmp-othernode-4242-1"
    other_target.mkdir()
    with atomic_path(target) as tmp:
        tmp.mkdir()
    assert _listing(tmp_path) == [".other.zarr.tmp-othernode-4242-1", "store.zarr"]


def test_stale_temporaries_of_dead_local_jobs_are_removed_and_others_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace("-", "_")
    folder = tmp_path / "exp" / "seed0"
    folder.mkdir(parents=True)
    stale = [folder / f".model.pt.tmp-{host}-{dead.pid}-1", folder / f".x.old-{host}-{dead.pid}-7"]
    alive = folder / f".mask.pt.tmp-{host}-{os.getpid()}-1"
    elsewhere = folder / f".summary.json.tmp-othernode-{dead.pid}-1"
    inside_store = folder / "activations.zarr" / f".zarr.json.tmp-{host}-{dead.pid}-1"
    inside_store.parent.mkdir()
    for path in (*stale, alive, elsewhere, inside_store):
        path.write_text("partial")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in (alive, elsewhere, inside_store))


def test_read_json_names_the_file_and_line_of_a_syntax_error(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(InputFileError, match=r"summary.json: not valid JSON \(.* at line 4"):
        read_json(path)
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputFileError, match="summary.json: not a text"):
        read_json(path)
    with pytest.raises(InputFileError, match="absent.json: file does not exist"):
        read_json(tmp_path / "absent.json")


def test_netcdf_round_trip_and_a_flipped_byte_is_refused_naming_the_file(tmp_path):
    ds = xr.Dataset({"v": (("a", "b"), np.arange(1200.0).reshape(30, 40))})
    path = tmp_path / "similarity.nc"
    write_netcdf(ds, path)
    xr.testing.assert_identical(read_netcdf(path), ds)
    data = bytearray(path.read_bytes())
    offset = bytes(data).find(np.arange(1200.0)[600:602].tobytes())
    data[offset + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match="similarity file '.*similarity.nc' cannot be read"):
        read_netcdf(path)
    with pytest.raises(InputFileError, match="does not exist"):
        read_netcdf(tmp_path / "absent.nc")


def test_progress_logs_a_steady_pulse_and_a_last_line(caplog):
    log = logging.getLogger("prunesim.test.progress")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert list(progress(range(3), 3, "steps", log, every_s=0.0)) == [0, 1, 2]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # one per step at every_s=0, and the last
    assert lines[0].startswith("steps: 1/3 (33%) in ") and lines[-1].startswith("steps: 3/3 (100%)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=log.name):
        list(progress(range(3), 3, "steps", log, every_s=3600.0, final=False))
        list(progress(iter([1, 2]), None, "items", log, every_s=3600.0))
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["items: 2 done"]
