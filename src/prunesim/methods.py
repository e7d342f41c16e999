"""The pruning-method registry: one entry declares everything the workflow knows of a method.

An entry names the method and its label, says what one of its rounds is and how many rounds
an experiment's config gives it, which files a round starts from, which config values change
its results, and which job module makes a round. The rules (one ``prune`` rule for every
method), config validation, figure legends and the README's method table all read this table;
adding a method is its job module, its entry here and its config block in the schema
(docs/architecture.md walks through one).

Job modules are named, not imported: the rule hands a round its method's module name, so a
round imports neither the registry nor other methods, and each method's code digest covers
its own code (:mod:`prunesim.code_identity`); the registry stays cheap to read when the
workflow starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# What a round can start from (the keys of a round job's ``inputs``).
PREVIOUS_MODEL = "model"  # the previous round's model.pt (round 1: the dense network's)
PREVIOUS_MASK = "mask"  # the previous round's mask.pt (round 1: the dense network's)
DENSE_MODEL = "dense"  # the dense network of the same seed
IMP_MASK = "reference"  # IMP's mask.pt of the same round (the sparsity a baseline mirrors)
DENSE_MASK = "dense_mask"  # the dense network's mask.pt (which weights are prunable)
REWIND_POINT = "rewind"  # the dense run's rewind.pt (its state retrain_epochs before the end)
STARTS_FROM = (PREVIOUS_MODEL, PREVIOUS_MASK, DENSE_MODEL, IMP_MASK, DENSE_MASK, REWIND_POINT)


# The structured methods' fine-tuning as their authors ran it (``finetune_schedule: authors``):
# the training block's values it replaces, ``epochs`` being the length the milestones refer to.
AUTHORS_FINETUNING = {
    # github.com/lmbxmu/EPruner: the README's CIFAR-10 command (ResNet-56: lr 0.01, decay at
    # epochs 50 and 100, 150 epochs, batch 256, weight decay 5e-3), SGD with utils/options.py's
    # momentum 0.9 and epruner_cifar.py's MultiStepLR(gamma=0.1)
    "epruner": {
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.005,
        "schedule": "multistep",
        "milestones": [50, 100],
        "gamma": 0.1,
        "epochs": 150,
        "batch_size": 256,
        "clip_grad_norm": None,
    },
    # github.com/IanPons/CKA-Layer-Pruning: main.py's finetuning (SGD lr 0.01, momentum 0.9,
    # Nesterov, batch 128) for 200 epochs with the LR divided by 10 at epochs 100 and 150 (its
    # README); template_architectures.py's l2(1e-4) on convolution kernels adds 2e-4 w to their
    # gradients (here a weight decay of every parameter)
    "cka_layers": {
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 0.0002,
        "schedule": "multistep",
        "milestones": [100, 150],
        "gamma": 0.1,
        "epochs": 200,
        "batch_size": 128,
        "clip_grad_norm": None,
    },
}


def _fine_tuning(pruning: dict, block: str, train: dict) -> dict:
    """A structured method's fine-tuning settings: the training block's values it replaces
    (``finetune``: the authors' schedule, or nothing: the experiment's ``train``), its epochs
    (``null`` in the config: the schedule's own) and whether the classifier is prunable."""
    schedule = pruning[block]["finetune_schedule"]
    replaced = dict(AUTHORS_FINETUNING[block]) if schedule == "authors" else {}
    epochs = pruning[block]["finetune_epochs"]
    return {
        "finetune": replaced,
        "finetune_epochs": replaced.get("epochs", train["epochs"]) if epochs is None else epochs,
        "include_output": pruning["prune_output_layer"],
    }


@dataclass(frozen=True)
class Method:
    """One pruning method, as the workflow sees it."""

    name: str
    label: str  # for legends and tables
    round_label: str  # what one round is, for a legend's title
    summary: str  # what a round does, one sentence for the README's method table
    job: str  # the module whose ``prune_round(job)`` makes one round
    starts_from: tuple[str, ...]  # the files a round reads, from STARTS_FROM
    count_rounds: Callable[[dict], int]  # the experiment's pruning block -> number of rounds
    # (pruning block, train block, round) -> the method's settings for that round: every value
    # that changes the round's results and nothing else (they are the rule's params)
    settings: Callable[[dict, dict, int], dict]
    # (experiment block, (channels, height, classes) of its images) -> None, or the config key
    # (below the experiment) and message of what makes the method impossible there
    check: Callable[[dict, tuple[int, int, int]], tuple[str, str] | None] | None = None


def _removable_blocks_suffice(exp: dict, shape: tuple[int, int, int]):
    """cka_layers needs a ResNet from which its candidate rule can remove ``blocks`` blocks."""
    from prunesim.models import build_model  # torch: only where configured
    from prunesim.pruning.structure import removable_count

    channels, height, classes = shape
    rule = exp["pruning"]["cka_layers"]["candidates"]
    try:
        removable = removable_count(build_model(exp["model"], channels, classes, height), rule)
    except TypeError:
        return "pruning.methods", (
            f"'cka_layers' removes residual blocks, but {exp['model']!r} has none (expected a "
            "ResNet model, e.g. resnet20)"
        )
    blocks = exp["pruning"]["cka_layers"]["blocks"]
    if blocks > removable:
        which = (
            "removable (non-downsampling) blocks"
            if rule == "any_non_downsampling"
            else "blocks removable under candidates 'authors' (never a stage's first block, "
            "at least 2 left per stage)"
        )
        return "pruning.cka_layers.blocks", (
            f"{blocks}, but {exp['model']!r} has only {removable} {which} "
            f"(expected at most {removable})"
        )
    return None


def _masked_rounds(pruning: dict) -> int:
    return pruning["rounds"]


def retrain_epochs(pruning: dict, train: dict) -> int:
    """The retraining budget t of a masked round (``null`` in the config: train.epochs)."""
    epochs = pruning["retrain_epochs"]
    return train["epochs"] if epochs is None else epochs


def rewind_epoch(pruning: dict, train: dict) -> int:
    """The dense run's epoch that weight rewinding returns to (its ``rewind.pt``): t epochs
    before the end, so that every retraining mode trains t epochs. Without a weight-rewinding
    method it is 0 (the initialisation), so that changing t retrains no dense network."""
    if not any(REWIND_POINT in METHODS[m].starts_from for m in pruning["methods"]):
        return 0
    return train["epochs"] - retrain_epochs(pruning, train)


# Renda et al. 2020's three ways to retrain after a pruning step, all with the same budget of
# t = pruning.retrain_epochs epochs: the label's addition and what a round does.
RETRAINING = {
    "lr_rewind": (
        "",
        "learning-rate rewinding: retrain the pruned weights with the schedule's last t "
        "epochs (t = `retrain_epochs`, by default the whole schedule)",
    ),
    "weight_rewind": (
        "weight rewinding",
        "weight rewinding: reset the surviving weights to the dense run's state t epochs "
        "before its end (`rewind.pt`; the initialisation by default) and retrain with the "
        "schedule's last t epochs",
    ),
    "finetune": (
        "fine-tuning",
        "fine-tuning: train the pruned weights t epochs at the schedule's final learning rate",
    ),
}


def _imp(retraining: str, oneshot: bool) -> Method:
    """IMP with one of the retraining modes, iterative (each round prunes the previous round's
    network by `rate`) or one-shot (each round prunes the dense network once to the
    sparsity of IMP's round)."""
    label, how = RETRAINING[retraining]
    rewinds_lr = retraining == "lr_rewind"  # plain `imp`: its name predates the other modes
    name = "_".join(
        ["imp", *([] if rewinds_lr else [retraining]), *(["oneshot"] if oneshot else [])]
    )
    step = (
        "prune the dense network once, by magnitude, to iterative IMP's kept count of the round"
        if oneshot
        else "remove `rate` of the surviving weights by magnitude (`scope`: global or layerwise)"
    )
    if oneshot:
        starts = (DENSE_MODEL, DENSE_MASK)
    else:
        starts = (PREVIOUS_MODEL, PREVIOUS_MASK)
    if retraining == "weight_rewind":
        starts += (REWIND_POINT,)
    return Method(
        name=name,
        label=", ".join(
            ["IMP", *([] if rewinds_lr else [label]), *(["one-shot"] if oneshot else [])]
        ),
        round_label="sparsity of IMP round" if oneshot else "IMP round",
        summary=f"{'one-shot' if oneshot else 'iterative'} magnitude pruning: {step}; {how}",
        job="prunesim.jobs.imp",
        starts_from=starts,
        count_rounds=_masked_rounds,
        settings=lambda pruning, train, r: {
            "rate": pruning["rate"],
            "scope": pruning["scope"],
            "retraining": retraining,
            "oneshot": oneshot,
            "retrain_epochs": retrain_epochs(pruning, train),
        },
    )


IMP_VARIANTS = tuple(_imp(mode, oneshot) for mode in RETRAINING for oneshot in (False, True))


def _random_baseline(scope: str, matched: str) -> Method:
    """A random control for IMP: its round r mirrors IMP round r's kept counts (``scope``:
    in total or per layer) with random positions, and retrains exactly as IMP."""
    return Method(
        name=f"random_{scope}",
        label=f"random ({scope})",
        round_label="round (IMP's sparsity)",
        summary=(
            f"control: random surviving weights removed until {matched} equals IMP's round, "
            "retrained exactly as `imp` (learning-rate rewinding, the same budget and batches)"
        ),
        job="prunesim.jobs.random_baseline",
        starts_from=(PREVIOUS_MODEL, PREVIOUS_MASK, IMP_MASK),
        count_rounds=_masked_rounds,
        settings=lambda pruning, train, r: {
            "scope": scope,
            "retrain_epochs": retrain_epochs(pruning, train),
        },
    )


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        *IMP_VARIANTS,
        Method(
            name="retrain_only",
            label="retrain only",
            round_label="round (IMP's schedule)",
            summary=(
                "control: nothing pruned; each round retrains the previous round's network "
                "exactly as `imp` does (learning-rate rewinding: budget, seeds, batch order): "
                "what retraining alone changes"
            ),
            job="prunesim.jobs.retrain_only",
            starts_from=(PREVIOUS_MODEL, PREVIOUS_MASK),
            count_rounds=_masked_rounds,
            settings=lambda pruning, train, r: {"retrain_epochs": retrain_epochs(pruning, train)},
        ),
        _random_baseline("global", "the total kept count"),
        _random_baseline("layerwise", "every layer's kept count"),
        Method(
            name="epruner",
            label="EPruner",
            round_label="EPruner beta (k-th)",
            summary=(
                "structured: each convolution keeps its exemplar filters (affinity "
                "propagation at the round's beta), pruned from the dense network, fine-tuned"
            ),
            job="prunesim.jobs.epruner",
            starts_from=(DENSE_MODEL,),
            count_rounds=lambda pruning: len(pruning["epruner"]["betas"]),
            settings=lambda pruning, train, r: {
                "beta": pruning["epruner"]["betas"][r - 1],
                "initialisation": pruning["epruner"]["initialisation"],
                "vgg_late_beta": pruning["epruner"]["vgg_late_beta"],
                **_fine_tuning(pruning, "epruner", train),
            },
        ),
        Method(
            name="cka_layers",
            label="CKA layer pruning",
            round_label="blocks removed",
            summary=(
                "structured (ResNets): remove the residual block whose removal keeps the "
                "penultimate representation most similar (linear CKA), fine-tune"
            ),
            job="prunesim.jobs.cka_layers",
            starts_from=(PREVIOUS_MODEL, DENSE_MODEL),
            count_rounds=lambda pruning: pruning["cka_layers"]["blocks"],
            settings=lambda pruning, train, r: {
                "criterion_samples": pruning["cka_layers"]["criterion_samples"],
                "candidates": pruning["cka_layers"]["candidates"],
                **_fine_tuning(pruning, "cka_layers", train),
            },
            check=_removable_blocks_suffice,
        ),
    )
}


def method_table() -> str:
    """The README's table of methods (checked against the README by a test)."""
    rows = ["| method | label | a round |", "|---|---|---|"]
    rows += [f"| `{m.name}` | {m.label} | {m.summary} |" for m in METHODS.values()]
    return "\n".join(rows)
