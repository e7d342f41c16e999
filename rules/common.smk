"""Helpers shared by the rule files (config lookups, output paths, code digests)."""

import re
from pathlib import Path

from prunesim.io import code_digest
from prunesim.stages import model_identity

RESULTS = "results"
FIGURES = f"{RESULTS}/figures"

# GPUs a training or extraction job reserves: one when the config asks for CUDA, none for
# 'cpu' or 'auto' ('auto' uses a visible GPU without reserving it). A countable resource, so
# local runs with `--resources gpu=N` and SLURM runs (`--gpus`) never oversubscribe.
GPUS = 1 if config["device"].startswith("cuda") else 0


# Digests of the library code behind each family of rules, so that editing the metrics
# reruns similarity jobs (and what follows) but never training.
CODE = {
    "data": code_digest("prunesim.stages.data", "prunesim.data"),
    "train": code_digest(
        "prunesim.stages.train",
        "prunesim.accounting",
        "prunesim.train",
        "prunesim.models",
        "prunesim.data",
        "prunesim.pruning",
        "prunesim.checkpoint",
    ),
    "extract": code_digest(
        "prunesim.stages.extract",
        "prunesim.activations",
        "prunesim.models",
        "prunesim.data",
        "prunesim.checkpoint",
        "prunesim.train",
    ),
    "compare": code_digest(
        "prunesim.stages.similarity", "prunesim.compare", "prunesim.metrics"
    ),
    "aggregate": code_digest("prunesim.stages.similarity", "prunesim.aggregate"),
    "figures": code_digest("prunesim.stages.figures", "prunesim.figures"),
}


def experiment(wildcards):
    return config["experiments"][wildcards.exp]


def seeds(exp):
    return config["experiments"][exp]["seeds"]


def methods(exp):
    return config["experiments"][exp]["pruning"]["methods"]


def rounds(exp, method):
    """A method's rounds: IMP and random pruning rounds, EPruner's betas, CKA layer-pruning
    steps (one block each)."""
    pruning = config["experiments"][exp]["pruning"]
    count = {
        "epruner": len(pruning["epruner"]["betas"]),
        "cka_layers": pruning["cka_layers"]["blocks"],
    }.get(method, pruning["rounds"])
    return range(1, count + 1)


def model_dir(exp, seed, method="dense", round=0):
    """Folder of one model: the dense network (round 0) or a method's round."""
    stage = (
        "dense" if method == "dense" or int(round) == 0 else f"{method}/round{round}"
    )
    return f"{RESULTS}/{exp}/seed{seed}/{stage}"


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
    return f"{RESULTS}/{exp}/seeds/seed{pair['seed_a']}_vs_seed{pair['seed_b']}/similarity.nc"


def seed_pair_files(wildcards):
    return [seed_pair_file(wildcards.exp, p) for p in seed_pairs(wildcards.exp)]


def aggregate_outputs():
    return expand(f"{RESULTS}/{{exp}}/similarity.nc", exp=list(config["experiments"]))


MODEL_FILES = (
    "model.pt",
    "mask.pt",
    "metrics.json",
    "activations.zarr",
    "similarity.nc",
)


def every_output():
    """Every file the README lists, per experiment: the prepared data, each model's files,
    the seed-pair comparisons and the aggregate. As targets of `all`, a deleted one is
    rebuilt by the same command instead of being a forgotten intermediate."""
    files = aggregate_outputs()
    for exp in config["experiments"]:
        files.append(f"{RESULTS}/{exp}/data.npz")
        folders = {
            model_dir(exp, m["seed"], m["method"], m["round"])
            for m in experiment_models(exp)
        }
        files += [
            f"{folder}/{name}" for folder in sorted(folders) for name in MODEL_FILES
        ]
        files += [seed_pair_file(exp, p) for p in seed_pairs(exp)]
    return files


def previous_round(method):
    """Round r of ``method`` starts from its round r - 1; round 1 from the dense network."""

    def inputs(wildcards):
        r = int(wildcards.round)
        folder = model_dir(
            wildcards.exp, wildcards.seed, method or wildcards.method, r - 1
        )
        return {"model": f"{folder}/model.pt", "mask": f"{folder}/mask.pt"}

    return inputs


def expected_provenance(wildcards):
    """What the checkpoint of the model in ``{model}`` (dense or METHOD/roundR) must say of
    itself, so that extraction refuses a model.pt of another experiment, seed or method.
    """
    method, *stage = Path(wildcards.model).parts  # ("dense",) or (METHOD, "roundR")
    round_ = int(stage[0].removeprefix("round")) if stage else 0
    return model_identity(wildcards.exp, int(wildcards.seed), method, round_)


def dense_model(wildcards):
    return f"{model_dir(wildcards.exp, wildcards.seed)}/model.pt"


def mirrored_imp_mask(wildcards):
    """A random baseline's round r matches the kept counts of IMP's round r."""
    folder = model_dir(wildcards.exp, wildcards.seed, "imp", wildcards.round)
    return f"{folder}/mask.pt"


def experiment_files(name):
    def files(wildcards):
        return [
            f"{model_dir(wildcards.exp, m['seed'], m['method'], m['round'])}/{name}"
            for m in experiment_models(wildcards.exp)
        ]

    return files


def paper_figures():
    files = []
    for exp in config["experiments"]:
        files += expand(
            f"{FIGURES}/{exp}/similarity_vs_depth_{{method}}.{{ext}}",
            method=methods(exp),
            ext=["pdf", "png"],
        )
        files += expand(
            f"{FIGURES}/{exp}/accuracy_vs_sparsity.{{ext}}", ext=["pdf", "png"]
        )
    return files


def files_read_not_rewritten(jobs):
    """Input files of ``jobs`` that none of them writes: what this run reads as it is."""
    jobs = list(jobs)
    written = {str(f) for job in jobs for f in job.output}
    return sorted({str(f) for job in jobs for f in job.input} - written)


CHECKPOINT_PATH = re.compile(
    rf"{RESULTS}/(?P<exp>[^/]+)/seed(?P<seed>[0-9]+)/"
    r"(?:dense|(?P<method>[a-z][a-z_]*)/round(?P<round>[0-9]+))/model\.pt"
)


def checkpoint_expectation(path):
    """What the checkpoint at ``path`` must be, from its place in results/ and the config."""
    match = CHECKPOINT_PATH.fullmatch(path)
    if match is None or match["exp"] not in config["experiments"]:
        return {}
    identity = model_identity(
        match["exp"],
        int(match["seed"]),
        match["method"] or "dense",
        int(match["round"] or 0),
    )
    return {"expect": identity, "model": config["experiments"][match["exp"]]["model"]}
