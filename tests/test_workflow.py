"""The whole DAG on config/smoke.yaml, run by real snakemake in a temporary copy of the workflow.

Every test gets its own copy of one completed run (``finished_smoke_run``, run once per
session), so a test may rerun or change jobs without touching the others, in any order.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import browser
import numpy as np
import pytest
import xarray as xr
import zarr
from smoke_workflow import (
    EXPERIMENT,
    FIGURE_RULES,
    ROOT,
    copy_run,
    planned_jobs,
    snakemake,
    write_config,
)

from prunesim.checkpoint import load_checkpoint
from prunesim.metrics import METRICS, REGISTRY
from prunesim.pruning.masks import load_masks

LAYERS = ["relu1", "pool1", "relu2", "pool2", "relu3", "relu4", "fc3"]
FIGURE_VIEWS = ["channels"]  # config/smoke.yaml: figures.views
FIGURE_STEMS = [
    f"{name}_{view}"
    for name in (
        "similarity_main",
        "similarity_companion",
        "layer_heatmaps",
        "metric_agreement",
        "similarity_vs_accuracy",
    )
    for view in FIGURE_VIEWS
] + ["accuracy_vs_sparsity", "units_per_round"]
# The rules that depend on activations: a similarity change or re-extraction reruns only these.
DOWNSTREAM_OF_ACTIVATIONS = {
    "compare",
    "compare_seeds",
    "aggregate",
    *FIGURE_RULES,
    "all",
}

pytestmark = pytest.mark.workflow


@pytest.fixture
def smoke_run(finished_smoke_run, tmp_path) -> Path:
    return copy_run(finished_smoke_run, tmp_path / "run")


def model_dirs(workdir: Path) -> list[Path]:
    base = workdir / "results" / EXPERIMENT
    return [
        base / f"seed{s}" / stage for s in (0, 1) for stage in ("dense", "imp/round1", "imp/round2")
    ]


def test_a_healthy_run_is_quiet_and_its_jobs_log_their_progress(finished_smoke_run):
    console = (finished_smoke_run / "console.txt").read_text()
    assert "Shell command" not in console  # no script job has one to show
    for noise in ("Warning", "prunesim:", "Traceback"):
        assert noise not in console, noise
    seed0 = finished_smoke_run / "results" / EXPERIMENT / "seed0"
    extraction = (seed0 / "imp" / "round1" / "activations.log").read_text()
    assert "batches: " in extraction and "(100%)" in extraction
    comparison = (seed0 / "imp" / "round1" / "similarity.log").read_text()
    assert "layer pairs compared: " in comparison and "(100%)" in comparison
    assert "blocks of" in comparison  # the streaming passes over the stores


def test_smoke_run_writes_models_masks_and_summaries(smoke_run):
    for folder in model_dirs(smoke_run):
        for name in ("model.pt", "mask.pt", "summary.json", "train.log"):
            assert (folder / name).is_file(), folder / name
        summary = json.loads((folder / "summary.json").read_text())
        assert 0.0 <= summary["test_accuracy"] <= 1.0
        environment = summary["environment"]  # where and with what it was trained
        assert environment["device"] == "cpu" and environment["torch_threads"] == 1
        assert environment["torch"] == importlib.metadata.version("torch")
        expected = {"dense": 0.0, "round1": 0.5, "round2": 0.75}[folder.name]
        assert summary["sparsity"]["sparsity"] == pytest.approx(expected, abs=1e-4)
        for quantity in ("parameters", "flops"):
            dense, remaining = summary[quantity]["dense"], summary[quantity]["remaining"]
            assert (remaining < dense) if expected else (remaining <= dense)
        epochs = [
            line for line in (folder / "train.log").read_text().splitlines() if "epoch" in line
        ]
        assert len(epochs) == 2 and all("test_acc" in line for line in epochs)


def test_smoke_run_writes_chunked_zarr_stores_with_manifest(smoke_run):
    for folder in model_dirs(smoke_run):
        group = zarr.open_group(folder / "activations.zarr", mode="r")
        manifest = group.attrs["manifest"]
        assert manifest["complete"] and manifest["layers"] == LAYERS and manifest["n"] == 128
        for layer in LAYERS:
            array = group[layer]
            assert array.shape[0] == 128 and array.chunks[0] == 64
            assert array.compressors, f"{layer} is stored uncompressed"
        assert group["relu1"].shape == (128, 6, 28, 28)
        assert group["fc3"].shape == (128, 10)


def test_smoke_run_writes_similarity_datasets(smoke_run):
    for folder in model_dirs(smoke_run):
        with xr.open_dataset(folder / "similarity.nc") as ds:
            assert ds.similarity.dims == ("metric", "view", "layer_a", "layer_b")
            assert list(ds.metric.values) == list(METRICS)
            assert list(ds.view.values) == ["flatten", "gap", "channels"]
            assert list(ds.layer_a.values) == LAYERS == list(ds.layer_b.values)
            assert "metric_definitions" in ds.attrs and ds.attrs["n_samples"] == 128
    dense = model_dirs(smoke_run)[0] / "similarity.nc"
    with xr.open_dataset(dense) as ds:
        diagonal = np.diagonal(ds.similarity.values, axis1=-2, axis2=-1)
        reasons = np.diagonal(ds.nan_reason.values, axis1=-2, axis2=-1)
        defined = np.isfinite(diagonal)
        # what identical representations give: 1, or 0 for the Procrustes angle (an arccos,
        # so 0 only to about 1e-7)
        perfect = np.array([REGISTRY[m].perfect for m in ds.metric.values])[:, None, None]
        perfect = np.broadcast_to(perfect, diagonal.shape)
        tolerance = np.where(perfect == 0.0, 1e-6, 1e-9)
        assert (np.abs(diagonal - perfect)[defined] <= tolerance[defined]).all()
        assert all(reasons[~defined]), "a NaN without a reason"
        assert defined[list(METRICS).index("cka_linear")].all()


def test_smoke_run_aggregates_over_seeds_methods_and_rounds(smoke_run):
    with xr.open_dataset(smoke_run / "results" / EXPERIMENT / "aggregate.nc") as ds:
        assert ds.similarity.dims == (
            "seed",
            "pruning",
            "round",
            "metric",
            "view",
            "layer_a",
            "layer_b",
        )
        assert list(ds.seed.values) == [0, 1] and list(ds["round"].values) == [0, 1, 2]
        assert ds.sparsity.dims == ("seed", "pruning", "round")
        np.testing.assert_allclose(
            ds.sparsity.sel(pruning="imp").values, [[0, 0.5, 0.75]] * 2, atol=1e-4
        )
        assert np.all(np.isfinite(ds.test_accuracy.values))
        assert ds.seed_similarity.dims == ("seed_pair", "metric", "view", "layer_a", "layer_b")
        assert list(ds.seed_pair.values) == ["0-1"]


def test_random_baselines_mirror_imp_sparsity_and_keep_pruned_weights_zero(smoke_run):
    import torch

    base = smoke_run / "results" / EXPERIMENT
    for seed in (0, 1):
        for r in (1, 2):
            imp = json.loads((base / f"seed{seed}/imp/round{r}/summary.json").read_text())
            for method in ("random_layerwise",):
                folder = base / f"seed{seed}/{method}/round{r}"
                info = json.loads((folder / "summary.json").read_text())
                assert info["sparsity"]["kept"] == imp["sparsity"]["kept"]
                if method == "random_layerwise":
                    assert info["sparsity"]["layers"] == imp["sparsity"]["layers"]
                weights = load_checkpoint(folder / "model.pt")[0].state_dict()
                for name, mask in load_masks(folder / "mask.pt").items():
                    assert torch.all(weights[name][~mask] == 0), f"{folder}: {name} revived"
    with xr.open_dataset(base / "aggregate.nc") as ds:
        assert set(ds.pruning.values) == {"imp", "random_layerwise"}
        np.testing.assert_array_equal(
            ds.sparsity.sel(pruning="random_layerwise").values,
            ds.sparsity.sel(pruning="imp").values,
        )


def test_smoke_run_draws_every_figure(smoke_run):
    figures = smoke_run / "results" / "figures" / EXPERIMENT
    for stem in FIGURE_STEMS:
        assert (figures / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        png = (figures / f"{stem}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        width = int.from_bytes(png[16:20], "big")  # IHDR: pixels at the figures' 200 dpi
        assert width <= 7.2 * 200, f"{stem}.png is {width / 200:.2f} in wide"
    for view in FIGURE_VIEWS:
        assert (figures / f"metric_agreement_{view}.csv").stat().st_size > 0
    assert "Key numbers" in (figures / "key_numbers.html").read_text()


def test_changing_a_figure_option_redraws_figures_and_computes_nothing(smoke_run):
    config = write_config(
        smoke_run,
        "smoke_figures.yaml",
        lambda exp: exp.setdefault("figures", {}).update(score="corrected", main_metrics=["nbs"]),
    )
    jobs = planned_jobs(smoke_run, "--configfile", config)
    assert set(jobs) - {"all"} == FIGURE_RULES - {
        "figure_metric_agreement",  # reads no figure option
        "figure_accuracy_vs_sparsity",
        "figure_units_per_round",
    }


def test_report_shows_every_figure_and_its_caption_in_a_browser(smoke_run):
    """`snakemake --report` on the finished run, opened in headless chromium: the workflow's
    description and the config used on the first page, and under Results every figure (as
    an image the browser decodes) and the key numbers, each with a caption in the run's
    terms. Building the report reruns nothing."""
    reason = browser.install()
    if reason:
        pytest.skip(f"no browser (chromium, chromium-driver): {reason}")
    from selenium.webdriver.common.by import By

    report = smoke_run / "report.html"
    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--report", str(report))
    assert planned_jobs(smoke_run, "--configfile", "config/smoke.yaml") == {}
    with browser.session() as driver:
        driver.get(report.as_uri())
        page = driver.find_element(By.ID, "app").get_attribute("innerText")
        assert "how do the layer representations of a CNN change as it is pruned?" in page
        assert "Configuration used" in page and '"probe_size": 128' in page
        results = driver.execute_script("return results")
        names = {entry["name"] for entry in results.values()}
        assert names == {f"{stem}.png" for stem in FIGURE_STEMS} | {"key_numbers.html"}
        for entry in results.values():
            caption = entry["caption"]
            assert "Experiment smoke: lenet5 on synthetic (128 probe images" in caption
            assert "IMP, 2 rounds; random (layerwise), 2 rounds" in caption
        for link in ("Results", EXPERIMENT):
            driver.find_element(By.XPATH, f"//*[text()='{link}']").click()
        titles = [item.text for item in driver.find_elements(By.XPATH, "//ul//li") if item.text]
        assert len(titles) == 7  # one group per figure rule and the key numbers
        shown, images = set(), set()
        for title in titles:
            driver.find_element(By.XPATH, f"//*[text()='{title}']").click()
            for row in driver.find_elements(By.XPATH, "//tr[td]"):
                row.find_element(By.XPATH, ".//a[@iconname='eye']").click()
                label = " ".join(td.text for td in row.find_elements(By.TAG_NAME, "td"))
                if "key numbers" in label:
                    driver.switch_to.frame(driver.find_element(By.TAG_NAME, "iframe"))
                    assert "Accuracy and size" in driver.find_element(By.TAG_NAME, "body").text
                    driver.switch_to.default_content()
                else:
                    image = driver.find_element(
                        By.XPATH, "//img[starts-with(@src, 'data:image/png')]"
                    )
                    assert int(image.get_attribute("naturalWidth")) > 500, label  # decoded
                    images.add(hash(image.get_attribute("src")))
                shown.add(label)
            driver.find_element(By.XPATH, f"//*[text()='{EXPERIMENT}']").click()
        assert len(shown) == len(results)
        assert len(images) == len(FIGURE_STEMS)  # each result showed its own figure


def test_second_run_has_nothing_to_do(smoke_run):
    assert planned_jobs(smoke_run, "--configfile", "config/smoke.yaml") == {}


def test_changing_a_similarity_option_reruns_similarity_and_figures_only(smoke_run):
    def gap_only(exp):
        exp["similarity"]["views"] = exp["figures"]["views"] = ["gap"]

    config = write_config(smoke_run, "smoke_views.yaml", gap_only)
    jobs = planned_jobs(smoke_run, "--configfile", config)
    assert set(jobs) == DOWNSTREAM_OF_ACTIVATIONS
    assert jobs["compare"] == 10 and jobs["compare_seeds"] == 1  # 2 seeds x (dense + 2 x 2)


def test_forcerun_reruns_the_rule_and_only_what_depends_on_it(smoke_run):
    jobs = planned_jobs(
        smoke_run, "--configfile", "config/smoke.yaml", "--forcerun", "extract_activations"
    )
    assert jobs.pop("extract_activations") == 10
    assert set(jobs) == DOWNSTREAM_OF_ACTIVATIONS
    dense = model_dirs(smoke_run)[0] / "model.pt"
    before = dense.stat().st_mtime_ns
    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--forcerun", "aggregate")
    assert dense.stat().st_mtime_ns == before, "re-running aggregate retrained a model"
    assert planned_jobs(smoke_run, "--configfile", "config/smoke.yaml") == {}


def test_a_single_output_file_can_be_requested(smoke_run):
    target = model_dirs(smoke_run)[2] / "similarity.nc"
    target.unlink()
    rel = str(target.relative_to(smoke_run))
    # --configfile takes several values: the target goes first.
    assert planned_jobs(smoke_run, rel, "--configfile", "config/smoke.yaml") == {"compare": 1}
    snakemake(smoke_run, rel, "--configfile", "config/smoke.yaml")
    assert target.is_file()


BAD_CONFIGS = {
    "rate": (lambda exp: exp["pruning"].update(rate=1.5), "pruning.rate"),
    "metric": (lambda exp: exp["similarity"].update(metrics=["cka_magic"]), "similarity.metrics"),
    "dataset": (lambda exp: exp["dataset"].update(name="imagenet"), "dataset.name"),
    "epochs": (lambda exp: exp["train"].update(epochs=-1), "train.epochs"),
    "data_root": (
        lambda exp: exp["dataset"].update(name="mnist", data_root="/nonexistent/mnist"),
        "dataset.data_root",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_stops_before_any_job_naming_the_key(smoke_run, case):
    edit, key = BAD_CONFIGS[case]
    config = write_config(smoke_run, f"bad_{case}.yaml", edit)
    before = sorted(p for p in (smoke_run / "results").rglob("*"))
    proc = snakemake(smoke_run, "--configfile", config, check=False)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert key in message, message
    assert "invalid configuration" in message
    assert sorted(p for p in (smoke_run / "results").rglob("*")) == before


def test_workflow_lint_passes():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr, proc.stdout


def test_rerunning_a_training_job_reproduces_its_model_exactly(smoke_run):
    """Same config and seed, same numbers on CPU: retraining IMP round 1 of seed 1 gives
    bit-identical weights and summary."""
    import torch

    folder = model_dirs(smoke_run)[4]  # seed1/imp/round1
    before = load_checkpoint(folder / "model.pt")[0].state_dict()
    summary_before = json.loads((folder / "summary.json").read_text())
    target = str((folder / "model.pt").relative_to(smoke_run))
    snakemake(smoke_run, target, "--force", "--configfile", "config/smoke.yaml")
    after = load_checkpoint(folder / "model.pt")[0].state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    summary_after = json.loads((folder / "summary.json").read_text())
    assert summary_after["test_accuracy"] == summary_before["test_accuracy"]
    assert summary_after["sparsity"] == summary_before["sparsity"]
