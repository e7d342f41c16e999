"""What each install route promises: the metrics run with only the library's own
dependencies; the `workflow` extra covers every import of the workflow's code; the conda
environment pins every declared dependency within pyproject's bounds."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from not_installed import closure, key, modules_of, run_with_only
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SCHEMA = ROOT / "config" / "config.schema.yaml"


def _requirements(group: str | None) -> list[Requirement]:
    project = PYPROJECT["project"]
    specs = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(s) for s in specs if not s.startswith("prunesim")]


METRICS_ONLY = """
try:
    import torch
    raise SystemExit("torch is still importable")
except ImportError:
    pass

import numpy as np
from prunesim.comparison import compare_arrays
from prunesim.metrics import METRICS, calibrated, similarity

rng = np.random.default_rng(0)
conv = rng.standard_normal((40, 3, 4, 4))
other = conv + 0.3 * rng.standard_normal(conv.shape)
for metric in METRICS:
    value = similarity(conv, other, metric, view="gap")
    assert value == value, (metric, value.reason)
assert calibrated(conv, other, "cka_linear", permutations=3, bootstrap=3, view="channels")
ds = compare_arrays({"conv": conv, "fc": conv[:, 0, 0]}, {"conv": other}, permutations=2, bootstrap=2)
assert set(ds.view.values) == {"flatten", "gap", "channels"} and "nan_reason" in ds
heavy = sorted({"torch", "zarr", "snakemake", "matplotlib", "netCDF4", "yaml"} & set(sys.modules))
print("imported:", heavy)
"""


def test_metrics_and_compare_arrays_run_with_only_the_librarys_own_dependencies():
    allowed = modules_of(closure(r.name for r in _requirements(None))) | {"prunesim"}
    assert "torch" not in allowed and "zarr" not in allowed  # the check can fail
    done = run_with_only(allowed, METRICS_ONLY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "imported: []"


def _third_party_imports(paths) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "prunesim"}


def test_the_library_and_workflow_import_only_declared_dependencies():
    code = [*ROOT.glob("src/prunesim/**/*.py"), *ROOT.glob("workflow/scripts/*.py")]
    declared = {key(r.name) for r in _requirements(None) + _requirements("workflow")}
    providers = md.packages_distributions()
    undeclared = {
        module: providers.get(module)
        for module in _third_party_imports(code)
        if not any(key(d) in declared for d in providers.get(module, []))
    }
    assert not undeclared, f"imported but not declared in pyproject: {undeclared}"


def _conda_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "envs/prunesim.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip:
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one, an exact pin
        assert spec.operator == "==", f"{line}: expected an exact pin name==version"
        pins[key(req.name)] = spec.version
    return pins


def test_conda_environment_pins_every_declared_dependency_within_pyprojects_bounds():
    pins = _conda_pins()
    wanted = _requirements(None) + _requirements("workflow")
    assert set(pins) == {key(r.name) for r in wanted}
    for req in wanted:
        assert req.specifier.contains(pins[key(req.name)]), (req, pins[key(req.name)])
    env = yaml.safe_load((ROOT / "envs/prunesim.yaml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    version = python.partition("=")[2]
    assert Requirement(f"python>={version}").specifier  # a version, not a range
    minimum = PYPROJECT["project"]["requires-python"]
    assert Requirement(f"python{minimum}").specifier.contains(f"{version}.0")


def test_ci_installs_the_conda_environments_pins():
    """.ci/run turns the pins into pip constraints with sed; what it extracts must be every
    pin, so that CI tests the versions the conda environment promises."""
    script = (ROOT / ".ci/run").read_text()
    (expression,) = re.findall(r"sed -n '([^']+)' envs/prunesim.yaml", script)
    done = subprocess.run(
        ["sed", "-n", expression, str(ROOT / "envs/prunesim.yaml")],
        capture_output=True,
        text=True,
        check=True,
    )
    extracted = dict(line.split("==") for line in done.stdout.split())
    assert {key(k): v for k, v in extracted.items()} == _conda_pins()


@pytest.mark.skipif(
    not os.environ.get("PRUNESIM_PINNED"),
    reason="only where the install used the pins as constraints (.ci/run sets PRUNESIM_PINNED)",
)
def test_the_test_environment_has_the_pinned_versions():
    """CI installs with the pins as constraints: the versions here are the pinned ones (a
    local build label such as torch's +cpu aside)."""
    pins = _conda_pins()
    installed = {name: md.version(name).partition("+")[0] for name in pins}
    assert installed == pins


SNAKEMAKE_CLI = """
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


@pytest.mark.workflow
def test_snakemake_alone_validates_plans_and_lints_the_workflow(tmp_path):
    """The conda route's main process has Snakemake and nothing else: the Snakefile, its
    config validation and code digests must need no more (prunesim itself from src/)."""
    from smoke_workflow import CONFIG, copy_workflow

    workdir = copy_workflow(tmp_path / "wf")
    shutil.copytree(ROOT / "src", workdir / "src")
    allowed = modules_of(closure(["snakemake"])) | {"prunesim"}
    assert not {"numpy", "torch", "zarr", "xarray"} & allowed

    def snakemake(*args):
        return run_with_only(allowed, SNAKEMAKE_CLI, ["--cores", "1", *args], cwd=workdir)

    for config in ([], ["--configfile", CONFIG]):
        done = snakemake("--dry-run", *config)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "train_dense" in done.stdout + done.stderr
    done = snakemake("--lint")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    bad = workdir / "config" / "bad.yaml"
    bad.write_text((workdir / CONFIG).read_text().replace("rate: 0.5", "rate: 1.5"))
    done = snakemake("--dry-run", "--configfile", "config/bad.yaml")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "pruning.rate: 1.5 is greater than or equal to the maximum of 1" in said


ARCHITECTURES_ELSEWHERE = """
import json
sys.path.insert(0, sys.argv[1])
from prunesim.config import (
    ConfigError, check_architectures_somewhere, load_config_file, load_schema, validate
)
config = load_config_file(sys.argv[2])
config["experiments"]["smoke"]["pruning"]["methods"] = ["cka_layers"]
validate(config, load_schema(sys.argv[3]), architectures=False)  # needs no torch
try:
    check_architectures_somewhere(config, sys.argv[4:])
    print(json.dumps("valid"))
except (ConfigError, RuntimeError) as err:
    print(json.dumps(f"{type(err).__name__}: {err}"))
"""


def test_without_torch_the_model_checks_run_in_the_jobs_python():
    allowed = modules_of(closure(["snakemake"])) | {"prunesim"}
    args = [str(ROOT / "src"), str(ROOT / "config/smoke.yaml"), str(SCHEMA)]

    def answer(*pythons):
        done = run_with_only(allowed, ARCHITECTURES_ELSEWHERE, [*args, *pythons])
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    assert answer(sys.executable) == (
        "ConfigError: config key experiments.smoke.pruning.methods: 'cka_layers' removes "
        "residual blocks, but 'lenet5' has none (expected a ResNet model, e.g. resnet20)"
    )
    refused = answer()
    assert refused.startswith("RuntimeError: checking that each model fits") and "torch" in refused


def test_the_readmes_array_example_runs_with_only_the_librarys_own_dependencies():
    from readme import readme_block

    allowed = modules_of(closure(r.name for r in _requirements(None))) | {"prunesim"}
    done = run_with_only(allowed, readme_block("api-arrays"))
    assert done.returncode == 0, done.stderr[-3000:]
    for said in ("conv", "fc", "cka_linear", "svcca", "null_mean", "ci_high"):
        assert said in done.stdout, said
