"""prunesim as the Snakemake workflow catalog and other workflows see it: workflow/Snakefile,
use as a Snakemake module (the README's host Snakefile, run for real), the library that jobs
import, .snakemake-workflow-catalog.yml, and the Snakemake version the Snakefile asks for."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from readme import readme_block
from smoke_workflow import CONFIG, ROOT, copy_workflow, planned_jobs, snakemake

from prunesim.metrics import REGISTRY

# The host's own experiment: the smallest run that makes real comparisons (one seed, one
# epoch, one IMP round, two metrics, two views, a few calibration draws).
HOST_EXPERIMENT = "tiny"
HOST_CONFIG = {
    "device": "cpu",
    "experiments": {
        HOST_EXPERIMENT: {
            "dataset": {
                "name": "synthetic",
                "probe_size": 64,
                "synthetic": {
                    "image_size": 28,
                    "channels": 1,
                    "num_classes": 10,
                    "train_size": 256,
                    "test_size": 64,
                },
            },
            "model": "lenet5",
            "seeds": [0],
            "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
            "pruning": {"methods": ["imp"], "rounds": 1, "rate": 0.5},
            "activations": {"batch_size": 64},
            "similarity": {
                "metrics": ["cka_linear", "cca_mean"],
                "views": ["flatten", "gap"],
                "permutations": 2,
                "bootstrap": 2,
            },
        }
    },
}
COMPARISONS = [
    f"results/{HOST_EXPERIMENT}/seed0/dense/similarity.nc",  # the dense network and itself
    f"results/{HOST_EXPERIMENT}/seed0/imp/round1/similarity.nc",  # IMP's round vs dense
]
LAYERS = ["relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "fc3"]
PLACEHOLDER = "/path/to/prunesim"  # the README's path to the checkout


# --- helpers ----------------------------------------------------------------------------------


def planned_job_list(workdir: Path, *args: str) -> list[str]:
    """Every job a dry run plans, as the text Snakemake prints for it (rule, input, output,
    log, benchmark, wildcards, resources; not its id, reason or time), sorted."""
    proc = snakemake(workdir, "--dry-run", *args)
    jobs, current = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        if re.match(r"^(local)?rule \w+:$", line):
            current = [line]
            jobs.append(current)
        elif current is not None and line.startswith("    "):
            if not line.strip().startswith(("jobid:", "reason:")):
                current.append(line.strip())
        else:
            current = None
    return sorted("\n".join(job) for job in jobs)


def readme_host_snakefile() -> str:
    """The host Snakefile of the README's section on module use."""
    block = readme_block("module-host")
    assert PLACEHOLDER in block
    return block


def this_host() -> str:
    return socket.gethostname().replace("-", "_")  # as prunesim.io names its temporaries


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- (a) workflow/Snakefile runs the same workflow -----------------------------------------------


@pytest.mark.parametrize(
    "config_args",
    [("--configfile", CONFIG), ()],
    ids=["smoke", "embedded-default"],
)
@pytest.mark.workflow
@pytest.mark.slow
def test_workflow_snakefile_plans_the_jobs_of_the_root_snakefile(config_args):
    root = planned_job_list(ROOT, "--forceall", *config_args)
    entered = planned_job_list(ROOT, "--forceall", "-s", "workflow/Snakefile", *config_args)
    assert root == entered
    # the default target (`all`) and every stage up to the figures
    rules = {job.split("\n", 1)[0].split()[-1].rstrip(":") for job in root}
    assert {"prepare_data", "train_dense", "prune", "compare", "key_numbers", "all"} <= rules


# --- (b) a host workflow that uses prunesim as a module ------------------------------------------


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A host workflow in its own folder, the README's Snakefile naming this checkout's
    workflow/Snakefile, run through two comparisons; a temporary of a killed job lies in its
    results/ beforehand (prunesim's onstart removes it)."""
    workdir = tmp_path_factory.mktemp("host")
    snakefile = readme_host_snakefile().replace(PLACEHOLDER, str(ROOT))
    (workdir / "Snakefile").write_text(snakefile)
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(HOST_CONFIG))
    stale = workdir / "results" / HOST_EXPERIMENT / f".unrelated.tmp-{this_host()}-{dead_pid()}-1"
    stale.parent.mkdir(parents=True)
    stale.write_text("left by a killed job")
    return workdir, snakemake(workdir, *COMPARISONS)


