"""prunesim: how do the layer representations of a CNN change as it is pruned?

Run the embedded default:  snakemake --cores all
Run another config:        snakemake --cores all --configfile config/smoke.yaml
"""

import sys

from snakemake.exceptions import WorkflowError

from prunesim.config import (
    ConfigError,
    check_device_visible,
    load_config_file,
    load_schema,
    validate,
)
from prunesim.integrity import check_files
from prunesim.io import remove_stale_temporaries
from prunesim.layout import RESULTS, STAGE_PATTERN

# A --configfile replaces the embedded default rather than merging into it, so that a smoke
# or paper config never inherits the default experiment.
# (Snakemake reads a --configfile itself before this file runs; the embedded one is read
# here first so that a YAML error in it is reported with its line.)
if not workflow.config_settings.configfiles:
    try:
        load_config_file("config/config.yaml")  # the path configfile: reads
    except ConfigError as err:
        raise WorkflowError(f"invalid configuration: {err}") from None

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


SCHEMA = load_schema(workflow.source_path("config/config.schema.yaml"))
try:
    validate(config, SCHEMA)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None


# Before the first job, and so before Snakemake removes any job's old outputs: a GPU that
# the jobs of a local run cannot see (a cluster run's jobs see their node's GPUs instead; a
# dry run runs nothing), and damaged files that the jobs would read.
onstart:
    if workflow.local_exec:
        try:
            check_device_visible(config["device"])
        except ConfigError as err:
            raise WorkflowError(f"invalid configuration: {err}") from None
    for path in remove_stale_temporaries(RESULTS):
        print(f"removed {path}, left by a job that was killed", file=sys.stderr)
    damaged = check_files(
        files_read_not_rewritten(workflow.dag.needrun_jobs()),
        checkpoint_expectation,
    )
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
