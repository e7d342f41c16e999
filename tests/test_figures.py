"""Figures: what they draw (bands, chance, undefined values, readable axes), that they fit a
journal page in TrueType fonts, and the numbers behind them (metric agreement, chance-corrected
scores, key numbers) against independent computations.

The aggregate here is built by hand with the aggregate file's layout and known values; the
smoke workflow's tests draw every figure from a real one and open the report in a browser.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.text import Text
from scipy.stats import spearmanr
from scipy.stats import t as student_t

from prunesim import figures
from prunesim.config import ConfigError, main_metrics

SEEDS, METHODS, ROUNDS = [0, 1], ["imp", "random_layerwise"], [0, 1, 2]
METRICS, LAYERS = ["cka_linear", "svcca", "procrustes"], ["conv1", "conv2", "fc"]
CCA_REASON = (
    "CCA degenerate: rank 99 + rank 12 >= n = 100 forces canonical correlations of 1; "
    "use a view with fewer features (gap, channels) or more samples"
)


def _aggregate(seeds=SEEDS) -> xr.Dataset:
    """An aggregate with the aggregate file's dims and variables: linear CKA falls with round
    and depth, random pruning more than IMP; procrustes = arccos(CKA) (a distance that ranks
    every cell as CKA does); SVCCA is undefined on conv1 (a CCA on more features than images)
    and otherwise ranks cells differently."""
    rng = np.random.default_rng(0)
    shape = (len(seeds), len(METHODS), len(ROUNDS), len(METRICS), 1, len(LAYERS), len(LAYERS))
    value = np.empty(shape)
    for s in range(len(seeds)):
        for m in range(len(METHODS)):
            for r in ROUNDS:
                for a in range(len(LAYERS)):
                    for b in range(len(LAYERS)):
                        cka = 1.0 - 0.04 * r * (1 + m) * (1 + b) - 0.1 * abs(a - b)
                        cka -= 0.002 * s * r
                        value[s, m, r, 0, 0, a, b] = cka
                        value[s, m, r, 1, 0, a, b] = 1.0 - 0.05 * r * (3 - b) - 0.01 * m
                        value[s, m, r, 2, 0, a, b] = np.arccos(np.clip(cka, -1, 1))
    value[:, :, :, 1, :, 0, :] = np.nan
    value[:, :, :, 1, :, :, 0] = np.nan
    dims = ("seed", "pruning", "round", "metric", "view", "layer_a", "layer_b")
    coords = {
        "seed": seeds,
        "pruning": METHODS,
        "round": ROUNDS,
        "metric": METRICS,
        "view": ["flatten"],
        "layer_a": LAYERS,
        "layer_b": LAYERS,
    }
    null = np.where(np.isnan(value), np.nan, 0.2)
    null[:, :, :, 2] = np.where(np.isnan(value[:, :, :, 2]), np.nan, 1.4)
    reason = np.where(np.isnan(value), CCA_REASON, "")
    half = 0.01 + 0.01 * rng.random(shape)
    perfect = np.array([1.0, 1.0, 0.0])[None, None, None, :, None, None, None]
    ds = xr.Dataset(
        {
            "similarity": (dims, value),
            "nan_reason": (dims, reason),
            "caution": (dims, np.full(shape, "")),
            "null_mean": (dims, null),
            "null_std": (dims, np.where(np.isnan(value), np.nan, 0.02)),
            "p_value": (dims, np.where(np.isnan(value), np.nan, 1 / 21)),
            "corrected": (dims, (value - null) / (perfect - null)),
            "bootstrap_std": (dims, half / 1.96),
            "bootstrap_bias": (dims, np.zeros(shape)),
            "ci_low": (dims, value - half),
            "ci_high": (dims, value + half),
        },
        coords=coords,
    )
    pair = ("seed_pair", "metric", "view", "layer_a", "layer_b")
    seed_value = value[0, 0, 1][None] - 0.05
    ds["seed_similarity"] = (pair, seed_value)
    ds["seed_nan_reason"] = (pair, reason[0, 0, 1][None])
    ds["seed_ci_low"] = (pair, seed_value - 0.01)
    ds["seed_ci_high"] = (pair, seed_value + 0.01)
    ds["seed_null_mean"] = (pair, null[0, 0, 1][None])
    ds = ds.assign_coords(seed_pair=["0-1"])
    sparsity = np.array([[0.0, 0.5, 0.75]] * len(METHODS))
    run = ("seed", "pruning", "round")
    accuracy = 0.97 - 0.01 * np.arange(3)[None, None, :] * (1 + np.arange(2))[None, :, None]
    ds = ds.assign_coords(
        test_accuracy=(run, np.broadcast_to(accuracy, (len(seeds), 2, 3)).copy()),
        sparsity=(run, np.broadcast_to(sparsity, (len(seeds), 2, 3)).copy()),
        flops_remaining=(run, np.broadcast_to(1 - 0.8 * sparsity, (len(seeds), 2, 3)).copy()),
    )
    units = ("seed", "pruning", "round", "view", "layer_b")
    ds["inactive_b"] = (units, np.zeros((len(seeds), 2, 3, 1, 3)))
    ds["constant_b"] = (units, np.ones((len(seeds), 2, 3, 1, 3)))
    ds.attrs["settings"] = json.dumps({"confidence": 0.95, "permutations": 20, "bootstrap": 10})
    ds.attrs["n_samples"] = 100
    return ds


@pytest.fixture
def drawn(monkeypatch):
    """The figures a drawing function made, instead of saving them."""
    made = []
    monkeypatch.setattr(figures, "save", lambda fig, pdf, png: made.append(fig))
    return made


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _draw_every_figure(ds: xr.Dataset, tmp_path) -> None:
    metrics = ["cka_linear", "svcca"]
    figures.similarity_vs_round(ds, "flatten", metrics, "a.pdf", "a.png")
    figures.similarity_vs_round(ds, "flatten", ["procrustes"], "b.pdf", "b.png")
    figures.layer_heatmaps(ds, "flatten", metrics, [1, 2], "c.pdf", "c.png")
    figures.metric_agreement(ds, "flatten", "d.pdf", "d.png", tmp_path / "d.csv")
    figures.similarity_vs_accuracy(ds, "flatten", metrics, "e.pdf", "e.png")
    figures.accuracy_vs_sparsity(ds, "f.pdf", "f.png")
    figures.units_per_round(ds, "g.pdf", "g.png")


def test_every_figure_fits_a_journal_page_with_legible_text(drawn, tmp_path):
    _draw_every_figure(_aggregate(), tmp_path)
    assert len(drawn) == 7
    for fig in drawn:
        assert fig.get_size_inches()[0] <= figures.PAGE_WIDTH + 1e-9
        small = [t.get_text() for t in _texts(fig) if t.get_fontsize() < 5]
        assert not small, small


def test_saved_pdfs_embed_truetype_fonts_not_type3(tmp_path):
    ds = _aggregate()
    figures.similarity_vs_round(
        ds, "flatten", ["cka_linear"], tmp_path / "f.pdf", tmp_path / "f.png"
    )
    pdf = (tmp_path / "f.pdf").read_bytes()
    assert b"/Type3" not in pdf
    assert b"/TrueType" in pdf or b"/CIDFontType2" in pdf
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")


def test_undefined_values_are_marked_in_the_panel_and_explained_under_the_figure(drawn):
    figures.similarity_vs_round(_aggregate(), "flatten", ["cka_linear", "svcca"], "a", "b")
    texts = [t.get_text() for t in _texts(drawn[0])]
    assert "undefined [1]" in texts  # SVCCA on conv1: every method, every round
    note = " ".join(next(t for t in texts if t.startswith("[1] undefined:")).split())
    assert "CCA degenerate: rank # + rank # >= n = #" in note
    assert "more samples" in note  # the whole reason, not cut


def test_main_figure_legend_says_what_every_band_and_line_is(drawn):
    figures.similarity_vs_round(_aggregate(), "flatten", ["cka_linear"], "a", "b")
    legend = " | ".join(t.get_text() for t in drawn[0].legends[0].get_texts())
    for words in (
        "IMP",
        "random (layerwise)",
        "the seeds' 95% bootstrap intervals, lowest to highest",
        "chance: about the central 95% of permuted-probe values",
        "dense vs dense of another seed",
    ):
        assert words in legend, legend
    title = drawn[0]._suptitle.get_text()
    assert "rounds 1-2 keep 50, 25% of prunable weights" in title
    assert "IMP; random (layerwise): rounds" in title  # labels may hold commas


def test_band_is_the_seeds_bootstrap_range_with_two_seeds_and_a_t_interval_with_three():
    ds = _aggregate()
    s = figures._scored(ds, "flatten", "similarity")
    low, high, _ = figures._seed_band(s)
    cell = {"metric": "cka_linear", "layer": "fc", "pruning": "imp", "round": 2}
    ci_low = ds.ci_low.sel(view="flatten", layer_a="fc", layer_b="fc", metric="cka_linear")
    ci_high = ds.ci_high.sel(view="flatten", layer_a="fc", layer_b="fc", metric="cka_linear")
    at = {"pruning": "imp", "round": 2}
    assert float(low.sel(cell)) == pytest.approx(float(ci_low.sel(at).min()))
    assert float(high.sel(cell)) == pytest.approx(float(ci_high.sel(at).max()))

    three = _aggregate(seeds=[0, 1, 2])
    values = [0.8, 0.9, 1.0]
    three["similarity"].loc[{"metric": "cka_linear", "layer_a": "fc", "layer_b": "fc"}] = (
        xr.DataArray(values, dims="seed", coords={"seed": [0, 1, 2]})
    )
    low, high, label = figures._seed_band(figures._scored(three, "flatten", "similarity"))
    half = student_t.ppf(0.975, 2) * 0.1 / np.sqrt(3)  # sd of (0.8, 0.9, 1.0) is 0.1
    assert float(low.sel(cell)) == pytest.approx(0.9 - half)
    assert float(high.sel(cell)) == pytest.approx(0.9 + half)
    assert label == "95% t interval over 3 seeds"


def test_corrected_score_is_the_aggregates_corrected_value_with_chance_at_zero():
    ds = _aggregate()
    s = figures._scored(ds, "flatten", "corrected")
    expected = figures._matched(ds.corrected.sel(view="flatten"))
    np.testing.assert_allclose(s.value.values, expected.values)
    assert float(np.nanmax(np.abs(s.chance.values))) == 0.0
    # a distance's interval flips under the correction and is reordered
    assert bool((s.low <= s.high).where(s.value.notnull(), True).all())
    # procrustes: (value - 1.4) / (0 - 1.4) is 1 for identical layers (value 0) at round 0
    first = s.value.sel(metric="procrustes", round=0, layer="fc")
    np.testing.assert_allclose(first.values, 1.0)


def test_corrected_score_without_chance_levels_is_refused():
    ds = _aggregate().drop_vars(["null_mean", "null_std"])
    with pytest.raises(ValueError, match="needs chance levels"):
        figures._scored(ds, "flatten", "corrected")


def _oriented_cells(ds: xr.Dataset) -> pd.DataFrame:
    """Independently: every (layer, method, round >= 1) cell's mean over seeds, per metric,
    distances negated, by explicit loops."""
    rows = []
    for layer in LAYERS:
        for method in METHODS:
            for r in ROUNDS[1:]:
                row = {}
                for metric in METRICS:
                    v = ds.similarity.sel(
                        view="flatten", layer_a=layer, layer_b=layer, pruning=method, round=r,
                        metric=metric,
                    ).values  # fmt: skip
                    mean = np.nanmean(v) if np.isfinite(v).any() else np.nan
                    row[metric] = -mean if metric == "procrustes" else mean
                rows.append(row)
    return pd.DataFrame(rows)


def test_metric_agreement_is_spearman_over_the_cells_both_metrics_define():
    ds = _aggregate()
    correlation, rows = figures.metric_agreement_table(ds, "flatten")
    cells = _oriented_cells(ds)
    for a in METRICS:
        for b in METRICS:
            both = cells[a].notna() & cells[b].notna()
            expected = spearmanr(cells[a][both], cells[b][both]).statistic
            assert correlation.loc[a, b] == pytest.approx(expected), (a, b)
    # procrustes = arccos(CKA): negated, it ranks every cell exactly as CKA does
    assert correlation.loc["cka_linear", "procrustes"] == pytest.approx(1.0)
    assert correlation.loc["cka_linear", "svcca"] < 1.0
    # SVCCA is undefined on conv1: the ranks are taken over the cells every metric defines
    assert "conv1" not in set(rows["layer"]) and len(rows) == 2 * len(METHODS) * 2
    assert rows["disagreement"].is_monotonic_decreasing
    assert rows["disagreement"].between(0, 1).all()


def test_metric_disagreement_finds_the_cell_two_metrics_rank_at_opposite_ends():
    ds = _aggregate()
    # make IMP round 1 of fc the most similar cell by SVCCA and the least by CKA and procrustes
    at = {"view": "flatten", "layer_a": "fc", "layer_b": "fc", "pruning": "imp", "round": 1}
    ds["similarity"].loc[{**at, "metric": "svcca"}] = 1.5
    ds["similarity"].loc[{**at, "metric": "cka_linear"}] = -1.0
    ds["similarity"].loc[{**at, "metric": "procrustes"}] = 3.0
    _, rows = figures.metric_agreement_table(ds, "flatten")
    top = rows.iloc[0]
    assert (top.layer, top.pruning, top["round"]) == ("fc", "imp", 1)
    assert top.disagreement == pytest.approx(1.0)
    assert top.most_similar_by == "svcca"
    assert top.least_similar_by in {"cka_linear", "procrustes"}


def test_metric_agreement_writes_the_whole_table(tmp_path, drawn):
    ds = _aggregate()
    figures.metric_agreement(ds, "flatten", "a", "b", tmp_path / "agree.csv")
    table = pd.read_csv(tmp_path / "agree.csv")
    assert len(table) == (len(LAYERS) - 1) * len(METHODS) * (len(ROUNDS) - 1)  # not conv1
    assert {"rank_cka_linear", "rank_svcca", "rank_procrustes"} <= set(table.columns)


def test_accuracy_axes_have_distinct_readable_ticks_and_method_names(drawn):
    figures.accuracy_vs_sparsity(_aggregate(), "a", "b")
    fig = drawn[0]
    fig.canvas.draw()
    for ax in fig.axes:
        major = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert len(major) >= 3 and len(set(major)) == len(major), major
        assert all(re.fullmatch(r"\d+(\.\d+)?", label) for label in major), major
        assert not [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["IMP", "random (layerwise)"]


def test_accuracy_lost_is_against_the_same_seeds_dense_network():
    ds = _aggregate()
    lost = figures.accuracy_lost(ds)
    np.testing.assert_allclose(lost.sel(round=0).values, 0.0)
    # random_layerwise loses 2 points a round in this aggregate, IMP 1
    np.testing.assert_allclose(lost.sel(pruning="random_layerwise", round=2).values, 4.0)
    np.testing.assert_allclose(lost.sel(pruning="imp", round=1).values, 1.0)


def test_heatmaps_put_the_seed_matrix_beside_the_chosen_rounds(drawn):
    figures.layer_heatmaps(_aggregate(), "flatten", ["cka_linear", "svcca"], [2], "a", "b")
    titles = [ax.get_title() for ax in drawn[0].axes if ax.get_title()]
    assert titles == [
        "IMP\nround 2",
        "random\n(layerwise)\nround 2",
        "dense vs dense\nanother seed",
    ]
    labels = " ".join(ax.get_xlabel() for ax in drawn[0].axes)
    assert "grey: [1]" in labels  # SVCCA's undefined conv1 row and column
    assert any("[1] undefined: CCA degenerate" in t.get_text() for t in _texts(drawn[0]))


def test_key_numbers_page_and_table(tmp_path):
    ds = _aggregate()
    html, csv = tmp_path / "key.html", tmp_path / "key.csv"
    figures.key_numbers(ds, ["cka_linear", "svcca"], html, csv)
    page = html.read_text()
    assert "Accuracy and size" in page and "random (layerwise)" in page
    assert "95.00" in page and "93.00" in page  # round 2 accuracy (%): IMP, random
    table = pd.read_csv(csv)
    assert len(table) == 2 * len(LAYERS)  # one view x two metrics x layers
    fc = table[(table.metric == "cka_linear") & (table.layer == "fc")].iloc[0]
    at = {"metric": "cka_linear", "layer_a": "fc", "layer_b": "fc", "pruning": "imp", "round": 2}
    mean = float(ds.similarity.sel(at).mean())
    assert fc["IMP, round 2"].startswith(f"{mean:.3f} [")
    conv1 = table[(table.metric == "svcca") & (table.layer == "conv1")].iloc[0]
    assert conv1["IMP, round 2"] == "undefined"
    assert "CCA degenerate: rank # + rank # &gt;= n = #" in page


def test_main_metrics_default_to_linear_cka_and_svcca_where_computed():
    assert main_metrics(["cca_mean", "svcca", "cka_linear"]) == ["cka_linear", "svcca"]
    assert main_metrics(["nbs", "pwcca", "cca_mean"]) == ["nbs", "pwcca"]
    assert main_metrics(["svcca", "nbs"], ["nbs"]) == ["nbs"]
    with pytest.raises(ConfigError, match="not among the computed"):
        main_metrics(["svcca"], ["cka_linear"])
    ds = _aggregate()
    assert figures.companion_metrics(ds) == ["procrustes"]


def test_metric_agreement_with_one_metric_draws_and_writes_an_empty_table(tmp_path, drawn):
    ds = _aggregate().sel(metric=["cka_linear"])
    figures.metric_agreement(ds, "flatten", "a", "b", tmp_path / "agree.csv")
    assert pd.read_csv(tmp_path / "agree.csv").empty
    assert any("fewer than two metrics" in t.get_text() for t in _texts(drawn[0]))


def test_a_metric_undefined_everywhere_is_said_not_drawn(drawn):
    ds = _aggregate()
    svcca = {"metric": "svcca"}
    ds["similarity"].loc[svcca] = np.nan
    ds["seed_similarity"].loc[svcca] = np.nan
    ds["nan_reason"].loc[svcca] = CCA_REASON
    figures.similarity_vs_round(ds, "flatten", ["cka_linear", "svcca"], "a", "b")
    assert sum(t.get_text() == "undefined [1]" for t in _texts(drawn[0])) == len(LAYERS)


def test_without_bootstrap_or_chance_the_legend_names_only_what_is_drawn(drawn):
    ds = _aggregate()
    for name in ("ci_low", "ci_high", "null_mean", "null_std", "seed_ci_low", "seed_ci_high"):
        ds[name] = xr.full_like(ds[name], np.nan)  # what permutations: 0, bootstrap: 0 leave
    figures.similarity_vs_round(ds, "flatten", ["cka_linear"], "a", "b")
    legend = [t.get_text() for t in drawn[0].legends[0].get_texts()]
    assert "range over seeds" in legend
    assert not [t for t in legend if "chance" in t or "bootstrap" in t or "intervals" in t]


def test_heatmaps_under_the_corrected_score_fall_back_to_values_without_every_pairs_chance(
    drawn,
):
    ds = _aggregate()
    ds["null_mean"] = ds.null_mean.where(ds.layer_a == ds.layer_b)  # calibrate: matched
    figures.layer_heatmaps(ds, "flatten", ["cka_linear"], [2], "a", "b", score="corrected")
    title = drawn[0]._suptitle.get_text()
    assert "chance levels exist for matched layers only" in title
    shown = drawn[0].axes[0].images[0].get_array()
    expected = ds.similarity.sel(view="flatten", metric="cka_linear", pruning="imp", round=2)
    np.testing.assert_allclose(shown, expected.mean("seed").values)


def test_key_numbers_take_each_methods_own_last_round(tmp_path):
    from prunesim.aggregate import NO_SUCH_ROUND

    ds = _aggregate()
    gone = {"pruning": "random_layerwise", "round": 2}
    ds["similarity"].loc[gone] = np.nan
    ds["nan_reason"].loc[gone] = NO_SUCH_ROUND
    accuracy = ds.test_accuracy.copy()
    accuracy.loc[gone] = np.nan
    ds = ds.assign_coords(test_accuracy=accuracy)
    figures.key_numbers(ds, ["cka_linear"], tmp_path / "k.html", tmp_path / "k.csv")
    table = pd.read_csv(tmp_path / "k.csv")
    assert {"IMP, round 2", "random (layerwise), round 1"} <= set(table.columns)
    fc = table[table.layer == "fc"].iloc[0]
    assert fc["random (layerwise), round 1"] != "undefined"
    assert ", chance 0.200" in fc["IMP, round 2"]
