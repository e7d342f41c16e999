"""Publication figures from an experiment's aggregated Dataset; one function per figure.

Figures read only the aggregated Dataset (``results/{exp}/aggregate.nc``): redrawing one
reruns no computation. Each is saved as PDF (TrueType fonts, which submission systems
accept where they refuse Type 3) and PNG, atomically, sized for a journal page (7.16 in,
two columns) with 5-7 pt text.

Every figure says in its legend what its lines and bands are, and marks undefined values
with a numbered note that gives the reason (a CCA on more features than images, a metric of
sample pairs above ``pairwise_max_samples``, ...), in full, under the figure.
"""

from __future__ import annotations

import logging
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from prunesim import config  # noqa: E402
from prunesim.aggregate import NO_SUCH_ROUND, over_seeds, settings_of  # noqa: E402
from prunesim.io import atomic_path  # noqa: E402
from prunesim.methods import METHODS  # noqa: E402
from prunesim.metrics import REGISTRY as METRICS_REGISTRY  # noqa: E402
from prunesim.metrics.calibration import chance_corrected, normal_quantile  # noqa: E402

log = logging.getLogger(__name__)
# fontTools logs every glyph of every font it subsets into a PDF at INFO: not job news
logging.getLogger("fontTools").setLevel(logging.WARNING)

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

SCORES = {
    "similarity": "the metric's value",
    "corrected": "(value - chance) / (perfect - chance): 0 at chance, 1 when identical",
}
PAGE_WIDTH = 7.16  # inches: a two-column journal page (IEEE, ACM); a column is half
MAX_COLUMNS = 7  # panels per row before layers wrap onto another row
STYLE = {
    "pdf.fonttype": 42,  # TrueType, not Type 3
    "ps.fonttype": 42,
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6.5,
    "legend.title_fontsize": 6.5,
    "figure.titlesize": 8,
    "lines.linewidth": 1.1,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
}


def method_label(name: str) -> str:
    """A method's label from the registry (its name if it is not registered)."""
    return METHODS[name].label if name in METHODS else name


def round_label(name: str) -> str:
    """What one round of a method is, for a legend's title."""
    return METHODS[name].round_label if name in METHODS else f"{name} round"


def metric_label(name: str, score: str = "similarity") -> str:
    label = METRIC_LABELS.get(name, name)
    if score == "corrected":
        return f"{label.replace(' (rad)', '')}, corrected"
    return label + ("\n(lower = closer)" if _perfect(name) == 0.0 else "")


def _perfect(metric: str) -> float:
    return METRICS_REGISTRY[metric].perfect if metric in METRICS_REGISTRY else 1.0


def _theme() -> None:
    sns.set_theme(context="paper", style="whitegrid", rc=STYLE)


