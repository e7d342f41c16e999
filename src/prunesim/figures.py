"""Publication figures from an experiment's aggregated Dataset; one function per figure.

Figures read only the aggregated Dataset (``results/{exp}/aggregate.nc``). Each is saved as
PDF and PNG, atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402

from prunesim.io import atomic_path  # noqa: E402
from prunesim.methods import METHODS  # noqa: E402
from prunesim.metrics import REGISTRY as METRICS_REGISTRY  # noqa: E402

log = logging.getLogger(__name__)

METRIC_LABELS = {
    "cka_linear": "linear CKA",
    "cka_rbf": "RBF CKA",
    "cka_debiased": "debiased CKA",
    "cca_mean": "mean CCA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "nbs": "NBS",
    "procrustes": "Procrustes angle (rad)",
    "knn_jaccard": "k-NN Jaccard",
    "rsa_spearman": "RSA (Spearman)",
}


def method_label(name: str) -> str:
    """A method's label from the registry (its name if it is not registered)."""
    return METHODS[name].label if name in METHODS else name


def round_label(name: str) -> str:
    """What one round of a method is, for a legend's title."""
    return METHODS[name].round_label if name in METHODS else f"{name} round"


def save(fig: plt.Figure, pdf: str | Path, png: str | Path, dpi: int = 200) -> None:
    for path, fmt in ((pdf, "pdf"), (png, "png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def matched_layers(ds: xr.Dataset) -> pd.DataFrame:
    """Similarity of each layer to the same-named layer of the dense network, long format."""
    diag = _matched(ds.similarity)
    diag = diag.assign_coords(depth=("layer", np.arange(diag.sizes["layer"])))
    frame = diag.to_dataframe(name="similarity").reset_index()
    keep = ["seed", "pruning", "round", "metric", "view", "layer", "depth", "similarity"]
    return frame[keep + ["sparsity"]] if "sparsity" in frame else frame[keep]


def similarity_vs_depth(ds: xr.Dataset, method: str, pdf: str | Path, png: str | Path) -> None:
    """Matched-layer similarity to the dense network vs depth: one line per round (mean over
    seeds, band = range), one row of panels per metric, one column per view."""
    frame = matched_layers(ds.sel(pruning=method))
    frame = frame[frame["round"] > 0]
    mean_sparsity = ds.sparsity.sel(pruning=method).mean("seed").values
    sparsity = dict(zip(ds["round"].values.tolist(), mean_sparsity, strict=True))
    frame["round"] = frame["round"].map(lambda r: f"{r} ({100 * sparsity[r]:.1f}% pruned)")
    layers = list(dict.fromkeys(frame.sort_values("depth")["layer"]))
    frame["metric"] = frame["metric"].map(lambda m: METRIC_LABELS.get(m, m))
    sns.set_theme(context="paper", style="whitegrid")
    grid = sns.relplot(
        data=frame,
        x="depth",
        y="similarity",
        hue="round",
        row="metric",
        col="view",
        kind="line",
        marker="o",
        palette="viridis",
        errorbar=("pi", 100),
        height=2.2,
        aspect=1.5,
        facet_kws={"sharey": False, "margin_titles": True},
    )
    grid.set(xticks=range(len(layers)))
    grid.set_xticklabels(layers, rotation=60, ha="right")
    grid.set_axis_labels("layer", "similarity to dense")
    grid.set_titles(row_template="{row_name}", col_template="view: {col_name}")
    grid.legend.set_title(round_label(method))
    title = method_label(method)
    title = f"{title}: each layer vs the same layer of the dense network"
    if "seed_similarity" in ds:
        _draw_seed_floor(grid, ds, layers)
        title += "\n(dashed: dense network of one seed vs another, mean over seed pairs)"
    grid.figure.suptitle(title, y=1.02)
    save(grid.figure, pdf, png)


def _draw_seed_floor(grid, ds: xr.Dataset, layers: list[str]) -> None:
    """The seed-to-seed similarity of matched dense layers, as a dashed reference line."""
    floor = ds.seed_similarity.mean("seed_pair")
    for (metric_label, view), ax in grid.axes_dict.items():
        metric = next(m for m in ds.metric.values if METRIC_LABELS.get(m, m) == metric_label)
        values = [
            float(floor.sel(metric=metric, view=view, layer_a=la, layer_b=la)) for la in layers
        ]
        ax.plot(range(len(layers)), values, ls="--", color="0.35", lw=1.2, zorder=1)


def accuracy_vs_sparsity(ds: xr.Dataset, pdf: str | Path, png: str | Path) -> None:
    """Test accuracy vs the fraction of prunable weights remaining and vs the fraction of FLOPs
    remaining (log scales), one line per method through its rounds: unstructured and
    structured pruning on the axes that compare them. Points are means over seeds; bars span
    the seeds' range in both directions (structured pruning reaches a different size per
    seed)."""
    frame = (
        xr.Dataset(
            {
                "test_accuracy": ds.test_accuracy,
                "sparsity": ds.sparsity,
                "flops_remaining": ds.flops_remaining,
            }
        )
        .to_dataframe()
        .reset_index()
        .dropna(subset=["test_accuracy"])
    )
    frame["weights"] = 100 * (1 - frame["sparsity"])
    frame["flops"] = 100 * frame["flops_remaining"]
    frame["accuracy"] = 100 * frame["test_accuracy"]
    stats = frame.groupby(["pruning", "round"])[["weights", "flops", "accuracy"]].agg(
        ["mean", "min", "max"]
    )
    sns.set_theme(context="paper", style="whitegrid")
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2), sharey=True)
    palette = dict(zip(stats.index.unique("pruning"), sns.color_palette(), strict=False))
    for ax, column, label in (
        (axes[0], "weights", "prunable weights remaining (%)"),
        (axes[1], "flops", "FLOPs remaining (%)"),
    ):
        for method, rows in stats.groupby(level="pruning"):
            x, y = rows[column], rows["accuracy"]
            ax.errorbar(
                x["mean"],
                y["mean"],
                xerr=[x["mean"] - x["min"], x["max"] - x["mean"]],
                yerr=[y["mean"] - y["min"], y["max"] - y["mean"]],
                marker="o",
                ms=4,
                capsize=2,
                color=palette[method],
                label=method_label(method),
            )
        ax.set_xscale("log")
        plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
        ax.invert_xaxis()
        ax.set_xlabel(label)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(title="pruning")
    fig.suptitle("accuracy under pruning (mean over seeds, bars = range)")
    save(fig, pdf, png)


