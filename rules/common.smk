"""Helpers shared by the rule files: config lookups, output paths, code digests."""

from prunesim.io import code_digest


RESULTS = "results"


wildcard_constraints:
    exp="[A-Za-z0-9_-]+",
    seed="[0-9]+",
    method="[a-z][a-z_]*",
    round="[1-9][0-9]*",
    model="dense|[a-z][a-z_]*/round[1-9][0-9]*",


# Digests of the library code each rule family runs: editing the metrics reruns similarity
# jobs (and what follows) but never training.
CODE = {
    "train": code_digest(
        "prunesim.stages.train",
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
    "figures": code_digest("prunesim.figures"),
}


def experiment(wildcards):
    return config["experiments"][wildcards.exp]


def seeds(exp):
    return config["experiments"][exp]["seeds"]


def methods(exp):
    return config["experiments"][exp]["pruning"]["methods"]


def rounds(exp):
    return range(1, config["experiments"][exp]["pruning"]["rounds"] + 1)


def model_dir(exp, seed, method="dense", round=0):
    """Folder of one model: the dense network (round 0) or a method's round."""
    stage = "dense" if method == "dense" or int(round) == 0 else f"{method}/round{round}"
    return f"{RESULTS}/{exp}/seed{seed}/{stage}"


def experiment_models(exp):
    """(seed, method, round) of every model that enters an experiment's aggregate; round 0
    (the dense network) is listed once per method so each method's curve starts from it."""
    return [
        {"seed": seed, "method": method, "round": r}
        for seed in seeds(exp)
        for method in methods(exp)
        for r in [0, *rounds(exp)]
    ]


def aggregate_outputs():
    return expand(f"{RESULTS}/{{exp}}/similarity.nc", exp=list(config["experiments"]))