def save(fig: plt.Figure, pdf: str | Path, png: str | Path, dpi: int = 200) -> None:
    for path, fmt in ((pdf, "pdf"), (png, "png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)


def main_metrics(ds: xr.Dataset, chosen: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The main figure's metrics among those the aggregate holds (:func:`config.main_metrics`)."""
    return config.main_metrics(list(ds.metric.values), chosen)


def companion_metrics(ds: xr.Dataset, chosen: list[str] | tuple[str, ...] = ()) -> list[str]:
    main = set(main_metrics(ds, chosen))
    return [m for m in ds.metric.values if m not in main]


def _z(ds: xr.Dataset) -> tuple[float, float]:
    confidence = float(settings_of(ds).get("confidence", 0.95))
    return confidence, normal_quantile(confidence)


def _matched(da: xr.DataArray) -> xr.DataArray:
    """``da`` on the pairs of same-named layers, along a ``layer`` dim in forward order."""
    shared = [layer for layer in da.layer_a.values if layer in set(da.layer_b.values)]
    return xr.concat(
        [da.sel(layer_a=layer, layer_b=layer, drop=True) for layer in shared], dim="layer"
    ).assign_coords(layer=shared)


def reason_kind(reason: str) -> str:
    """A NaN reason with its numbers (ranks, sizes, shapes) elided: one kind of reason."""
    elided = re.sub(r"(?<=rank )\d+|(?<== )\d+|\(\)|\(\d+(, \d+)*\)", "#", reason.strip())
    return elided or "no value"


@dataclass
class Notes:
    """Numbered notes on undefined values: one per kind of reason (its numbers elided)."""

    kinds: dict[str, int] = field(default_factory=dict)

    def number(self, reason: str) -> int:
        return self.kinds.setdefault(reason_kind(reason), len(self.kinds) + 1)

    def text(self, width: int = 150) -> str:
        lines = [
            textwrap.fill(f"[{n}] undefined: {kind}", width, subsequent_indent="     ")
            for kind, n in self.kinds.items()
        ]
        return "\n".join(lines)

    def add_to(self, fig: plt.Figure, y: float) -> None:
        """The notes under the figure, wrapped to its width (about 25 characters of 5.5 pt
        text per inch)."""
        if self.kinds:
            width = int(25 * fig.get_size_inches()[0])
            fig.text(0.01, y, self.text(width), ha="left", va="top", fontsize=5.5, color="0.25")


def _reason(reasons: xr.DataArray) -> str:
    """The first non-empty reason among ``reasons`` ('' if none)."""
    found = [str(r) for r in np.ravel(reasons.values) if str(r)]
    return found[0] if found else ""


@dataclass
class Scored:
    """One view's values in a figure's score, with their reference levels, layers matched or
    not (``layer`` or ``layer_a``/``layer_b`` dims)."""

    value: xr.DataArray  # (seed, pruning, round, metric, layers)
    low: xr.DataArray  # bootstrap interval (NaN where none)
    high: xr.DataArray
    chance: xr.DataArray | None  # mean of the permutation null
    chance_low: xr.DataArray | None  # the null's central `confidence` range (normal)
    chance_high: xr.DataArray | None
    seed_value: xr.DataArray | None  # (seed_pair, metric, layers): dense vs dense
    seed_low: xr.DataArray | None
    seed_high: xr.DataArray | None
    reason: xr.DataArray
    seed_reason: xr.DataArray | None
    caution: xr.DataArray | None
    confidence: float
    score: str


def _scored(ds: xr.Dataset, view: str, score: str, matched: bool = True) -> Scored:
    if score not in SCORES:
        raise ValueError(f"figure score {score!r} (expected one of {sorted(SCORES)})")
    ds = ds.sel(view=view)

    def get(name):
        if name not in ds:
            return None
        return _matched(ds[name]) if matched else ds[name]

    confidence, z = _z(ds)
    value, null, null_std = get("similarity"), get("null_mean"), get("null_std")
    low = get("ci_low") if "ci_low" in ds else xr.full_like(value, np.nan)
    high = get("ci_high") if "ci_high" in ds else xr.full_like(value, np.nan)
    seed_value, seed_low, seed_high = (
        get("seed_similarity"),
        get("seed_ci_low"),
        get("seed_ci_high"),
    )
    seed_null = get("seed_null_mean")
    chance = chance_low = chance_high = None
    if null is not None and not bool(null.notnull().any()):
        null = None  # permutations: 0 (the variables are there, every value NaN)
    if null is not None:
        chance, chance_low, chance_high = null, null - z * null_std, null + z * null_std
    if score == "corrected":
        if null is None:
            raise ValueError(
                "figure score 'corrected' needs chance levels (similarity.permutations > 0)"
            )
        perfect = xr.DataArray(
            [_perfect(m) for m in value.metric.values], coords={"metric": value.metric}
        )

        def corrected(v, base):
            return chance_corrected(v, base, perfect)

        low, high = _ordered(corrected(low, null), corrected(high, null))
        value = corrected(value, null)
        spread = z * null_std / abs(perfect - null)
        chance, chance_low, chance_high = xr.zeros_like(null), -spread, spread
        if seed_value is not None:
            seed_low, seed_high = _ordered(
                corrected(seed_low, seed_null), corrected(seed_high, seed_null)
            )
            seed_value = corrected(seed_value, seed_null)
    return Scored(
        value=value,
        low=low,
        high=high,
        chance=chance,
        chance_low=chance_low,
        chance_high=chance_high,
        seed_value=seed_value,
        seed_low=seed_low,
        seed_high=seed_high,
        reason=get("nan_reason"),
        seed_reason=get("seed_nan_reason"),
        caution=get("caution"),
        confidence=confidence,
        score=score,
    )


def _ordered(a: xr.DataArray, b: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """(elementwise min, max), NaN where either is: a distance's interval flips under the
    corrected score."""
    both = a.notnull() & b.notnull()
    return xr.where(a <= b, a, b).where(both), xr.where(a <= b, b, a).where(both)


def _seed_band(s: Scored) -> tuple[xr.DataArray, xr.DataArray, str]:
    """The band of a method's line: with three or more seeds the t interval of the mean over
    seeds; with fewer, from the lowest to the highest of the seeds' bootstrap intervals (the
    value itself where a metric has none)."""
    seeds = int(s.value.sizes["seed"])
    if seeds >= 3:
        stats = over_seeds(s.value, s.confidence)
        label = f"{100 * s.confidence:g}% t interval over {seeds} seeds"
        return stats.ci_over_seeds_low, stats.ci_over_seeds_high, label
    low = s.low.fillna(s.value).min("seed")
    high = s.high.fillna(s.value).max("seed")
    if not bool(s.low.notnull().any()):  # bootstrap: 0
        return low, high, "range over seeds" if seeds > 1 else "(no interval: bootstrap 0)"
    what = "the seeds' " if seeds > 1 else ""
    label = f"{what}{100 * s.confidence:g}% bootstrap interval{'s' if seeds > 1 else ''}"
    return low, high, label + (", lowest to highest" if seeds > 1 else "")


def _grid(n_rows_of_metrics: int, n_layers: int, row_height: float = 1.05):
    """Panels: one block of rows per metric, layers across (wrapping after MAX_COLUMNS)."""
    cols = min(n_layers, MAX_COLUMNS)
    wraps = -(-n_layers // cols)
    width = min(PAGE_WIDTH, 1.0 * cols + 0.7)
    fig, axes = plt.subplots(
        n_rows_of_metrics * wraps,
        cols,
        figsize=(width, row_height * n_rows_of_metrics * wraps + 0.5),
        squeeze=False,
    )
    positions = {}
    for r in range(n_rows_of_metrics):
        for i in range(n_layers):
            positions[r, i] = axes[r * wraps + i // cols, i % cols]
    for ax in axes.flat:
        if ax not in positions.values():
            ax.set_visible(False)
    return fig, positions


def _label_panel(
    ax: plt.Axes, layer: str, ylabel: str, xlabel: str, row: int, i: int, rows: list, layers: list
) -> None:
    """A panel of a :func:`_grid`: the layer on top (every panel once layers wrap), the row's
    label on its first panel (the others share its y range), the x label on the last row."""
    ax.tick_params(axis="both", pad=1.5)
    if row == 0 or len(layers) > MAX_COLUMNS:
        ax.set_title(layer, pad=2)
    if i % MAX_COLUMNS == 0:
        ax.set_ylabel(ylabel)
    else:
        ax.tick_params(axis="y", labelleft=False)
    if row == len(rows) - 1:
        ax.set_xlabel(xlabel)


def _share_y(axes: list[plt.Axes], shown: list[np.ndarray] | None = None) -> None:
    """One y range for a metric's panels (every layer on the same scale): around ``shown``
    (the values drawn) when given, else around every panel's own range."""
    if shown:
        values = np.concatenate([np.ravel(v) for v in shown])
        values = values[np.isfinite(values)]
        if values.size:
            lo, hi = float(values.min()), float(values.max())
            pad = max(0.06 * (hi - lo), 0.01)
            for ax in axes:
                ax.set_ylim(lo - pad, hi + pad)
            return
    lows, highs = zip(*(ax.get_ylim() for ax in axes), strict=True)
    for ax in axes:
        ax.set_ylim(min(lows), max(highs))


def _mark_chance_outside(ax: plt.Axes, low: np.ndarray, high: np.ndarray) -> None:
    """Where the chance band lies below (or above) the values' y range, say where it is
    instead of squeezing the values to show it."""
    if not (np.isfinite(low).any() and np.isfinite(high).any()):
        return
    bottom, top = ax.get_ylim()
    low, high = np.nanmin(low), np.nanmax(high)
    if high < bottom:
        ax.text(0.03, 0.03, f"chance <= {high:.2g}", transform=ax.transAxes, fontsize=5,
                color="0.35", va="bottom")  # fmt: skip
    elif low > top:
        ax.text(0.03, 0.97, f"chance >= {low:.2g}", transform=ax.transAxes, fontsize=5,
                color="0.35", va="top")  # fmt: skip


def _palette(methods) -> dict[str, tuple]:
    return dict(zip(methods, sns.color_palette("colorblind"), strict=False))


def _remaining_line(ds: xr.Dataset) -> str:
    """'rounds 1-5: 60, 36, ... % of prunable weights remain' where every pruned method has
    the same sparsity per round (else what each does)."""
    sparsity = ds.sparsity.mean("seed")
    pruned = [m for m in ds.pruning.values if float(sparsity.sel(pruning=m).max()) > 0]
    if not pruned:
        return ""
    remaining = 100 * (1 - sparsity.sel(pruning=pruned))
    rounds = [int(r) for r in ds["round"].values if r > 0]
    kept = remaining.sel(round=rounds)
    spread = kept.max("pruning", skipna=False) - kept.min("pruning", skipna=False)
    labels = "; ".join(method_label(m) for m in pruned)  # labels may hold commas
    if bool((spread < 0.5).all()):
        values = ", ".join(f"{float(remaining.sel(round=r).mean()):.3g}" for r in rounds)
        return f"{labels}: rounds {rounds[0]}-{rounds[-1]} keep {values}% of prunable weights"
    return f"{labels}: the weights each keeps per round are in accuracy_vs_sparsity"


def similarity_vs_round(
    ds: xr.Dataset,
    view: str,
    metrics: list[str],
    pdf: str | Path,
    png: str | Path,
    score: str = "similarity",
    title: str = "",
) -> None:
    """Each layer against the same layer of the dense network, round by round, every method
    on the same axes (IMP beside its controls): a row of panels per metric, a panel per layer,
    under one view. Line: mean over seeds; band: :func:`_seed_band`; grey band: the chance
    level (the permutation null's central range, all methods); dashed line and hatched band:
    the dense networks of two seeds compared (mean over seed pairs; their intervals). Open
    markers: a CCA value whose ranks are at least half the probe images (``caution``)."""
    _theme()
    s = _scored(ds.sel(metric=metrics), view, score)
    low, high, band_label = _seed_band(s)
    mean = s.value.mean("seed")
    methods, layers = list(ds.pruning.values), list(s.value.layer.values)
    palette, notes = _palette(methods), Notes()
    fig, panels = _grid(len(metrics), len(layers))
    rounds = s.value["round"].values
    any_caution = False
    for r, metric in enumerate(metrics):
        shown = []
        for i, layer in enumerate(layers):
            ax, cell = panels[r, i], {"metric": metric, "layer": layer}
            undefined = []
            if s.chance is not None:
                ax.fill_between(
                    rounds,
                    s.chance_low.sel(cell).min(("seed", "pruning")).values,
                    s.chance_high.sel(cell).max(("seed", "pruning")).values,
                    color="0.82",
                    lw=0,
                    zorder=0,
                )
            if s.seed_value is not None and np.isfinite(s.seed_value.sel(cell)).any():
                level = float(s.seed_value.sel(cell).mean("seed_pair"))
                ax.axhspan(
                    float(s.seed_low.sel(cell).min()) if s.seed_low is not None else np.nan,
                    float(s.seed_high.sel(cell).max()) if s.seed_high is not None else np.nan,
                    facecolor="none",
                    edgecolor="0.55",
                    hatch="////",
                    lw=0,
                    zorder=0,
                )
                ax.axhline(level, ls="--", lw=0.9, color="0.35", zorder=1)
                shown.append(np.array([level]))
            for method in methods:
                at = {**cell, "pruning": method}
                y = mean.sel(at).values
                # a round the method does not have is no value to explain
                has_round = (s.reason.sel(at) != NO_SUCH_ROUND).any("seed").values
                if (np.isnan(y) & has_round).any():
                    gaps = [
                        int(x)
                        for x, v, has in zip(rounds, y, has_round, strict=True)
                        if np.isnan(v) and has
                    ]
                    number = notes.number(_reason(s.reason.sel(at).sel(round=gaps)))
                    which = "all rounds" if len(gaps) == len(y) else f"round {_span(gaps)}"
                    undefined.append((method_label(method), which, number))
                if np.isnan(y).all():
                    continue
                color = palette[method]
                shown += [y, low.sel(at).values, high.sel(at).values]
                ax.plot(rounds, y, marker="o", ms=2.4, color=color, zorder=3)
                ax.fill_between(
                    rounds, low.sel(at).values, high.sel(at).values, color=color, alpha=0.22, lw=0
                )
                if s.caution is not None:
                    flagged = (s.caution.sel(at) != "").any("seed").values & np.isfinite(y)
                    if flagged.any():
                        any_caution = True
                        ax.plot(
                            rounds[flagged], y[flagged], ls="none", marker="o", ms=3.2,
                            mfc="white", mec=color, mew=0.8, zorder=4,
                        )  # fmt: skip
            _write_undefined(ax, undefined, len(methods))
            ax.set_xticks(rounds)
            _label_panel(ax, layer, metric_label(metric, score), "round", r, i, metrics, layers)
        _share_y([panels[r, i] for i in range(len(layers))], shown)
        if s.chance is not None:
            for i, layer in enumerate(layers):
                cell = {"metric": metric, "layer": layer}
                _mark_chance_outside(
                    panels[r, i], s.chance_low.sel(cell).values, s.chance_high.sel(cell).values
                )
    handles = [
        Line2D([], [], color=palette[m], marker="o", ms=3, label=method_label(m)) for m in methods
    ]
    handles.append(Patch(color="0.6", alpha=0.4, label=band_label))
    if s.chance is not None:
        chance = f"chance: about the central {100 * s.confidence:g}% of permuted-probe values"
        handles.append(Patch(color="0.82", label=chance))
    if s.seed_value is not None and bool(s.seed_value.notnull().any()):
        handles.append(
            Line2D([], [], ls="--", color="0.35", label="dense vs dense of another seed")
        )
        if s.seed_low is not None and bool(s.seed_low.notnull().any()):
            handles.append(
                Patch(facecolor="none", edgecolor="0.55", hatch="////", label="... its intervals")
            )
    if any_caution:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                marker="o",
                mfc="white",
                mec="0.3",
                ms=3.2,
                label="CCA ranks >= half the probe images: read against chance",
            )  # fmt: skip
        )
    heading = title or f"Each layer vs the same layer of the dense network (view: {view})"
    remaining = _remaining_line(ds)
    fig.tight_layout(h_pad=0.6, w_pad=0.4)
    fig.suptitle(heading + (f"\n{remaining}" if remaining else ""), y=1.0, va="bottom")
    notes.add_to(fig, _below(fig, _legend_below(fig, handles)))
    save(fig, pdf, png)


def _write_undefined(ax: plt.Axes, entries: list[tuple[str, str, int]], methods: int) -> None:
    """Say in a panel which lines are undefined where, with the number of the note that says
    why: once for all methods when they share it."""
    if not entries:
        return
    if len(entries) == methods and len({(w, n) for _, w, n in entries}) == 1:
        _, which, number = entries[0]
        lines = [f"{'' if which == 'all rounds' else which + ' '}[{number}]"]
    else:
        lines = [f"{label}:\n{which} [{number}]" for label, which, number in entries]
    whole = len(entries) == methods and all(w == "all rounds" for _, w, _ in entries)
    # a panel with nothing drawn says it in the middle; one with lines, in a corner
    x, y, ha, va = (0.5, 0.5, "center", "center") if whole else (0.97, 0.04, "right", "bottom")
    ax.text(
        x, y, "undefined " + "\n".join(lines), ha=ha, va=va, fontsize=5, color="0.3",
        transform=ax.transAxes,
    )  # fmt: skip


def _legend_below(fig: plt.Figure, handles: list):
    """One legend under the panels, in as many columns as fit the figure's width."""
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(4, len(handles)), 0, -1):
        legend = fig.legend(
            handles=handles, loc="upper center", ncol=ncol, frameon=False,
            bbox_to_anchor=(0.5, 0.0), columnspacing=1.2, handlelength=1.8,
        )  # fmt: skip
        if ncol == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width:
            return legend
        legend.remove()
    return legend


def _span(rounds: list[int]) -> str:
    return ", ".join(str(r) for r in rounds) if len(rounds) < 3 else f"{rounds[0]}-{rounds[-1]}"


def _below(fig: plt.Figure, artist) -> float:
    """The figure y just under ``artist`` (a legend drawn below the axes)."""
    box = artist.get_window_extent(fig.canvas.get_renderer())
    box = box.transformed(fig.transFigure.inverted())
    return box.y0 - 0.01


def layer_heatmaps(
    ds: xr.Dataset,
    view: str,
    metrics: list[str],
    rounds: list[int],
    pdf: str | Path,
    png: str | Path,
    score: str = "similarity",
) -> None:
    """Every layer of the dense network (rows) against every layer of the pruned one
    (columns), mean over seeds, for the chosen rounds of each method, and the same matrix for
    the dense networks of two seeds (mean over seed pairs) beside them: a row per metric, one
    colour scale per row. Grey cells are undefined (numbered notes). The corrected score
    needs a chance level for every pair (``calibrate: all``); with chance levels for matched
    layers only, the matrices show the metric's values, and the title says so."""
    _theme()
    off_diagonal = ds.null_mean.where(ds.layer_a != ds.layer_b) if "null_mean" in ds else None
    raw_instead = score == "corrected" and not (
        off_diagonal is not None and bool(off_diagonal.notnull().any())
    )
    score = "similarity" if raw_instead else score
    s = _scored(ds.sel(metric=metrics), view, score, matched=False)
    mean = s.value.mean("seed")
    panels = [
        (method, r)
        for method in ds.pruning.values
        for r in rounds
        if r in mean["round"].values and np.isfinite(mean.sel(pruning=method, round=r)).any()
    ]
    has_seed = s.seed_value is not None and s.seed_value.sizes.get("seed_pair", 0) > 0
    columns = len(panels) + int(has_seed)
    width = min(PAGE_WIDTH, 1.05 * columns + 0.9)
    fig, axes = plt.subplots(
        len(metrics), columns, figsize=(width, 1.15 * len(metrics) + 0.6), squeeze=False
    )
    notes = Notes()
    layers_a, layers_b = list(mean.layer_a.values), list(mean.layer_b.values)
    for r, metric in enumerate(metrics):
        matrices = [mean.sel(metric=metric, pruning=m, round=k) for m, k in panels]
        reasons = [s.reason.sel(metric=metric, pruning=m, round=k) for m, k in panels]
        titles = [f"{method_label(m).replace(' (', chr(10) + '(')}\nround {k}" for m, k in panels]
        if has_seed:
            matrices.append(s.seed_value.sel(metric=metric).mean("seed_pair"))
            reasons.append(s.seed_reason.sel(metric=metric).isel(seed_pair=0))
            titles.append("dense vs dense\nanother seed")
        finite = np.concatenate([m.values.ravel() for m in matrices])
        finite = finite[np.isfinite(finite)]
        vmin, vmax = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        # a distance's colours reversed: bright is close for every metric
        name = "viridis" if _perfect(metric) or score != "similarity" else "viridis_r"
        cmap = matplotlib.colormaps[name].with_extremes(bad="0.85")
        for c, (matrix, reason, panel_title) in enumerate(
            zip(matrices, reasons, titles, strict=True)
        ):
            ax = axes[r, c]
            image = ax.imshow(
                np.ma.masked_invalid(matrix.values), cmap=cmap, vmin=vmin, vmax=vmax,
                aspect="equal", interpolation="nearest",
            )  # fmt: skip
            undefined = ~np.isfinite(matrix.values)
            if undefined.any():
                first = reason.transpose(..., "layer_a", "layer_b").values.reshape(
                    (-1, *undefined.shape)
                )[0]
                numbers = sorted(
                    {
                        notes.number(str(first[a, b]))
                        for a, b in zip(*np.nonzero(undefined), strict=True)
                    }
                )
                ax.set_xlabel("grey: " + ", ".join(f"[{n}]" for n in numbers), fontsize=5)
            ax.set_xticks(range(len(layers_b)))
            ax.set_yticks(range(len(layers_a)))
            step = max(1, len(layers_a) // 10)
            ax.set_xticklabels(
                [lb if k % step == 0 else "" for k, lb in enumerate(layers_b)],
                rotation=90, fontsize=5,
            )  # fmt: skip
            ax.set_yticklabels(
                [la if k % step == 0 and c == 0 else "" for k, la in enumerate(layers_a)],
                fontsize=5,
            )  # fmt: skip
            ax.tick_params(length=1, pad=1)
            ax.grid(False)
            if r == 0:
                ax.set_title(panel_title, fontsize=6, pad=2)
            if c == 0:
                ax.set_ylabel(metric_label(metric, score) + "\n\ndense layer", fontsize=6)
        bar = fig.colorbar(image, ax=list(axes[r, :]), fraction=0.02, pad=0.01)
        bar.ax.tick_params(labelsize=5, length=1.5)
    title = (
        f"Layer x layer: dense network (rows) vs pruned (columns), mean over seeds (view: {view})"
    )
    if raw_instead:
        title += "\nthe metrics' values: chance levels exist for matched layers only"
    fig.suptitle(title, y=1.02)
    notes.add_to(fig, -0.02)
    save(fig, pdf, png)


def _oriented(ds: xr.Dataset, view: str) -> xr.DataArray:
    """Matched-layer values of every (pruning, round >= 1, layer) cell, mean over seeds, with
    distances negated so that higher means closer for every metric."""
    values = _matched(ds.similarity.sel(view=view)).mean("seed")
    values = values.sel(round=values["round"] > 0)
    sign = xr.DataArray(
        [-1.0 if _perfect(m) == 0.0 else 1.0 for m in values.metric.values],
        coords={"metric": values.metric},
    )
    return values * sign


AGREEMENT_COLUMNS = ["layer", "pruning", "round", "disagreement", "most_similar_by"]
AGREEMENT_COLUMNS += ["least_similar_by"]


def metric_agreement_table(ds: xr.Dataset, view: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How consistently the metrics rank the same cells (layer, method, round >= 1; mean over
    seeds; distances negated): Spearman's rank correlation of every two metrics over the
    cells both define, and, over the cells every metric with a value in this view defines,
    each cell's spread of percentile ranks across metrics (0: every metric puts it at the same
    place among those cells; 1: one metric calls it the most similar and another the least),
    cells with the largest spread first. Empty when fewer than two metrics have values."""
    values = _oriented(ds, view)
    frame = values.stack(cell=("layer", "pruning", "round")).transpose("cell", "metric").to_pandas()
    metrics = list(frame.columns)
    correlation = pd.DataFrame(np.nan, index=metrics, columns=metrics)
    for a in metrics:
        for b in metrics:
            both = frame[a].notna() & frame[b].notna()
            x, y = frame.loc[both, a], frame.loc[both, b]
            if both.sum() >= 3 and x.nunique() > 1 and y.nunique() > 1:
                correlation.loc[a, b] = spearmanr(x, y).statistic
    # percentile ranks among the cells every metric defines: one population for all metrics
    defined = [m for m in metrics if frame[m].notna().any()]
    shared = frame[defined].dropna()
    if len(defined) < 2 or len(shared) < 2:
        return correlation, pd.DataFrame(columns=AGREEMENT_COLUMNS)
    percentile = shared.rank().sub(1).div(len(shared) - 1)
    rows = pd.DataFrame(
        {
            "disagreement": percentile.max(axis=1) - percentile.min(axis=1),
            "most_similar_by": percentile.idxmax(axis=1),
            "least_similar_by": percentile.idxmin(axis=1),
        }
    )
    rows = pd.concat([rows, percentile.add_prefix("rank_")], axis=1).reset_index()
    rows = rows.dropna(subset=["disagreement"]).sort_values(
        ["disagreement", "layer", "pruning", "round"], ascending=[False, True, True, True]
    )
    return correlation, rows.reset_index(drop=True)


def metric_agreement(
    ds: xr.Dataset, view: str, pdf: str | Path, png: str | Path, csv: str | Path, top: int = 6
) -> None:
    """Rank correlations between metrics over the (layer, method, round) cells of one view,
    beside the cells they disagree on most (:func:`metric_agreement_table`; the whole table
    goes to ``csv``)."""
    _theme()
    correlation, rows = metric_agreement_table(ds, view)
    labels = [METRIC_LABELS.get(m, m).replace(" (rad)", "") for m in correlation.index]
    labels = [
        f"-{lb}" if _perfect(m) == 0.0 else lb
        for lb, m in zip(labels, correlation.index, strict=True)
    ]
    fig = plt.figure(figsize=(PAGE_WIDTH, 3.1))
    grid = fig.add_gridspec(1, 2, width_ratios=(1.0, 1.15), wspace=0.35)
    ax = fig.add_subplot(grid[0])
    cmap = sns.color_palette("vlag_r", as_cmap=True).with_extremes(bad="0.85")
    sns.heatmap(
        correlation.astype(float), ax=ax, vmin=-1, vmax=1, cmap=cmap, annot=True, fmt=".2f",
        annot_kws={"fontsize": 5}, xticklabels=labels, yticklabels=labels, square=True,
        cbar_kws={"shrink": 0.7, "label": "Spearman rank correlation"}, linewidths=0.3,
    )  # fmt: skip
    ax.tick_params(labelsize=5.5, length=0)
    n_cells = int(_oriented(ds, view).stack(cell=("layer", "pruning", "round")).sizes["cell"])
    ax.set_title(
        f"over the cells both metrics define, of {n_cells}\n"
        "(layer x method x round >= 1; '-': a distance, negated)",
        fontsize=6.5,
    )
    table_ax = fig.add_subplot(grid[1])
    table_ax.axis("off")
    shown = rows.head(top)
    cells = [
        [
            str(row.layer),
            method_label(str(row.pruning)).replace(" (", "\n("),
            str(int(row.round)),
            f"{row.disagreement:.2f}",
            METRIC_LABELS.get(row.most_similar_by, row.most_similar_by).replace(" (rad)", ""),
            METRIC_LABELS.get(row.least_similar_by, row.least_similar_by).replace(" (rad)", ""),
        ]
        for row in shown.itertuples()
    ]
    if not cells:
        table_ax.text(0.5, 0.6, "no disagreement to show:\nfewer than two metrics have values here",
                      ha="center", va="center", fontsize=6.5, color="0.3")  # fmt: skip
    else:
        table = table_ax.table(
            cellText=cells,
            colLabels=["layer", "method", "round", "spread", "ranks it\nhighest", "ranks it\nlowest"],
            loc="upper center", cellLoc="center", colWidths=[0.13, 0.2, 0.1, 0.11, 0.23, 0.23],
        )  # fmt: skip
        table.auto_set_font_size(False)
        table.set_fontsize(5.5)
        table.scale(1.0, 1.5)
    table_ax.set_title(
        "where they disagree most: spread across metrics of a cell's percentile rank\n"
        f"among the {len(rows)} cells every metric defines (1 = most similar by one, least by "
        "another)",
        fontsize=6.5,
    )
    fig.suptitle(f"How far the similarity metrics agree (view: {view})", y=1.03)
    save(fig, pdf, png)
    with atomic_path(csv) as tmp:
        rows.to_csv(tmp, index=False, float_format="%.4g")


def _log_percent_axis(ax: plt.Axes, values: np.ndarray) -> None:
    """A log axis of percentages with ticks at 1-2-5 steps inside the data and no minor
    labels (which run together)."""
    ax.set_xscale("log")
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    ticks = []
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8)):  # the second: under a decade
        ticks = [
            m * 10.0**e
            for e in range(-3, 3)
            for m in mantissas
            if lo / 1.3 <= m * 10.0**e <= hi * 1.3
        ]
        if len(ticks) >= 3:
            break
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(hi * 1.25, lo / 1.25)  # inverted: pruning moves right


def accuracy_vs_sparsity(ds: xr.Dataset, pdf: str | Path, png: str | Path) -> None:
    """Test accuracy vs the fraction of prunable weights remaining and vs the fraction of FLOPs
    remaining (log scales), one line per method through its rounds: unstructured and
    structured pruning on the axes that compare them. Points are means over seeds; bars span
    the seeds' range in both directions (structured pruning reaches a different size per
    seed); the dotted line is the dense networks' mean accuracy."""
    frame = _accuracy_frame(ds)
    stats = frame.groupby(["pruning", "round"])[["weights", "flops", "accuracy"]].agg(
        ["mean", "min", "max"]
    )
    _theme()
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 2.5), sharey=True)
    palette = _palette(ds.pruning.values)
    dense = frame[frame["round"] == 0]["accuracy"].mean()
    for ax, column, label in (
        (axes[0], "weights", "prunable weights remaining (%)"),
        (axes[1], "flops", "FLOPs remaining (%)"),
    ):
        for method, rows in stats.groupby(level="pruning", sort=False):
            x, y = rows[column], rows["accuracy"]
            ax.errorbar(
                x["mean"], y["mean"],
                xerr=[x["mean"] - x["min"], x["max"] - x["mean"]],
                yerr=[y["mean"] - y["min"], y["max"] - y["mean"]],
                marker="o", ms=3, capsize=1.5, lw=1.0, elinewidth=0.6,
                color=palette[method], label=method_label(method),
            )  # fmt: skip
        ax.axhline(dense, ls=":", color="0.3", lw=0.9)
        _log_percent_axis(ax, frame[column].to_numpy())
        ax.set_xlabel(label)
    axes[0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], ls=":", color="0.3"))
    labels.append("dense network (mean over seeds)")
    for handle, label in zip(handles, labels, strict=True):
        handle.set_label(label)
    _legend_below(fig, handles)
    fig.suptitle("Accuracy under pruning (points: mean over seeds; bars: range over seeds)")
    fig.tight_layout()
    save(fig, pdf, png)


