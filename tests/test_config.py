"""Tests for config validation (prunesim.config) against config/config.schema.yaml."""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from pathlib import Path

import pytest
import yaml

import prunesim.comparison
import prunesim.data
import prunesim.metrics
import prunesim.models
import prunesim.pruning.magnitude
import prunesim.training
from prunesim.config import ConfigError, load_schema, validate

CONFIG = Path(__file__).resolve().parents[1] / "config"


@pytest.fixture(scope="module")
def schema() -> dict:
    return load_schema(CONFIG / "config.schema.yaml")


def _minimal(**experiment) -> dict:
    exp = {"dataset": {"name": "mnist5k"}, "model": "lenet5"}
    exp.update(experiment)
    return {"experiments": {"exp1": exp}}


def _config_error(config: dict, schema: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate(config, schema)
    return str(err.value)


# --- valid configs and defaults ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["config.yaml", "mnist5k_full.yaml", "smoke.yaml", "structured.yaml"]
)
def test_shipped_configs_validate(name, schema):
    config = yaml.safe_load((CONFIG / name).read_text())
    validated = validate(config, schema)
    assert validated is config
    for exp in config["experiments"].values():
        assert exp["similarity"]["rank_tol"] == 1e-10  # a default, filled in


def _assert_contains(full, given, path="") -> None:
    """Every key of ``given`` is in ``full`` with the same value (recursively)."""
    if isinstance(given, dict):
        assert isinstance(full, dict), path
        for key, value in given.items():
            assert key in full, f"{path}.{key} dropped"
            _assert_contains(full[key], value, f"{path}.{key}")
    else:
        assert full == given, f"{path} changed from {given!r} to {full!r}"


@pytest.mark.parametrize("name", ["config.yaml", "mnist5k_full.yaml", "smoke.yaml"])
def test_validation_keeps_every_given_value_and_only_adds_defaults(name, schema):
    raw = yaml.safe_load((CONFIG / name).read_text())
    config = validate(copy.deepcopy(raw), schema)
    _assert_contains(config, raw)
    for exp in config["experiments"].values():
        assert "noise" in exp["dataset"]["synthetic"]  # defaults reach nested blocks too
        assert {"train", "pruning", "activations", "similarity", "seeds"} <= set(exp)
        assert {"epochs", "optimizer", "schedule", "batch_size"} <= set(exp["train"])


def test_minimal_experiment_gets_every_default(schema):
    config = validate(_minimal(), schema)
    assert config["device"] == "auto"
    assert config["keep_activations"] is True
    exp = config["experiments"]["exp1"]
    assert exp["seeds"] == [0]
    assert exp["dataset"] == {
        "name": "mnist5k",
        "data_root": None,
        "download": False,
        "test_fraction": 0.2,
        "split_seed": 0,
        "probe_size": 1000,
        "probe_seed": 0,
        "synthetic": {
            "image_size": 28,
            "channels": 1,
            "num_classes": 10,
            "train_size": 512,
            "test_size": 256,
            "noise": 0.35,
        },
    }
    assert exp["train"] == {
        "eval_batch_size": 1000,
        "optimizer": "sgd",
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0005,
        "schedule": "cosine",
        "milestones": [],
        "gamma": 0.1,
        "epochs": 8,
        "batch_size": 64,
        "augment": "none",
        "clip_grad_norm": None,
    }
    assert exp["pruning"] == {
        "methods": ["imp", "retrain_only", "random_layerwise"],
        "rounds": 5,
        "rate": 0.4,
        "scope": "global",
        "retrain_epochs": None,  # train.epochs
        "prune_output_layer": False,
        # finetune_epochs: null (the methods' settings read it as the schedule's own epochs)
        "epruner": {
            "betas": [0.85, 0.9, 0.95],
            "initialisation": "authors",
            "vgg_late_beta": {"from_conv": 8, "beta": 0.92},
            "finetune_schedule": "authors",
            "finetune_epochs": None,
        },
        "cka_layers": {
            "blocks": 2,
            "candidates": "authors",
            "finetune_schedule": "authors",
            "finetune_epochs": None,
            "criterion_samples": 1000,
        },
    }
    assert exp["activations"] == {"batch_size": 500}
    assert exp["similarity"]["metrics"] == list(prunesim.metrics.METRICS)
    assert exp["similarity"]["views"] == ["flatten", "gap", "channels"]
    assert exp["figures"] == {
        "main_metrics": [],
        "score": "similarity",
        "views": [],
        "heatmap_rounds": [],
    }


