"""prunesim: how do the layer representations of a CNN change as it is pruned?

Run the embedded default:  snakemake --cores all
Run another config:        snakemake --cores all --configfile config/smoke.yaml
"""

import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

# pyproject.toml's lower bound (snakemake>=9); tests/test_catalog.py keeps the two equal.
min_version("9.0")

# This checkout's library first on sys.path, found from this file's own folder: the checkout's
# root, whether the run starts here, at workflow/Snakefile or in another workflow that uses this
# one as a module. The Snakefile and the rules import it whether prunesim is installed or not;
# a Python script job gets this sys.path appended to its own (Snakemake's script preamble), so a
# job imports it too where its Python has no prunesim installed (or this checkout's, editable).
# A module fetched from a URL has no src/ on this machine: there, prunesim must be installed.
if isinstance(workflow.current_basedir, os.PathLike):
    SRC = os.path.join(workflow.current_basedir, "src")
    if os.path.isdir(os.path.join(SRC, "prunesim")) and sys.path[:1] != [SRC]:
        sys.path.insert(0, SRC)

from prunesim.config import (
    ARCHITECTURE_LIBRARIES,
    ConfigError,
    check_architectures_somewhere,
    check_device_visible,
    load_config_file,
    load_schema,
    validate,
)
from prunesim.job_python import missing
from prunesim.integrity import check_files_somewhere
from prunesim.io import remove_stale_temporaries
from prunesim.layout import RESULTS, STAGE_PATTERN

# Used as a module of another workflow (`module prunesim: ... config: config`), the config is
# the one the host passes, validated below like any other; no file is read here. A module
# declared without `config:` would start from an empty config: refused, with what to write.
# (The module's Snakefile is its modifier's base_snakefile; the main workflow's has none.)
if workflow.modifier.base_snakefile is not None:
    if not workflow.modifier.skip_configfile:
        raise WorkflowError(
            "prunesim used as a module takes its configuration from the host workflow: "
            "declare the module with `config: config`"
        )
# A --configfile replaces the embedded default rather than merging into it, so that a smoke
# or paper config never inherits the default experiment.
# (Snakemake reads a --configfile itself before this file runs; the embedded one is read
# here first so that a YAML error in it is reported with its line.)
elif not workflow.config_settings.configfiles:
    try:
        load_config_file("config/config.yaml")  # the path configfile: reads
    except ConfigError as err:
        raise WorkflowError(f"invalid configuration: {err}") from None

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


SCHEMA = load_schema(workflow.source_path("config/config.schema.yaml"))
# The checks that build models need torch: where Snakemake's own Python has none (the conda
# route), they run in the jobs' Python before the first job (onstart).
TORCH_HERE = not missing(ARCHITECTURE_LIBRARIES)
try:
    validate(config, SCHEMA, architectures=TORCH_HERE)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None


# Before the first job, and so before Snakemake removes any job's old outputs: a GPU that
# the jobs of a local run cannot see (a cluster run's jobs see their node's GPUs instead; a
# dry run runs nothing; without torch here the jobs' own check names it), the model checks
# left to the jobs' Python, and damaged files that the jobs would read.
onstart:
    jobs = list(workflow.dag.needrun_jobs())
    # where the checks run if Snakemake's Python lacks the libraries (the conda route)
    pythons = job_pythons(jobs)
    try:
        if workflow.local_exec and TORCH_HERE:
            check_device_visible(config["device"])
        if not TORCH_HERE:
            check_architectures_somewhere(config, pythons)
    except ConfigError as err:
        raise WorkflowError(f"invalid configuration: {err}") from None
    except RuntimeError as err:
        raise WorkflowError(str(err)) from None
    for path in remove_stale_temporaries(RESULTS):
        print(f"removed {path}, left by a job that was killed", file=sys.stderr)
    try:
        damaged = check_files_somewhere(
            files_read_not_rewritten(jobs),
            checkpoint_expectation,
            pythons,
        )
    except RuntimeError as err:
        raise WorkflowError(str(err)) from None
    if damaged:
        raise WorkflowError("\n".join(f"damaged input: {line}" for line in damaged))


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    seed="[0-9]+",
    seed_a="[0-9]+",
    seed_b="[0-9]+",
    method="[a-z][a-z_]*",
    round="[1-9][0-9]*",
    stage=STAGE_PATTERN,
    view="|".join(SCHEMA["$defs"]["similarity"]["properties"]["views"]["items"]["enum"]),
    part="main|companion",


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/prune.smk"
include: "rules/activations.smk"
include: "rules/similarity.smk"
include: "rules/figures.smk"


# Every file but the figures: the prepared data, each model's files, the comparisons and
# the aggregates. As targets, a deleted one is rebuilt instead of being a forgotten
# intermediate.
rule numbers:
    input:
        every_output(),


# The default target: every output the README lists and every figure.
rule all:
    default_target: True
    input:
        rules.paper.input,
        rules.numbers.input,
