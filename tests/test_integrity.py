"""The pre-run check of files (prunesim.integrity): one message per damaged file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from prunesim.checkpoint import save_checkpoint
from prunesim.integrity import CHECKERS, check_files
from prunesim.io import write_json
from prunesim.models import build_model

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_file_kind_the_jobs_read_has_a_checker():
    assert set(CHECKERS) == {
        "model.pt",
        "rewind.pt",
        "mask.pt",
        "data.npz",
        "summary.json",
        "activations.zarr",
        "similarity.nc",
        "aggregate.nc",
    }


def test_check_files_reports_each_damaged_file_once_and_skips_others(tmp_path):
    good = tmp_path / "good" / "summary.json"
    write_json(good, {"a": 1})
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    bad.write_text("{")
    data = tmp_path / "data.npz"
    data.write_bytes(b"PK\x03\x04 truncated")
    other = tmp_path / "notes.txt"
    other.write_text("not checked")
    problems = check_files([good, bad, data, other, tmp_path / "absent" / "model.pt"])
    assert len(problems) == 2
    assert "bad/summary.json: not valid JSON" in problems[0]
    assert "prepared data" in problems[1] and "data.npz" in problems[1]


def test_checkpoint_expectations_are_applied(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(build_model("lenet5", 1, 10, 28), path, {"seed": 0, "method": "dense"})
    assert check_files([path], lambda p: {"expect": {"seed": 0}, "arch": "lenet5"}) == []
    problems = check_files([path], lambda p: {"expect": {"seed": 2}})
    assert problems == [
        f"checkpoint {str(path)!r} is of another model: seed 0 where 2 was expected"
    ]
    assert torch.load(path, weights_only=True)["format"] == "prunesim.checkpoint/2"


def test_a_damaged_rewind_point_is_reported(tmp_path):
    rewind = tmp_path / "results" / "e" / "seed0" / "dense" / "rewind.pt"
    rewind.parent.mkdir(parents=True)
    rewind.write_bytes(b"not a checkpoint")
    problems = check_files([rewind])
    assert len(problems) == 1 and "rewind.pt" in problems[0]


CHECK_WITHOUT_LIBRARIES = """
import json
sys.path.insert(0, sys.argv[1])
from prunesim.job_python import missing
from prunesim.integrity import CHECKER_LIBRARIES, check_files_somewhere
assert "torch" in missing(CHECKER_LIBRARIES)
paths, expected = json.loads(sys.argv[2]), json.loads(sys.argv[3])
try:
    print(json.dumps(check_files_somewhere(paths, lambda p: expected, sys.argv[4:])))
except RuntimeError as err:
    print(json.dumps(str(err)))
"""


def test_without_the_libraries_here_the_check_runs_in_the_jobs_python(tmp_path):
    """The conda route: Snakemake's Python has no torch; the jobs' Python checks the files,
    with the same messages as a check made here."""
    from not_installed import run_with_only

    model = tmp_path / "model.pt"
    save_checkpoint(build_model("lenet5", 1, 10, 28), model, {"seed": 0, "method": "dense"})
    bad = tmp_path / "bad" / "summary.json"
    bad.parent.mkdir()
    bad.write_text("{")
    data = tmp_path / "data.npz"
    data.write_bytes(b"PK\x03\x04 truncated")
    paths = [str(model), str(bad), str(data)]
    expected = {"expect": {"seed": 2}}
    here = check_files(paths, lambda p: expected)
    assert len(here) == 3

    def check(*pythons):
        done = run_with_only(
            {"prunesim"},
            CHECK_WITHOUT_LIBRARIES,
            [str(SRC), json.dumps(paths), json.dumps(expected), *pythons],
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    assert check(sys.executable) == here
    refused = check()
    assert "needs ['numpy', 'torch', 'zarr', 'netCDF4', 'xarray']" in refused
    assert "--software-deployment-method conda" in refused