def test_defaults_do_not_leak_between_experiments(schema):
    config = _minimal()
    config["experiments"]["exp2"] = copy.deepcopy(config["experiments"]["exp1"])
    validate(config, schema)
    one, two = config["experiments"]["exp1"], config["experiments"]["exp2"]
    assert one["seeds"] == two["seeds"] and one["seeds"] is not two["seeds"]
    one["train"]["milestones"].append(3)
    assert two["train"]["milestones"] == []
    assert schema["$defs"]["train"]["properties"]["milestones"]["default"] == []


def test_given_values_are_not_overwritten_by_defaults(schema):
    config = validate(_minimal(seeds=[3, 4], train={"epochs": 2, "lr": 0.1}), schema)
    exp = config["experiments"]["exp1"]
    assert exp["seeds"] == [3, 4]
    assert (exp["train"]["epochs"], exp["train"]["lr"], exp["train"]["batch_size"]) == (2, 0.1, 64)


# --- errors name the dotted key and what was expected -----------------------------------------


@pytest.mark.parametrize(
    ("experiment", "key", "expected"),
    [
        ({"pruning": {"rate": 1.5}}, "experiments.exp1.pruning.rate", "in (0, 1)"),
        ({"train": {"epochs": -1}}, "experiments.exp1.train.epochs", "positive number of epochs"),
        (
            {"similarity": {"metrics": ["cka_linear", "rsa"]}},
            "experiments.exp1.similarity.metrics.1",
            "expected a registered metric name",
        ),
        (
            {"dataset": {"name": "imagenet"}},
            "experiments.exp1.dataset.name",
            "one of the registered datasets",
        ),
        (
            {"dataset": {"name": "mnist"}},
            "experiments.exp1.dataset.data_root",
            "torchvision.datasets.MNIST(root=DATA_ROOT, download=True)",
        ),
        (
            {"dataset": {"name": "mnist5k", "probe_size": 1001}},
            "experiments.exp1.dataset.probe_size",
            "at most 1000",
        ),
        (
            {"dataset": {"name": "synthetic", "probe_size": 300}},
            "experiments.exp1.dataset.probe_size",
            "at most 256",
        ),
        (
            {"train": {"schedule": "multistep"}},
            "experiments.exp1.train.milestones",
            "increasing epochs",
        ),
        (
            {"train": {"schedule": "multistep", "milestones": [4, 2]}},
            "experiments.exp1.train.milestones",
            "strictly increasing",
        ),
        (
            {"train": {"epochs": 3, "schedule": "multistep", "milestones": [2, 5]}},
            "experiments.exp1.train.milestones",
            "within 1..2",
        ),
        (
            {"train": {"epochs": 3}, "pruning": {"retrain_epochs": 4}},
            "experiments.exp1.pruning.retrain_epochs",
            "4 exceeds train.epochs 3 (expected at most 3",
        ),
        (
            {"pruning": {"retrain_epochs": 0}},
            "experiments.exp1.pruning.retrain_epochs",
            "positive integer",
        ),
        (
            {"train": {"clip_grad_norm": 0}},
            "experiments.exp1.train.clip_grad_norm",
            "positive bound",
        ),
        ({"model": "alexnet"}, "experiments.exp1.model", "one of the registered models"),
        ({"seeds": []}, "experiments.exp1.seeds", "non-empty list"),
        ({"colour": "red"}, "experiments.exp1", "only the keys documented"),
        (
            {"pruning": {"methods": ["cka_layers"]}},
            "experiments.exp1.pruning.methods",
            "'cka_layers' removes residual blocks, but 'lenet5' has none",
        ),
        (
            {
                "model": "resnet20",
                "pruning": {
                    "methods": ["cka_layers"],
                    "cka_layers": {"blocks": 8, "candidates": "any_non_downsampling"},
                },
            },
            "experiments.exp1.pruning.cka_layers.blocks",
            "only 7 removable (non-downsampling) blocks",
        ),
        (
            {"pruning": {"methods": ["epruner"], "epruner": {"betas": [0.9, 0]}}},
            "experiments.exp1.pruning.epruner.betas.1",
            "a positive preference scale beta",
        ),
        ({"train": {"epochs": 1.0}}, "experiments.exp1.train.epochs", "1.0 is a float, not an"),
        (
            {"dataset": {"name": "mnist5k", "probe_size": 128.0}},
            "experiments.exp1.dataset.probe_size",
            "128.0 is a float, not an integer (write 128)",
        ),
        (
            {"activations": {"batch_size": 64.0}},
            "experiments.exp1.activations.batch_size",
            "64.0 is a float",
        ),
        ({"seeds": [0.0]}, "experiments.exp1.seeds.0", "a non-negative integer seed"),
        ({"pruning": {"rate": math.nan}}, "experiments.exp1.pruning.rate", "nan is not a finite"),
        ({"train": {"lr": math.inf}}, "experiments.exp1.train.lr", "inf is not a finite number"),
        (
            {"train": {"weight_decay": -math.inf}},
            "experiments.exp1.train.weight_decay",
            "-inf is not a finite number",
        ),
        (
            {"similarity": {"rbf_sigma": math.nan}},
            "experiments.exp1.similarity.rbf_sigma",
            "nan is not a finite number",
        ),
        (
            {"similarity": {"metrics": ["cka_linear"]}, "figures": {"main_metrics": ["svcca"]}},
            "experiments.exp1.figures.main_metrics",
            "expected metrics from similarity.metrics",
        ),
        (
            {"figures": {"main_metrics": ["cka_linear", "svcca", "nbs"]}},
            "experiments.exp1.figures.main_metrics",
            "one or two of the experiment's similarity.metrics",
        ),
        (
            {"similarity": {"permutations": 0}, "figures": {"score": "corrected"}},
            "experiments.exp1.figures.score",
            "needs chance levels",
        ),
        (
            {"similarity": {"views": ["gap"]}, "figures": {"views": ["channels"]}},
            "experiments.exp1.figures.views",
            "expected views from similarity.views",
        ),
        (
            {"pruning": {"rounds": 2}, "figures": {"heatmap_rounds": [3]}},
            "experiments.exp1.figures.heatmap_rounds",
            "expected rounds within 1..2",
        ),
    ],
    ids=[
        "epochs_float",
        "probe_size_float",
        "activation_batch_float",
        "seed_float",
        "rate_nan",
        "lr_inf",
        "weight_decay_minus_inf",
        "rbf_sigma_nan",
        "rate",
        "epochs",
        "metric",
        "dataset",
        "mnist_without_data_root",
        "probe_size",
        "probe_size_synthetic",
        "multistep_without_milestones",
        "milestones_unsorted",
        "milestones_beyond_epochs",
        "retrain_epochs_beyond_epochs",
        "retrain_epochs_zero",
        "clip_grad_norm_zero",
        "model",
        "seeds",
        "unknown_experiment_key",
        "cka_layers_without_residual_blocks",
        "cka_layers_too_many_blocks",
        "epruner_beta_not_positive",
        "figures_main_metric_not_computed",
        "figures_three_main_metrics",
        "figures_corrected_without_permutations",
        "figures_view_not_computed",
        "figures_heatmap_round_beyond_last",
    ],
)
def test_invalid_value_raises_config_error_naming_key_and_expectation(
    schema, experiment, key, expected
):
    message = _config_error(_minimal(**experiment), schema)
    assert f"config key {key}:" in message
    assert expected in message


