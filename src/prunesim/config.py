"""Config validation: JSON schema with defaults, then checks the schema cannot express.

Every problem is reported as a :class:`ConfigError` whose message names the key (as a dotted
path) and what was expected, before any job runs.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import jsonschema
import yaml

from prunesim.data import DataNotFoundError, DataSettings, check_available, get_spec


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what was expected."""


def _with_defaults(validator_class):
    """A validator that fills in each property's ``default`` before validating it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(checker, instance) -> bool:
    """An int, not a bool and not a float: JSON Schema counts 1.0 as an integer, but an epoch
    count or a seed of 1.0 crashes the job that receives it (``range(1.0)``)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_finite_number(checker, instance) -> bool:
    """A finite int or float: NaN passes every bound (all its comparisons are false) and
    infinity is never a meaningful setting, so neither may reach a job."""
    if isinstance(instance, bool) or not isinstance(instance, int | float):
        return False
    return math.isfinite(instance)


def _strict(validator_class):
    """``validator_class`` whose ``integer`` excludes floats and ``number`` non-finite values."""
    checker = validator_class.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_finite_number}
    )
    return jsonschema.validators.extend(validator_class, type_checker=checker)


def _describe(error) -> str:
    """jsonschema's message, said plainly for the values the strict types reject."""
    value = error.instance
    if error.validator == "type" and isinstance(value, float):
        if not math.isfinite(value):
            return f"{value} is not a finite number"
        if "integer" in error.validator_value:
            return (
                f"{value!r} is a float, not an integer (write {int(value)})"
                if value.is_integer()
                else f"{value!r} is not an integer"
            )
    return error.message