def _accuracy_frame(ds: xr.Dataset) -> pd.DataFrame:
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
    return frame


def accuracy_lost(ds: xr.Dataset) -> xr.DataArray:
    """Percentage points of test accuracy each model lost against its seed's dense network."""
    accuracy = 100 * ds.test_accuracy
    return accuracy.sel(round=0) - accuracy


def similarity_vs_accuracy(
    ds: xr.Dataset,
    view: str,
    metrics: list[str],
    pdf: str | Path,
    png: str | Path,
    score: str = "similarity",
) -> None:
    """Each layer's similarity to its dense self against the test accuracy lost (percentage
    points vs the same seed's dense network), both means over seeds: a line per method from
    the dense network (0 lost) through its rounds, a panel per layer, a row per metric. Does a
    representation move before the accuracy does?"""
    _theme()
    s = _scored(ds.sel(metric=metrics), view, score)
    mean = s.value.mean("seed")
    lost = accuracy_lost(ds).mean("seed")
    methods, layers = list(ds.pruning.values), list(mean.layer.values)
    palette, notes = _palette(methods), Notes()
    fig, panels = _grid(len(metrics), len(layers))
    for r, metric in enumerate(metrics):
        for i, layer in enumerate(layers):
            ax, cell = panels[r, i], {"metric": metric, "layer": layer}
            undefined = []
            for method in methods:
                at = {**cell, "pruning": method}
                x, y = lost.sel(pruning=method).values, mean.sel(at).values
                if np.isnan(y).all():
                    number = notes.number(_reason(s.reason.sel(at)))
                    undefined.append((method_label(method), "all rounds", number))
                    continue
                ax.plot(x, y, marker="o", ms=2.2, color=palette[method], lw=0.9)
                last = np.flatnonzero(np.isfinite(x) & np.isfinite(y))[-1:]  # its own last round
                ax.plot(x[last], y[last], marker="s", ms=3.2, color=palette[method], ls="none")
            _write_undefined(ax, undefined, len(methods))
            ax.axvline(0, color="0.5", lw=0.6)
            ylabel = metric_label(metric, score)
            _label_panel(ax, layer, ylabel, "accuracy lost (pp)", r, i, metrics, layers)
        _share_y([panels[r, i] for i in range(len(layers))])
    handles = [
        Line2D([], [], color=palette[m], marker="o", ms=3, label=method_label(m)) for m in methods
    ]
    handles.append(Line2D([], [], ls="none", marker="s", color="0.3", ms=3.2, label="last round"))
    fig.tight_layout(h_pad=0.6, w_pad=0.4)
    fig.suptitle(
        f"Similarity to the dense layer vs accuracy lost, mean over seeds (view: {view})",
        y=1.0,
        va="bottom",
    )
    notes.add_to(fig, _below(fig, _legend_below(fig, handles)))
    save(fig, pdf, png)