@pytest.mark.parametrize(
    ("pruning", "key", "expected"),
    [
        (
            {"methods": ["cka_layers"], "cka_layers": {"blocks": 4}},
            "pruning.cka_layers.blocks",
            "4, but 'resnet20' has only 3 blocks removable under candidates 'authors'",
        ),
        (
            {"methods": ["cka_layers"], "cka_layers": {"candidates": "first_blocks"}},
            "pruning.cka_layers.candidates",
            "'authors', 'any_non_downsampling'",
        ),
        (
            {"methods": ["epruner"], "epruner": {"initialisation": "random"}},
            "pruning.epruner.initialisation",
            "'authors' (as the authors' code",
        ),
        (
            {"methods": ["epruner"], "epruner": {"vgg_late_beta": {"from_conv": 8}}},
            "pruning.epruner.vgg_late_beta",
            "VGG models only",
        ),
        (
            {"methods": ["epruner"], "epruner": {"vgg_late_beta": {"from_conv": 8, "beta": 0}}},
            "pruning.epruner.vgg_late_beta.beta",
            "a positive preference scale",
        ),
        (
            {"methods": ["epruner"], "epruner": {"finetune_schedule": "paper"}},
            "pruning.epruner.finetune_schedule",
            "'experiment' (the experiment's train block)",
        ),
    ],
    ids=[
        "cka_authors_too_many_blocks",
        "cka_unknown_candidates",
        "epruner_unknown_initialisation",
        "epruner_late_beta_without_beta",
        "epruner_late_beta_not_positive",
        "epruner_unknown_schedule",
    ],
)
def test_invalid_structured_settings_name_key_and_expectation(schema, pruning, key, expected):
    message = _config_error(_minimal(model="resnet20", pruning=pruning), schema)
    assert f"config key experiments.exp1.{key}:" in message
    assert expected in message