@pytest.mark.workflow
@pytest.mark.slow
def test_module_run_writes_real_comparisons_in_the_host_directory(host):
    workdir, _ = host
    assert not (ROOT / "results" / HOST_EXPERIMENT).exists()
    for name in ("data.npz", "seed0/dense/model.pt", "seed0/imp/round1/model.pt"):
        assert (workdir / "results" / HOST_EXPERIMENT / name).is_file(), name
    dense, pruned = (workdir / path for path in COMPARISONS)
    with xr.open_dataset(dense) as ds:
        assert ds.similarity.dims == ("metric", "view", "layer_a", "layer_b")
        assert sorted(ds.metric.values) == ["cca_mean", "cka_linear"]
        assert list(ds.view.values) == ["flatten", "gap"]
        assert list(ds.layer_a.values) == LAYERS == list(ds.layer_b.values)
        assert ds.attrs["n_samples"] == 64
        assert ds.attrs["store_b"] == f"results/{HOST_EXPERIMENT}/seed0/dense/activations.zarr"
        assert all(ds.nan_reason.values[~np.isfinite(ds.similarity.values)]), "NaN, no reason"
        for metric in ds.metric.values:
            # a network and itself: each defined diagonal value is the metric's perfect score
            diagonal = np.diagonal(ds.similarity.sel(metric=metric).values, axis1=-2, axis2=-1)
            defined = diagonal[np.isfinite(diagonal)]
            assert defined.size and np.allclose(defined, REGISTRY[metric].perfect), metric
        assert np.isfinite(ds.similarity.sel(metric="cka_linear").values).all()
    with xr.open_dataset(pruned) as ds:
        assert ds.attrs["store_b"] == (
            f"results/{HOST_EXPERIMENT}/seed0/imp/round1/activations.zarr"
        )
        cka = ds.similarity.sel(metric="cka_linear").values
        assert np.isfinite(cka).all() and (cka >= 0).all() and (cka <= 1 + 1e-9).all()
        # half the weights gone: some layer is no longer its dense self
        assert np.diagonal(cka, axis1=-2, axis2=-1).min() < 1 - 1e-6
        assert all(ds.nan_reason.values[~np.isfinite(ds.similarity.values)])


@pytest.mark.workflow
@pytest.mark.slow
def test_module_host_runs_prunesims_onstart(host):
    workdir, proc = host
    assert not list((workdir / "results" / HOST_EXPERIMENT).glob(".unrelated.tmp-*"))
    assert "left by a job that was killed" in proc.stderr


@pytest.mark.workflow
@pytest.mark.slow
def test_module_and_direct_runs_are_the_same_jobs_with_the_same_params(host):
    """After the module run, the root Snakefile and workflow/Snakefile, run in the host's folder
    (reading its config/config.yaml), plan nothing: the same files, params and code digests.
    The host's default target is prunesim's `all`: the rest of the experiment."""
    workdir, _ = host
    for snakefile in (ROOT / "Snakefile", ROOT / "workflow" / "Snakefile"):
        assert planned_jobs(workdir, "-s", str(snakefile), *COMPARISONS) == {}, snakefile
    remaining = planned_jobs(workdir)
    assert remaining["all"] == 1 and remaining["aggregate"] == 1 and "key_numbers" in remaining
    assert not {"prepare_data", "train_dense", "prune", "extract_activations", "compare"} & set(
        remaining
    )


@pytest.mark.workflow
@pytest.mark.slow
def test_a_module_without_config_is_refused(tmp_path):
    snakefile = readme_host_snakefile().replace(PLACEHOLDER, str(ROOT))
    without = re.sub(r"\n    config:\n        config\n", "\n", snakefile)
    assert without != snakefile
    (tmp_path / "Snakefile").write_text(without)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(HOST_CONFIG))
    proc = snakemake(tmp_path, "--dry-run", check=False)
    assert proc.returncode != 0
    assert "declare the module with `config: config`" in proc.stdout + proc.stderr


# --- the library a job imports ------------------------------------------------------------------


