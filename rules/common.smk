"""Helpers shared by the rule files (config lookups, the files of each job, code digests).

Paths come from prunesim.layout, methods from prunesim.methods, and each rule's params carry
only values that change its outputs (prunesim.config.result_values) plus its code digest.
"""

from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from prunesim.code_identity import code_digest
from prunesim.config import (
    execution_only_keys,
    experiment_summary,
    figure_parts,
    figure_views,
    result_values,
)
from prunesim.device import gpus_reserved
from prunesim.layout import (
    FIGURES,
    MODEL_FILES,
    RESULTS,
    REWIND_FILE,
    aggregate_file,
    checkpoint_identity,
    model_dir,
    seed_pair_dir,
    stage_identity,
)
from prunesim.methods import (
    DENSE_MASK,
    DENSE_MODEL,
    IMP_MASK,
    METHODS,
    PREVIOUS_MASK,
    PREVIOUS_MODEL,
    REWIND_POINT,
    rewind_epoch,
)

# GPUs a training or extraction job reserves: one when the config asks for CUDA, none for
# 'cpu' or 'auto' ('auto' uses a visible GPU without reserving it). A countable resource, so
# local runs with `--resources gpu=N` and SLURM runs (`--gpus`) never oversubscribe.
GPUS = gpus_reserved(config["device"])

# The adapters, relative to this file: workflow.basedir is the main Snakefile's folder, which
# is workflow/ when the run starts at workflow/Snakefile and another workflow's in module use.
SCRIPTS = "../workflow/scripts"


def script_code(rule_name, *modules):
    """The code digest of a rule's job: the import closure of its adapter script (and of the
    modules it imports by name at run time), as prunesim.code_identity finds it. The script is
    read through workflow.source_path (a module fetched from a URL has it only in Snakemake's
    source cache)."""
    return code_digest(workflow.source_path(f"{SCRIPTS}/{rule_name}.py"), *modules)


CODE = {
    name: script_code(name)
    for name in (
        "prepare_data",
        "train_dense",
        "extract_activations",
        "compare",
        "aggregate",
        "figure_similarity_vs_round",
        "figure_layer_heatmaps",
        "figure_metric_agreement",
        "figure_similarity_vs_accuracy",
        "figure_accuracy_vs_sparsity",
        "figure_units_per_round",
        "key_numbers",
    )
}
# A round's code: the generic prune adapter and its method's job module.
PRUNE_CODE = {name: script_code("prune", m.job) for name, m in METHODS.items()}

EXECUTION_ONLY = execution_only_keys(SCHEMA)


def experiment(wildcards):
    return config["experiments"][wildcards.exp]


def results_of(block):
    """For params: the experiment's config ``block`` without the values that change no
    result (batch sizes for evaluation, memory budgets), keys in order. Params are what
    Snakemake compares to decide a rerun; the adapter hands its job the whole block from
    snakemake.config (the same values, and those that change no result)."""
    return lambda wc: result_values(experiment(wc)[block], EXECUTION_ONLY[block])


def seeds(exp):
    return config["experiments"][exp]["seeds"]


def methods(exp):
    return config["experiments"][exp]["pruning"]["methods"]


def rounds(exp, method):
    """A method's rounds, as its registry entry counts them from the pruning block."""
    pruning = config["experiments"][exp]["pruning"]
    return range(1, METHODS[method].count_rounds(pruning) + 1)


def method_settings(wc):
    """The method's settings for this round (its registry entry says which)."""
    exp = experiment(wc)
    return METHODS[wc.method].settings(
        exp["pruning"], result_values(exp["train"]), int(wc.round)
    )


def experiment_models(exp):
    """(seed, method, round) of every model that enters an experiment's aggregate; round 0
    (the dense network) is listed once per method so each method's curve starts from it.
    """
    return [
        {"seed": seed, "method": method, "round": r}
        for seed in seeds(exp)
        for method in methods(exp)
        for r in [0, *rounds(exp, method)]
    ]


def seed_pairs(exp):
    """Every pair of seeds (a < b) of an experiment: their dense networks give the noise floor."""
    ordered = sorted(seeds(exp))
    return [
        {"seed_a": a, "seed_b": b}
        for i, a in enumerate(ordered)
        for b in ordered[i + 1 :]
    ]


def seed_pair_file(exp, pair):
    return f"{seed_pair_dir(exp, pair['seed_a'], pair['seed_b'])}/similarity.nc"


def seed_pair_files(wildcards):
    return [seed_pair_file(wildcards.exp, p) for p in seed_pairs(wildcards.exp)]


def aggregate_outputs():
    return [aggregate_file(exp) for exp in config["experiments"]]


def activation_store(path):
    """The output of an extraction: a store kept like every other file unless the config
    says `keep_activations: false`; then it is temp(), and Snakemake deletes it once every
    job of the run that reads it has run (and `all` does not ask for it)."""
    store = directory(path)
    return store if config["keep_activations"] else temp(store)