def test_structured_settings_accept_the_present_behaviour_and_no_late_beta(schema):
    """The earlier behaviour stays a named option: every block with an identity shortcut (7 on
    ResNet-20), inherited tensors, no late beta, the experiment's schedule."""
    pruning = {
        "methods": ["epruner", "cka_layers"],
        "epruner": {
            "initialisation": "inherit",
            "vgg_late_beta": None,
            "finetune_schedule": "experiment",
        },
        "cka_layers": {"blocks": 7, "candidates": "any_non_downsampling"},
    }
    config = validate(_minimal(model="resnet20", pruning=pruning), schema)
    block = config["experiments"]["exp1"]["pruning"]
    assert block["epruner"]["vgg_late_beta"] is None
    assert block["cka_layers"]["finetune_schedule"] == "authors"  # the default


def test_mnist_with_empty_data_root_names_the_folder(schema, tmp_path):
    config = _minimal(dataset={"name": "mnist", "data_root": str(tmp_path)})
    message = _config_error(config, schema)
    assert "experiments.exp1.dataset.data_root" in message and str(tmp_path) in message


def test_mnist_with_download_is_valid(schema, tmp_path):
    validate(
        _minimal(dataset={"name": "mnist", "data_root": str(tmp_path), "download": True}), schema
    )


def test_unknown_top_level_key_raises_naming_it(schema):
    config = _minimal()
    config["exeriments"] = {}
    message = _config_error(config, schema)
    assert "'exeriments'" in message and "only the keys documented" in message


@pytest.mark.parametrize("value", ["no", 0, None])
def test_keep_activations_must_be_true_or_false(schema, value):
    config = _minimal()
    config["keep_activations"] = value
    message = _config_error(config, schema)
    assert message == (
        f"config key keep_activations: {value!r} is not of type 'boolean' (expected true (keep "
        "every activation store) or false (delete each store once the comparisons that read it "
        "have run))"
    )


def test_model_too_large_for_the_images_raises(schema):
    config = _minimal(
        dataset={"name": "synthetic", "probe_size": 10, "synthetic": {"image_size": 16}},
        model="vgg11_bn",
    )
    message = _config_error(config, schema)
    assert "experiments.exp1.model" in message and "at least 32" in message


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


# --- the schema's enums are the registries ----------------------------------------------------


def _enum(schema: dict, *path: str) -> set:
    node = schema["$defs"]
    for key in path:
        node = node[key]
    return set(node["enum"])