def _dotted(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def load_schema(path: str | os.PathLike[str]) -> dict:
    return yaml.safe_load(Path(path).read_text())


def load_config_file(path: str | os.PathLike[str]) -> dict:
    """The mapping in a YAML (or JSON) config file; a :class:`ConfigError` naming the file,
    and the line and column of a syntax error, when it is missing, empty, not YAML or not a
    mapping of keys."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path}: cannot be read as text ({err})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(
            f"config file {path}{where}: not valid YAML ({problem}); expected a mapping of "
            "keys such as 'experiments:'"
        ) from None
    if not isinstance(config, dict):
        found = "empty" if config is None else f"a {type(config).__name__}"
        raise ConfigError(
            f"config file {path}: {found}, expected a mapping of keys with at least "
            "'experiments:' (see config/README.md)"
        )
    return config


def validate(config: dict, schema: dict) -> dict:
    """Fill defaults into ``config`` in place and check it; raise :class:`ConfigError`."""
    validator_class = _with_defaults(_strict(jsonschema.Draft202012Validator))
    validator = validator_class(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        expected = error.schema.get("description") if isinstance(error.schema, dict) else None
        if error.validator == "additionalProperties":
            expected = "only the keys documented in config/README.md"
        message = f"config key {_dotted(error.absolute_path)}: {_describe(error)}"
        if expected:
            message += f" (expected {expected})"
        raise ConfigError(message)
    for name, experiment in config["experiments"].items():
        _check_experiment(name, experiment)
    _sort_keys_in_place(config)
    return config


def _sort_keys_in_place(node) -> None:
    """Order every mapping by key: rules receive config blocks as params, and Snakemake
    compares params by their text, so reordering keys in a YAML file must not rerun jobs."""
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update(items)
        for value in node.values():
            _sort_keys_in_place(value)
    elif isinstance(node, list):
        for value in node:
            _sort_keys_in_place(value)


def _check_experiment(name: str, exp: dict) -> None:
    """Checks across keys: data availability, probe size, model/dataset fit, schedules."""
    key = f"experiments.{name}"
    data = DataSettings(**exp["dataset"])
    spec = get_spec(data.name)
    try:
        check_available(data)
    except DataNotFoundError as err:
        raise ConfigError(f"config key {key}.dataset.data_root: {err}") from None
    test_size = spec.test_size(data)
    if data.probe_size > test_size:
        raise ConfigError(
            f"config key {key}.dataset.probe_size: {data.probe_size} exceeds the {test_size} "
            f"test images of {data.name!r} (expected at most {test_size})"
        )
    train = exp["train"]
    milestones = train.get("milestones", [])
    if train["schedule"] == "multistep" and not milestones:
        raise ConfigError(
            f"config key {key}.train.milestones: empty, but schedule is 'multistep' "
            "(expected increasing epochs at which to decay the LR)"
        )
    if milestones != sorted(set(milestones)) or any(m >= train["epochs"] for m in milestones):
        raise ConfigError(
            f"config key {key}.train.milestones: {milestones} (expected strictly increasing "
            f"epochs within 1..{train['epochs'] - 1}; the LR changes after each milestone epoch)"
        )
    pruning = exp["pruning"]
    for method in ("epruner", "cka_layers"):
        if pruning[method]["finetune_epochs"] is None:
            pruning[method]["finetune_epochs"] = train["epochs"]
    from prunesim.models import MODELS  # torch import: only after the cheap checks pass

    channels, height, _ = spec.shape(data)
    minimum = MODELS[exp["model"]].min_image_size
    if height < minimum:
        raise ConfigError(
            f"config key {key}.model: {exp['model']!r} needs images of at least {minimum} "
            f"pixels, but {data.name!r} has {height} (expected a model that fits the dataset)"
        )
    if "cka_layers" in pruning["methods"]:
        _check_block_removal(key, exp, channels, height, spec.num_classes(data))


def _check_block_removal(key: str, exp: dict, channels: int, height: int, classes: int) -> None:
    """cka_layers needs a ResNet with at least ``blocks`` removable (non-downsampling) blocks."""
    from prunesim.models import build_model, removable_blocks

    model = build_model(exp["model"], channels, classes, height)
    try:
        removable = removable_blocks(model)
    except TypeError:
        raise ConfigError(
            f"config key {key}.pruning.methods: 'cka_layers' removes residual blocks, but "
            f"{exp['model']!r} has none (expected a ResNet model, e.g. resnet20)"
        ) from None
    blocks = exp["pruning"]["cka_layers"]["blocks"]
    if blocks > len(removable):
        raise ConfigError(
            f"config key {key}.pruning.cka_layers.blocks: {blocks}, but {exp['model']!r} has "
            f"only {len(removable)} removable (non-downsampling) blocks (expected at most "
            f"{len(removable)})"
        )


def check_device_visible(device: str) -> None:
    """A :class:`ConfigError` when ``device`` names a CUDA GPU that this machine cannot see.

    Run where the jobs run (a local run), before any job: otherwise every job would fail only
    after Snakemake had removed its previous outputs. ``auto`` and ``cpu`` always pass.
    """
    if not device.startswith("cuda"):
        return
    import torch  # only for a CUDA config: the check needs the driver

    index = int(device.partition(":")[2] or 0)
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= visible:
        raise ConfigError(
            f"config key device: {device!r}, but this machine sees "
            f"{'no CUDA GPU' if visible == 0 else f'{visible} CUDA GPU(s)'} (expected 'cpu' or "
            "'auto' here, or run the jobs where the GPU is, e.g. --workflow-profile profiles/slurm)"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m prunesim.config FILE...``: check config files as the workflow would (YAML
    syntax with its line, schema, cross-key checks), one line per file, before a run."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    # The workflow's schema: in the workflow folder, else in this source checkout.
    local = Path("config/config.schema.yaml")
    source = Path(__file__).resolve().parents[2] / "config" / "config.schema.yaml"
    schema = load_schema(local if local.is_file() else source)
    status = 0
    for path in paths:
        try:
            validate(load_config_file(path), schema)
        except ConfigError as err:
            print(f"invalid configuration: {err}", file=sys.stderr)
            status = 1
        else:
            print(f"{path}: valid")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
