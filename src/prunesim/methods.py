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
STARTS_FROM = (PREVIOUS_MODEL, PREVIOUS_MASK, DENSE_MODEL, IMP_MASK)


def _fine_tuning(pruning: dict, block: str, train: dict) -> dict:
    """A structured method's fine-tuning settings: its epochs (``null`` in the config means
    train.epochs) and whether the classifier is prunable."""
    epochs = pruning[block]["finetune_epochs"]
    return {
        "finetune_epochs": train["epochs"] if epochs is None else epochs,
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
    """cka_layers needs a ResNet with at least ``blocks`` removable (non-downsampling) blocks."""
    from prunesim.models import build_model  # torch: only where configured
    from prunesim.pruning.structure import removable_blocks

    channels, height, classes = shape
    try:
        removable = removable_blocks(build_model(exp["model"], channels, classes, height))
    except TypeError:
        return "pruning.methods", (
            f"'cka_layers' removes residual blocks, but {exp['model']!r} has none (expected a "
            "ResNet model, e.g. resnet20)"
        )
    blocks = exp["pruning"]["cka_layers"]["blocks"]
    if blocks > len(removable):
        return "pruning.cka_layers.blocks", (
            f"{blocks}, but {exp['model']!r} has only {len(removable)} removable "
            f"(non-downsampling) blocks (expected at most {len(removable)})"
        )
    return None


def _masked_rounds(pruning: dict) -> int:
    return pruning["rounds"]


def _random_baseline(scope: str, matched: str) -> Method:
    """A random control for IMP: its round r mirrors IMP round r's kept counts (``scope``:
    in total or per layer) with random positions, and retrains exactly as IMP."""
    return Method(
        name=f"random_{scope}",
        label=f"random ({scope})",
        round_label="round (IMP's sparsity)",
        summary=(
            f"control: random surviving weights removed until {matched} equals IMP's round, "
            "retrained exactly as IMP"
        ),
        job="prunesim.jobs.random_baseline",
        starts_from=(PREVIOUS_MODEL, PREVIOUS_MASK, IMP_MASK),
        count_rounds=_masked_rounds,
        settings=lambda pruning, train, r: {"scope": scope},
    )


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="imp",
            label="IMP",
            round_label="IMP round",
            summary=(
                "iterative magnitude pruning with learning-rate rewinding: remove `rate` of the "
                "surviving weights by magnitude (`scope`: global or layerwise), retrain with "
                "the full schedule"
            ),
            job="prunesim.jobs.imp",
            starts_from=(PREVIOUS_MODEL, PREVIOUS_MASK),
            count_rounds=_masked_rounds,
            settings=lambda pruning, train, r: {
                "rate": pruning["rate"],
                "scope": pruning["scope"],
            },
        ),
        Method(
            name="retrain_only",
            label="retrain only",
            round_label="round (IMP's schedule)",
            summary=(
                "control: nothing pruned; each round retrains the previous round's network "
                "exactly as IMP does (schedule, seeds, batch order): what retraining alone "
                "changes"
            ),
            job="prunesim.jobs.retrain_only",
            starts_from=(PREVIOUS_MODEL, PREVIOUS_MASK),
            count_rounds=_masked_rounds,
            settings=lambda pruning, train, r: {},
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