def test_dataset_enum_equals_dataset_registry(schema):
    assert _enum(schema, "dataset", "properties", "name") == set(prunesim.data.DATASETS)


def test_model_enum_equals_model_registry(schema):
    assert _enum(schema, "experiment", "properties", "model") == set(prunesim.models.MODELS)


@pytest.mark.parametrize(
    ("key", "registry"),
    [
        ("optimizer", prunesim.training.OPTIMIZERS),
        ("schedule", prunesim.training.SCHEDULES),
        ("augment", prunesim.training.AUGMENTATIONS),
    ],
)
def test_train_enums_equal_train_registries(schema, key, registry):
    assert _enum(schema, "train", "properties", key) == set(registry)


def test_scope_enum_equals_pruning_scopes(schema):
    assert _enum(schema, "pruning", "properties", "scope") == set(prunesim.pruning.magnitude.SCOPES)


def test_metric_enum_equals_metric_registry(schema):
    metrics = _enum(schema, "similarity", "properties", "metrics", "items")
    assert metrics == set(prunesim.metrics.METRICS)


def test_view_enum_equals_view_registry(schema):
    views = _enum(schema, "similarity", "properties", "views", "items")
    assert views == set(prunesim.comparison.VIEWS)


# --- the schema's defaults are the library's defaults -----------------------------------------


def _dataclass_defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


@pytest.mark.parametrize(
    ("path", "cls"),
    [
        (("dataset",), prunesim.data.DataSettings),
        (("dataset", "properties", "synthetic"), prunesim.data.SyntheticSettings),
        (("train",), prunesim.training.TrainSettings),
        (("similarity",), prunesim.comparison.CompareSettings),
    ],
    ids=["dataset", "synthetic", "train", "similarity"],
)
def test_schema_keys_and_defaults_match_the_settings_dataclasses(schema, path, cls):
    node = schema["$defs"]
    for key in path:
        node = node[key]
    defaults = _dataclass_defaults(cls)
    for key, prop in node["properties"].items():
        assert key in defaults, f"schema key {key} is not a field of {cls.__name__}"
        if "default" in prop and key != "synthetic":
            assert prop["default"] == defaults[key], key


# --- one source of truth: the schema; the library's settings and the docs follow it ----------


def _schema_defaults(schema: dict, block: str) -> dict:
    return {
        key: sub["default"]
        for key, sub in schema["$defs"][block]["properties"].items()
        if "default" in sub
    }


@pytest.mark.parametrize(
    ("block", "settings", "extra"),
    [
        ("train", prunesim.training.TrainSettings, set()),
        ("dataset", prunesim.data.DataSettings, {"name"}),
        ("similarity", prunesim.comparison.CompareSettings, {"device"}),
    ],
)
def test_library_settings_have_the_schema_keys_and_defaults(schema, block, settings, extra):
    import dataclasses

    defaults = _schema_defaults(schema, block)
    fields = {f.name: f for f in dataclasses.fields(settings)}
    assert set(fields) - extra == set(schema["$defs"][block]["properties"]) - {"name"}
    for key, default in defaults.items():
        field = fields[key]
        value = field.default_factory() if callable(field.default_factory) else field.default
        expected = tuple(default) if isinstance(value, tuple) else default
        assert value == expected, f"{block}.{key}: library {value!r}, schema {default!r}"


def _readme_rows() -> dict[tuple[str, str], str]:
    """(section, key) -> default cell of every table row in config/README.md; the section is
    the block its heading names ('top', 'experiment', 'train', ...)."""
    rows, section = {}, None
    for line in (CONFIG / "README.md").read_text().splitlines():
        heading = re.match(r"^#+ (.*)$", line)
        if heading:
            title = heading[1]
            named = re.search(r"`([a-z_.A-Z]+)`", title)
            section = "top" if title == "Top level" else (named[1] if named else title)
            section = "experiment" if section == "experiments.NAME" else section
            continue
        row = re.match(r"^\| `([a-z0-9_.]+)` \| ([^|]+) \|", line)
        if row:
            rows[(section, row[1])] = row[2].strip()
    return rows