UNIT_KINDS = {
    "inactive": "zero on every probe image (never fires)",
    "constant": "the same non-zero value on every probe image",
}


def units_per_round(ds: xr.Dataset, pdf: str | Path, png: str | Path) -> None:
    """How many units of each pruned layer carry no information about the probe images, round
    by round (mean over seeds): those that never fire and those stuck at one non-zero value.
    Units are channels where the channels view was computed (a conv layer's filters), else
    the first view's."""
    view = "channels" if "channels" in ds.view.values else str(ds.view.values[0])
    layers = [str(layer) for layer in ds.layer_b.values]
    kinds = [k for k in UNIT_KINDS if f"{k}_b" in ds]
    if not kinds:
        raise ValueError("the aggregate holds no unit counts (inactive_b, constant_b)")
    _theme()
    fig, panels = _grid(len(kinds), len(layers), row_height=0.95)
    palette = _palette(ds.pruning.values)
    for r, kind in enumerate(kinds):
        counts = ds[f"{kind}_b"].sel(view=view).mean("seed")
        for i, layer in enumerate(layers):
            ax = panels[r, i]
            for method in ds.pruning.values:
                y = counts.sel(pruning=method, layer_b=layer)
                ax.plot(y["round"].values, y.values, marker="o", ms=2.2, color=palette[method])
            ax.set_xticks(ds["round"].values)
            ax.set_ylim(0, max(1.0, 1.1 * float(counts.max())))
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4, integer=True))
            _label_panel(ax, layer, f"units {kind}", "round", r, i, kinds, layers)
    handles = [
        Line2D([], [], color=palette[m], marker="o", ms=3, label=method_label(m))
        for m in ds.pruning.values
    ]
    fig.suptitle(
        f"Units (view: {view}) that carry nothing about the probe images, mean over seeds\n"
        + "; ".join(f"{k}: {v}" for k, v in UNIT_KINDS.items() if k in kinds),
        y=1.02,
    )
    fig.tight_layout(h_pad=0.6, w_pad=0.4)
    _legend_below(fig, handles)
    save(fig, pdf, png)


