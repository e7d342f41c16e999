"""Jobs: the figures of an experiment, drawn from its aggregate file (rules figure_*)."""

from __future__ import annotations

from prunesim.figures import accuracy_vs_sparsity, similarity_vs_depth, similarity_vs_round
from prunesim.io import read_netcdf


def figure_similarity_vs_depth(aggregate: str, method: str, pdf: str, png: str) -> None:
    ds = read_netcdf(aggregate, "aggregate file")
    similarity_vs_depth(ds, method, pdf=pdf, png=png)


def figure_accuracy_vs_sparsity(aggregate: str, pdf: str, png: str) -> None:
    accuracy_vs_sparsity(read_netcdf(aggregate, "aggregate file"), pdf=pdf, png=png)


def figure_similarity_vs_round(aggregate: str, view: str, pdf: str, png: str) -> None:
    ds = read_netcdf(aggregate, "aggregate file")
    similarity_vs_round(ds, view, pdf=pdf, png=png)
