"""Jobs: the figures of an experiment, drawn from its aggregate file (rules figure_*).

``options`` is the experiment's ``figures`` config block (main_metrics, score,
heatmap_rounds); each job reads the aggregate and nothing else.
"""

from __future__ import annotations

from prunesim import figures
from prunesim.io import read_netcdf


def _aggregate(path: str):
    return read_netcdf(path, "aggregate file")


def figure_similarity_vs_round(
    aggregate: str, view: str, part: str, options: dict, pdf: str, png: str
) -> None:
    """``part`` 'main': the main metrics; 'companion': every other computed metric."""
    ds = _aggregate(aggregate)
    chosen = options["main_metrics"]
    if part == "main":
        metrics, title = figures.main_metrics(ds, chosen), ""
    else:
        metrics = figures.companion_metrics(ds, chosen)
        title = f"Companion: the other metrics, each layer vs its dense self (view: {view})"
    figures.similarity_vs_round(
        ds, view, metrics, pdf=pdf, png=png, score=options["score"], title=title
    )


def figure_layer_heatmaps(aggregate: str, view: str, options: dict, pdf: str, png: str) -> None:
    ds = _aggregate(aggregate)
    rounds = options["heatmap_rounds"] or sorted({1, int(ds["round"].max())})
    figures.layer_heatmaps(
        ds, view, figures.main_metrics(ds, options["main_metrics"]), rounds, pdf=pdf, png=png,
        score=options["score"],
    )  # fmt: skip


def figure_metric_agreement(aggregate: str, view: str, pdf: str, png: str, csv: str) -> None:
    figures.metric_agreement(_aggregate(aggregate), view, pdf=pdf, png=png, csv=csv)


def figure_similarity_vs_accuracy(
    aggregate: str, view: str, options: dict, pdf: str, png: str
) -> None:
    ds = _aggregate(aggregate)
    figures.similarity_vs_accuracy(
        ds, view, figures.main_metrics(ds, options["main_metrics"]), pdf=pdf, png=png,
        score=options["score"],
    )  # fmt: skip


def figure_accuracy_vs_sparsity(aggregate: str, pdf: str, png: str) -> None:
    figures.accuracy_vs_sparsity(_aggregate(aggregate), pdf=pdf, png=png)


def figure_units_per_round(aggregate: str, pdf: str, png: str) -> None:
    figures.units_per_round(_aggregate(aggregate), pdf=pdf, png=png)


def key_numbers(aggregate: str, options: dict, html: str, csv: str) -> None:
    ds = _aggregate(aggregate)
    figures.key_numbers(ds, figures.main_metrics(ds, options["main_metrics"]), html, csv)