def key_numbers(
    ds: xr.Dataset, metrics: list[str], html_path: str | Path, csv_path: str | Path
) -> None:
    """The run's key numbers as an HTML page (for the report) and a CSV: accuracy and size
    per method and round; at each method's last round, each layer's similarity to its dense
    self for the main metrics in every view (the metric's values, mean over seeds, with the
    band of the main figure and that model's chance level), beside the other seed's dense
    network; and how many values are undefined, by reason."""
    accuracy = _accuracy_frame(ds)
    per_round = (
        accuracy.groupby(["pruning", "round"], sort=False)[["accuracy", "weights", "flops"]]
        .agg(["mean", "min", "max"])
        .round(2)
    )
    per_round.columns = [f"{a}_{b}" for a, b in per_round.columns]
    per_round = per_round.reset_index()
    per_round.insert(1, "a round is", per_round["pruning"].map(round_label))
    per_round["pruning"] = per_round["pruning"].map(method_label)
    has_accuracy = ds.test_accuracy.notnull().any("seed")
    last = {  # each method's own last round
        method: int(ds["round"].where(has_accuracy.sel(pruning=method), drop=True).max())
        for method in ds.pruning.values
    }
    rows = []
    for view in ds.view.values:
        s = _scored(ds.sel(metric=metrics), str(view), "similarity")
        mean = s.value.mean("seed")
        low, high, _ = _seed_band(s)
        for metric in metrics:
            for layer in mean.layer.values:
                cell = {"metric": metric, "layer": layer}
                row = {"view": str(view), "metric": metric, "layer": str(layer)}
                for method in ds.pruning.values:
                    at = {**cell, "pruning": method, "round": last[method]}
                    value = float(mean.sel(at))
                    text = "undefined"
                    if np.isfinite(value):
                        text = f"{value:.3f} [{float(low.sel(at)):.3f}, {float(high.sel(at)):.3f}]"
                        if s.chance is not None:
                            text += f", chance {float(s.chance.sel(at).mean('seed')):.3f}"
                    row[f"{method_label(method)}, round {last[method]}"] = text
                if s.seed_value is not None:
                    row["dense vs other seed"] = (
                        f"{float(s.seed_value.sel(cell).mean('seed_pair')):.3f}"
                    )
                rows.append(row)
    similarity = pd.DataFrame(rows)
    reasons = pd.Series([str(r) for r in np.ravel(ds.nan_reason.values) if str(r)], dtype=object)
    undefined = (
        reasons.map(reason_kind).value_counts().rename_axis("reason").reset_index(name="values")
    )
    settings = settings_of(ds)
    with atomic_path(csv_path) as tmp:
        similarity.to_csv(tmp, index=False)
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>key numbers</title>",
        "<style>body{font-family:sans-serif;font-size:13px} table{border-collapse:collapse;"
        "margin-bottom:1.5em} td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
        "th{background:#eee} td:first-child,th:first-child{text-align:left}</style></head><body>",
        f"<h2>Key numbers</h2><p>{int(ds.attrs.get('n_samples', 0))} probe images; "
        f"seeds {', '.join(str(int(x)) for x in ds.seed.values)}; "
        f"{settings.get('permutations', 0)} permutations and {settings.get('bootstrap', 0)} "
        f"bootstrap resamples per calibrated value.</p>",
        "<h3>Accuracy and size (%, mean / min / max over seeds)</h3>",
        per_round.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.2f}"),
        "<h3>Each method's last round: each layer vs its dense self, the metric's value (mean "
        "over seeds) [band as in the main figure], chance level</h3>",
        similarity.to_html(index=False, na_rep="", escape=True),
        "<h3>Undefined values, by reason</h3>",
        undefined.to_html(index=False, escape=True) if len(undefined) else "<p>none</p>",
        "</body></html>",
    ]
    with atomic_path(html_path) as tmp:
        Path(tmp).write_text("\n".join(page), encoding="utf-8")