def _documented_keys(schema: dict) -> dict[tuple[str, str], object]:
    """(section, key) -> schema default of every key a config may set, as config/README.md
    documents it (the epruner and cka_layers blocks in pruning's table as epruner.KEY)."""
    keys = {("top", k): sub.get("default") for k, sub in schema["properties"].items()}
    for block in (
        "experiment",
        "dataset",
        "train",
        "pruning",
        "activations",
        "similarity",
        "figures",
    ):
        for key, sub in schema["$defs"][block]["properties"].items():
            if block == "experiment" and "$ref" in sub:
                continue  # a block of its own, with its own section
            if "$ref" in sub:
                nested = schema["$defs"][key]["properties"]
                keys.update({(block, f"{key}.{k}"): v.get("default") for k, v in nested.items()})
            else:
                keys[(block, key)] = sub.get("default")
    return keys


def test_config_readme_documents_every_schema_key_with_its_default(schema):
    rows = _readme_rows()
    keys = _documented_keys(schema)
    assert set(rows) == set(keys)
    for (section, key), default in keys.items():
        cell = rows[(section, key)]
        if "required" in cell:
            assert default is None, (section, key)
            continue
        if cell.startswith("all "):  # "all ten": every registered metric, as many as it says
            words = ("one two three four five six seven eight nine ten eleven twelve").split()
            assert key == "metrics" and default == list(prunesim.metrics.METRICS)
            assert words.index(cell.split()[1]) + 1 == len(default), cell
            continue
        shown = yaml.safe_load(cell.strip("`"))
        if isinstance(shown, str) and isinstance(default, float):  # YAML 1.1 reads 1e-6 as text
            shown = float(shown)
        assert shown == default, f"config/README.md {section}.{key}: {cell}, schema {default!r}"


def test_schema_device_words_are_the_device_vocabulary(schema):
    from prunesim.device import DEVICE_PATTERN

    assert schema["properties"]["device"]["pattern"] == DEVICE_PATTERN


def test_schema_methods_are_the_registry(schema):
    from prunesim.methods import METHODS

    assert _enum(schema, "pruning", "properties", "methods", "items") == set(METHODS)


def test_figure_targets_and_summary_follow_the_validated_experiment(schema):
    from prunesim.config import experiment_summary, figure_parts, figure_views

    exp = validate(_minimal(), schema)["experiments"]["exp1"]
    assert figure_views(exp) == ["flatten", "gap", "channels"]
    assert figure_parts(exp) == ["main", "companion"]
    assert experiment_summary("exp1", exp) == (
        "Experiment exp1: lenet5 on mnist5k (1000 probe images from its test split), seeds 0; "
        "IMP, 5 rounds; retrain only, 5 rounds; random (layerwise), 5 rounds; IMP's round r "
        "keeps (1 - 0.4)^r of the prunable weights (global scope)."
    )
    only_two = _minimal(
        similarity={"metrics": ["cka_linear", "nbs"], "views": ["gap"]},
        figures={"main_metrics": ["cka_linear", "nbs"]},
    )
    exp = validate(only_two, schema)["experiments"]["exp1"]
    assert figure_views(exp) == ["gap"] and figure_parts(exp) == ["main"]


def test_full_config_is_the_default_experiment_at_full_size():
    """config/mnist5k_full.yaml is the embedded default at its former size: the two differ
    only in what sizes the run (probe images, epochs, rounds and rate, figure views), so a
    change to one experiment's science reaches the other."""
    (default,) = yaml.safe_load((CONFIG / "config.yaml").read_text())["experiments"].values()
    (full,) = yaml.safe_load((CONFIG / "mnist5k_full.yaml").read_text())["experiments"].values()
    sizing = {
        ("dataset", "probe_size"): (450, 1000),
        ("train", "epochs"): (4, 8),
        ("pruning", "rounds"): (2, 5),
        ("pruning", "rate"): (0.6, 0.4),
    }
    for (block, key), (small, large) in sizing.items():
        assert (default[block].pop(key), full[block].pop(key)) == (small, large)
    assert default.pop("figures") == {"views": ["flatten"]} and "figures" not in full
    assert default == full