def _matched(da: xr.DataArray) -> xr.DataArray:
    """``da`` on the pairs of same-named layers, along a ``layer`` dim in forward order."""
    shared = [layer for layer in da.layer_a.values if layer in set(da.layer_b.values)]
    return xr.concat(
        [da.sel(layer_a=layer, layer_b=layer, drop=True) for layer in shared], dim="layer"
    ).assign_coords(layer=shared)


def similarity_vs_round(ds: xr.Dataset, view: str, pdf: str | Path, png: str | Path) -> None:
    """Each layer against the same layer of the dense network, round by round, every method
    on the same axes (IMP beside its controls): one row of panels per metric, one column per
    layer, under one view. Lines: mean over seeds; band: the t interval over seeds where there
    are three or more, else their range; dotted: the method's chance level (mean over seeds
    of the permutation null); dashed grey: the dense networks of two seeds compared."""
    ds = ds.sel(view=view)
    similarity = _matched(ds.similarity)
    metrics, layers = list(ds.metric.values), list(similarity.layer.values)
    three = "ci_over_seeds_low" in ds and int(ds.sizes["seed"]) >= 3
    low = _matched(ds.ci_over_seeds_low) if three else similarity.min("seed")
    high = _matched(ds.ci_over_seeds_high) if three else similarity.max("seed")
    mean = similarity.mean("seed")
    chance = _matched(ds.null_mean).mean("seed") if "null_mean" in ds else None
    floor = _matched(ds.seed_similarity).mean("seed_pair") if "seed_similarity" in ds else None
    sns.set_theme(context="paper", style="whitegrid")
    fig, axes = plt.subplots(
        len(metrics),
        len(layers),
        figsize=(1.7 * len(layers) + 0.8, 1.35 * len(metrics) + 0.6),
        sharex=True,
        squeeze=False,
    )
    palette = dict(zip(ds.pruning.values, sns.color_palette(), strict=False))
    for r, metric in enumerate(metrics):
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            cell = {"metric": metric, "layer": layer}
            for method in ds.pruning.values:
                at = {**cell, "pruning": method}
                y = mean.sel(at).values
                if np.isnan(y).all():
                    continue
                x = mean["round"].values
                ax.plot(x, y, marker="o", ms=2.5, lw=1.2, color=palette[method])
                ax.fill_between(
                    x, low.sel(at).values, high.sel(at).values, color=palette[method], alpha=0.2
                )
                if chance is not None:
                    ax.plot(x, chance.sel(at).values, ls=":", lw=1.0, color=palette[method])
            if floor is not None and np.isfinite(float(floor.sel(cell))):
                ax.axhline(float(floor.sel(cell)), ls="--", lw=1.0, color="0.4", zorder=1)
            if np.isnan(similarity.sel(cell).values).all():
                reason = str(_matched(ds.nan_reason).sel(cell).values.flat[0])
                ax.text(
                    0.5,
                    0.5,
                    "undefined:\n" + _wrap(reason),
                    ha="center",
                    va="center",
                    fontsize=5,
                    transform=ax.transAxes,
                    color="0.3",
                )
            if r == 0:
                ax.set_title(layer)
            if c == 0:
                label = METRIC_LABELS.get(metric, metric)
                lower = metric in METRICS_REGISTRY and METRICS_REGISTRY[metric].perfect == 0.0
                ax.set_ylabel(label + ("\n(lower = closer)" if lower else ""))
            if r == len(metrics) - 1:
                ax.set_xlabel("round")
    handles = [
        matplotlib.lines.Line2D([], [], color=palette[m], marker="o", ms=3, label=method_label(m))
        for m in ds.pruning.values
    ]
    handles += [
        matplotlib.patches.Patch(
            color="0.7",
            label="t interval over seeds" if three else "range over seeds",
        ),
        matplotlib.lines.Line2D(
            [], [], ls=":", color="0.2", label="chance level (permuted probes)"
        ),
        matplotlib.lines.Line2D([], [], ls="--", color="0.4", label="dense vs dense, another seed"),
    ]
    fig.suptitle(f"each layer vs the same layer of the dense network, view: {view}")
    fig.tight_layout()
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
    )
    save(fig, pdf, png)


def _wrap(text: str, width: int = 32) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4])