@pytest.mark.workflow
@pytest.mark.slow
def test_jobs_import_the_checkouts_src_where_prunesim_is_not_installed(tmp_path):
    """A copy of the checkout (workflow and src/), with this checkout's prunesim hidden from
    every Python (a sitecustomize on PYTHONPATH, which the jobs inherit): the Snakefile and a
    job both import the copy's src/, the job through the sys.path Snakemake hands it."""
    checkout = copy_workflow(tmp_path / "checkout")
    shutil.copytree(
        ROOT / "src" / "prunesim",
        checkout / "src" / "prunesim",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    init = checkout / "src" / "prunesim" / "__init__.py"
    init.write_text(
        init.read_text()
        + "\nimport os as _os\n"
        + "if _os.environ.get('PRUNESIM_IMPORT_LOG'):\n"
        + "    with open(_os.environ['PRUNESIM_IMPORT_LOG'], 'a') as _log:\n"
        + "        _log.write(f'{_os.getpid()} {__file__}\\n')\n"
    )
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"_hidden = os.path.realpath({str(ROOT / 'src')!r})\n"
        "sys.path[:] = [p for p in sys.path if os.path.realpath(p) != _hidden]\n"
        "sys.meta_path[:] = [f for f in sys.meta_path\n"
        "                    if not ('__editable__' in getattr(f, '__module__', '')\n"
        "                            and 'prunesim' in getattr(f, '__module__', ''))]\n"
    )
    log = tmp_path / "imports.log"
    env = {"PYTHONPATH": str(hide), "PRUNESIM_IMPORT_LOG": str(log)}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('prunesim'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    if probe.stdout.strip() != "None":
        pytest.skip(f"prunesim is installed where a sitecustomize cannot hide it: {probe.stdout}")

    snakemake(checkout, "results/smoke/data.npz", "--configfile", CONFIG, env=env)

    imports = [line.split(" ", 1) for line in log.read_text().splitlines()]
    assert {file for _, file in imports} == {str(checkout / "src" / "prunesim" / "__init__.py")}
    # snakemake itself and the prepare_data job
    assert len({pid for pid, _ in imports}) >= 2
    assert (checkout / "results" / "smoke" / "data.npz").is_file()


# --- (c) the catalog's settings -------------------------------------------------------------------

CATALOG = ROOT / ".snakemake-workflow-catalog.yml"
DEPLOYMENTS = {"conda", "apptainer", "apptainer+conda", "singularity", "singularity+conda"}


def workflow_sources() -> dict[Path, str]:
    files = [ROOT / "Snakefile", ROOT / "workflow" / "Snakefile", *sorted(ROOT.glob("rules/*.smk"))]
    return {path: path.read_text() for path in files}


def rule_blocks(text: str) -> list[str]:
    """Each rule of a Snakefile: its header and indented body."""
    return re.findall(r"^(?:rule|checkpoint) \w+:\n(?:(?:    .*)?\n)*", text, re.M)


def test_catalog_settings_name_only_paths_that_exist():
    text = CATALOG.read_text()
    without_urls = re.sub(r"\w+://\S+", "", text)
    paths = set(re.findall(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]*)", without_urls))
    assert {"workflow/Snakefile", "config/README.md", "envs/prunesim.yaml"} <= {
        p.rstrip("/") for p in paths
    }
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{CATALOG.name} names paths that do not exist: {missing}"


def test_catalog_settings_follow_the_catalog_format_and_hold():
    settings = yaml.safe_load(CATALOG.read_text())
    assert set(settings) == {"usage"}
    usage = settings["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment"}
    stack = usage["software-stack-deployment"]
    assert set(stack) <= DEPLOYMENTS | {"report"}
    assert all(isinstance(value, bool) for value in stack.values())
    assert any(stack.get(method) for method in DEPLOYMENTS), "no software deployment"
    # the catalog's standardized usage: workflow/Snakefile and config/README.md
    assert (ROOT / "workflow" / "Snakefile").is_file() and (ROOT / "config" / "README.md").is_file()

    sources = workflow_sources()
    rules = [(path, block) for path, text in sources.items() for block in rule_blocks(text)]
    runs_code = [
        (path, block)
        for path, block in rules
        if re.search(r"^    (script|shell|run|notebook|wrapper):", block, re.M)
    ]
    assert len(runs_code) >= 14  # prepare_data ... key_numbers
    if stack.get("conda"):
        # every rule that runs code names the one env file (relative to its rule file)
        envs = [
            (path, re.search(r'^    conda:\n        "([^"]+)"$', block, re.M))
            for path, block in runs_code
        ]
        assert all(env for _, env in envs), "a rule that runs code without a conda env"
        assert {(path.parent / env[1]).resolve() for path, env in envs} == {
            (ROOT / "envs" / "prunesim.yaml").resolve()
        }
        assert (ROOT / "envs" / "prunesim.yaml").is_file()
    uses_containers = any(
        re.search(r"^\s*container(ized)?:", text, re.M) for text in sources.values()
    )
    for method in ("apptainer", "apptainer+conda", "singularity", "singularity+conda"):
        assert bool(stack.get(method)) == uses_containers, method
    if stack.get("report"):
        # the report's description and the figures it shows
        report = re.search(r'^report: "([^"]+)"', sources[ROOT / "Snakefile"], re.M)
        assert report and (ROOT / report[1]).is_file()
        assert any("report(" in block for _, block in runs_code)


# --- (d) the Snakemake version ------------------------------------------------------------------


def test_min_version_is_pyprojects_snakemake_lower_bound():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # wherever pyproject lists snakemake: the dependencies or an extra
    lists = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
    requirements = [Requirement(d) for deps in lists for d in deps]
    bounds = {
        Version(spec.version)
        for req in requirements
        if req.name == "snakemake"
        for spec in req.specifier
        if spec.operator in (">=", "~=", "==")
    }
    assert len(bounds) == 1, f"pyproject.toml: no single lower bound of snakemake: {bounds}"
    calls = re.findall(r'^min_version\("([^"]+)"\)$', (ROOT / "Snakefile").read_text(), re.M)
    assert len(calls) == 1, "the Snakefile calls min_version once, at top level"
    assert Version(calls[0]) == bounds.pop()