def every_output():
    """Every file the README lists, per experiment: the prepared data, each model's files
    (its activation store only where stores are kept), the seed-pair comparisons and the
    aggregate. As targets of `all`, a deleted one is rebuilt by the same command instead of
    being a forgotten intermediate."""
    names = [
        name
        for name in MODEL_FILES
        if config["keep_activations"] or name != "activations.zarr"
    ]
    files = aggregate_outputs()
    for exp in config["experiments"]:
        files.append(f"{RESULTS}/{exp}/data.npz")
        folders = {
            model_dir(exp, m["seed"], m["method"], m["round"])
            for m in experiment_models(exp)
        }
        files += [f"{folder}/{name}" for folder in sorted(folders) for name in names]
        files += [f"{model_dir(exp, seed)}/{REWIND_FILE}" for seed in seeds(exp)]
        files += [seed_pair_file(exp, p) for p in seed_pairs(exp)]
    return files


def round_inputs(wildcards):
    """The files a round starts from, as its method's registry entry names them."""
    exp, seed, r = wildcards.exp, wildcards.seed, int(wildcards.round)
    previous = model_dir(exp, seed, wildcards.method, r - 1)
    paths = {
        PREVIOUS_MODEL: f"{previous}/model.pt",
        PREVIOUS_MASK: f"{previous}/mask.pt",
        DENSE_MODEL: f"{model_dir(exp, seed)}/model.pt",
        DENSE_MASK: f"{model_dir(exp, seed)}/mask.pt",
        REWIND_POINT: f"{model_dir(exp, seed)}/{REWIND_FILE}",
        IMP_MASK: f"{model_dir(exp, seed, 'imp', r)}/mask.pt",
    }
    return {role: paths[role] for role in METHODS[wildcards.method].starts_from}


def expected_provenance(wildcards):
    """What the checkpoint of the model in ``{stage}`` must say of itself, so that
    extraction refuses a model.pt of another experiment, seed or method."""
    return stage_identity(wildcards.exp, wildcards.seed, wildcards.stage)


def experiment_files(name):
    def files(wildcards):
        return [
            f"{model_dir(wildcards.exp, m['seed'], m['method'], m['round'])}/{name}"
            for m in experiment_models(wildcards.exp)
        ]

    return files


def paper_figures():
    """Every figure (PDF and PNG) of every experiment, and its key numbers."""
    files = []
    for exp in config["experiments"]:
        views = figure_views(config["experiments"][exp])
        per_view = expand(
            f"{FIGURES}/{exp}/similarity_{{part}}_{{view}}",
            part=figure_parts(config["experiments"][exp]),
            view=views,
        )
        for name in ("layer_heatmaps", "metric_agreement", "similarity_vs_accuracy"):
            per_view += expand(f"{FIGURES}/{exp}/{name}_{{view}}", view=views)
        per_view += [
            f"{FIGURES}/{exp}/accuracy_vs_sparsity",
            f"{FIGURES}/{exp}/units_per_round",
        ]
        files += [f"{stem}.{ext}" for stem in per_view for ext in ("pdf", "png")]
        files += expand(f"{FIGURES}/{exp}/metric_agreement_{{view}}.csv", view=views)
        files += [f"{FIGURES}/{exp}/key_numbers.{ext}" for ext in ("html", "csv")]
    return files


def run_context(wildcards):
    """One sentence on what an experiment ran, for the report's captions."""
    return experiment_summary(wildcards.exp, config["experiments"][wildcards.exp])


def files_read_not_rewritten(jobs):
    """Input files of ``jobs`` that none of them writes: what this run reads as it is."""
    jobs = list(jobs)
    written = {str(f) for job in jobs for f in job.output}
    return sorted({str(f) for job in jobs for f in job.input} - written)


def job_pythons(jobs):
    """The Python of each conda environment the jobs run in (--sdm conda; none otherwise):
    where the pre-run file check runs if Snakemake's own Python lacks the workflow's
    libraries (prunesim.integrity.check_files_somewhere)."""
    if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
        return []  # (asking a job for its environment would call conda)
    envs = {job.conda_env.address for job in jobs if job.conda_env is not None}
    return [str(Path(env) / "bin" / "python") for env in sorted(envs)]


def checkpoint_expectation(path):
    """What the checkpoint at ``path`` must be, from its place in results/ and the config."""
    found = checkpoint_identity(path)
    if found is None or found[0] not in config["experiments"]:
        return {}
    exp, identity = found
    settings = config["experiments"][exp]
    if Path(path).name == REWIND_FILE:  # the dense run at the epoch rounds rewind to
        identity = {
            **identity,
            "epoch": rewind_epoch(settings["pruning"], settings["train"]),
        }
    return {"expect": identity, "arch": settings["model"]}
