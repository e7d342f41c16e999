"""Tests for job code identities: import closures and their digests (prunesim.code_identity)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prunesim.code_identity import code_digest, import_closure, package_dir

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"

PACKAGE = {
    "__init__.py": "",
    "a.py": "from psim import b\nfrom psim.sub import helper\n",
    "b.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from psim import typing_only\n"
        "def run():\n    import psim.lazy\n"
    ),
    "lazy.py": "X = 1\n",
    "typing_only.py": "T = 1\n",
    "unrelated.py": "U = 1\n",
    "sub/__init__.py": "",
    "sub/helper.py": "from . import sibling\nfrom ..b import run\n",
    "sub/sibling.py": "S = 1\n",
}


@pytest.fixture
def package(tmp_path) -> Path:
    root = tmp_path / "psim"
    for rel, text in PACKAGE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "job.py").write_text("from psim.a import something\n")
    return root


def _names(files, root: Path) -> set[str]:
    return {f.relative_to(root.parent).as_posix() for f in files}


def test_closure_follows_imports_lazy_ones_relative_ones_and_parent_packages(package):
    files = import_closure(package.parent / "job.py", root=package)
    assert files[0].name == "job.py"
    assert _names(files[1:], package) == {
        "psim/__init__.py",
        "psim/a.py",
        "psim/b.py",
        "psim/lazy.py",  # imported inside a function: runs when the job calls it
        "psim/sub/__init__.py",
        "psim/sub/helper.py",
        "psim/sub/sibling.py",
    }  # neither unrelated.py nor the TYPE_CHECKING-only import


def test_digest_changes_with_code_in_the_closure_and_only_with_it(package):
    job = package.parent / "job.py"
    before = code_digest(job, root=package)
    (package / "unrelated.py").write_text("U = 2\n")
    (package / "typing_only.py").write_text("T = 2\n")
    assert code_digest(job, root=package) == before
    (package / "lazy.py").write_text("X = 2\n")
    changed = code_digest(job, root=package)
    assert changed != before
    (package / "lazy.py").write_text("X = 1\n")
    assert code_digest(job, root=package) == before  # content, not file times


def test_digest_is_the_same_wherever_the_package_and_script_lie(package, tmp_path):
    job = package.parent / "job.py"
    elsewhere = tmp_path / "copy"
    shutil.copytree(package, elsewhere / "psim")
    shutil.copy2(job, elsewhere / "job.py")
    assert code_digest(elsewhere / "job.py", root=elsewhere / "psim") == code_digest(
        job, root=package
    )


def test_a_module_named_as_a_root_adds_its_closure(package):
    job = package.parent / "job.py"
    (package / "extra.py").write_text("import psim.unrelated\n")
    assert code_digest(job, "psim.extra", root=package) != code_digest(job, root=package)
    assert "psim/unrelated.py" in _names(import_closure(job, "psim.extra", root=package), package)


def test_a_root_that_is_neither_a_script_nor_a_module_is_refused(package):
    with pytest.raises(ValueError, match="psim.missing"):
        code_digest("psim.missing", root=package)


def _closure(*roots: str | Path) -> set[str]:
    root = package_dir()
    return {
        ".".join(f.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        for f in import_closure(*roots, root=root)
        if f.is_relative_to(root)
    }


def test_dense_training_imports_neither_the_metrics_nor_any_pruning_method():
    closure = _closure(SCRIPTS / "train_dense.py")
    assert "prunesim.training" in closure and "prunesim.pruning.masks" in closure
    assert not {m for m in closure if m.startswith("prunesim.metrics")}
    assert not closure & {
        "prunesim.pruning.epruner",
        "prunesim.pruning.layers",
        "prunesim.pruning.magnitude",
        "prunesim.pruning.random",
        "prunesim.methods",
    }


def test_each_method_round_covers_its_own_method_only():
    prune = SCRIPTS / "prune.py"
    cka = _closure(prune, "prunesim.jobs.cka_layers")
    assert "prunesim.metrics" in cka and "prunesim.pruning.layers" in cka  # its CKA criterion
    assert "prunesim.pruning.epruner" not in cka
    epruner = _closure(prune, "prunesim.jobs.epruner")
    assert "prunesim.pruning.epruner" in epruner
    assert not epruner & {"prunesim.metrics", "prunesim.pruning.layers", "prunesim.methods"}


def test_comparison_covers_the_stores_it_reads_and_extraction_not_the_training_loop():
    assert {"prunesim.activations", "prunesim.metrics.factors"} <= _closure(SCRIPTS / "compare.py")
    assert "prunesim.training" not in _closure(SCRIPTS / "extract_activations.py")
