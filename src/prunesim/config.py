"""Config validation: JSON schema with defaults, then checks the schema cannot express.

``config/config.schema.yaml`` is the one home of every key: its type, range, default, the
phrase an error message uses (``description``), and whether it changes results
(``x-changes-results: false`` marks values that only move memory or speed, such as the batch
size for evaluation; they are left out of the rules' params, so changing them reruns nothing).
The pruning methods a config may name are the registry's (:mod:`prunesim.methods`). Tests
check the rest against the schema: ``config/README.md``'s tables list exactly its keys with its
defaults, and the library's settings classes have its keys and defaults.

Every problem is reported as a :class:`ConfigError` whose message names the key (as a dotted
path) and what was expected, before any job runs. Validation fills in defaults and changes
nothing else.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import jsonschema
import yaml

from prunesim.data import DataNotFoundError, DataSettings, check_available, get_spec
from prunesim.device import DeviceError, check_visible
from prunesim.job_python import LACKS_LIBRARIES, in_job_python, missing
from prunesim.methods import METHODS


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
    """The schema at ``path``, its list of pruning methods taken from the registry."""
    schema = yaml.safe_load(Path(path).read_text())
    methods = schema["$defs"]["pruning"]["properties"]["methods"]
    methods["items"]["enum"] = list(METHODS)
    return schema


def execution_only_keys(schema: dict) -> dict[str, set[str]]:
    """For each block of the schema's ``$defs``, its keys that change no result."""
    return {
        block: {
            key
            for key, sub in definition.get("properties", {}).items()
            if sub.get("x-changes-results") is False
        }
        for block, definition in schema["$defs"].items()
    }


def result_values(block: dict, execution_only: set[str] = frozenset()) -> dict:
    """``block`` without the keys that change no result, every mapping ordered by key: a
    rule's params, which Snakemake compares by their text, so neither such a key nor the
    order of keys in a YAML file reruns a job."""
    return _sorted({k: v for k, v in block.items() if k not in execution_only})


def _sorted(node):
    if isinstance(node, dict):
        return {k: _sorted(v) for k, v in sorted(node.items())}
    if isinstance(node, list):
        return [_sorted(v) for v in node]
    return node


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


def validate(config: dict, schema: dict, architectures: bool = True) -> dict:
    """Fill defaults into ``config`` in place and check it; raise :class:`ConfigError`.

    ``architectures``: also the checks that build models (:func:`check_architectures`, which
    need torch); the Snakefile leaves them to the jobs' Python where Snakemake's has no torch."""
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
    if architectures:
        check_architectures(config)
    return config


# What check_architectures imports.
ARCHITECTURE_LIBRARIES = ["torch"]
ARCHITECTURES_FROM_STDIN = "--architectures-from-stdin"  # python -m prunesim.config's mode


def check_architectures(config: dict) -> None:
    """The checks of a validated config that build models: each model fits its dataset's
    images, each method its model (e.g. cka_layers needs enough removable blocks)."""
    from prunesim.models import MODELS  # torch

    for name, exp in config["experiments"].items():
        key = f"experiments.{name}"
        data = DataSettings(**exp["dataset"])
        spec = get_spec(data.name)
        channels, height, _ = spec.shape(data)
        minimum = MODELS[exp["model"]].min_image_size
        if height < minimum:
            raise ConfigError(
                f"config key {key}.model: {exp['model']!r} needs images of at least {minimum} "
                f"pixels, but {data.name!r} has {height} (expected a model that fits the dataset)"
            )
        for method in exp["pruning"]["methods"]:
            check = METHODS[method].check
            problem = check and check(exp, (channels, height, spec.num_classes(data)))
            if problem:
                where, message = problem
                raise ConfigError(f"config key {key}.{where}: {message}")


def check_architectures_somewhere(config: dict, pythons) -> None:
    """:func:`check_architectures` here if this Python has torch, else in the first of
    ``pythons`` (the jobs' interpreters) that has it."""
    lacking = missing(ARCHITECTURE_LIBRARIES)
    if not lacking:
        check_architectures(config)
        return
    what = "checking that each model fits its dataset and methods"
    module = ["prunesim.config", ARCHITECTURES_FROM_STDIN]
    problem = in_job_python(module, config, pythons, what, lacking)
    if problem:
        raise ConfigError(problem)


def _check_experiment(name: str, exp: dict) -> None:
    """Checks across keys: data availability, probe size, schedules, figures (the model's
    fit is :func:`check_architectures`)."""
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
    budget = exp["pruning"]["retrain_epochs"]
    if budget is not None and budget > train["epochs"]:
        raise ConfigError(
            f"config key {key}.pruning.retrain_epochs: {budget} exceeds train.epochs "
            f"{train['epochs']} (expected at most {train['epochs']}: rewinding retrains with "
            "the schedule's last epochs)"
        )
    _check_figures(key, exp)


# The main figure's metrics when the config names none: the most used similarity of
# representations (Kornblith et al. 2019) and the seed study's own.
DEFAULT_MAIN_METRICS = ("cka_linear", "svcca")


def main_metrics(computed: list[str], chosen: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The metrics of the main figure: ``chosen`` (``figures.main_metrics``) or, when empty,
    linear CKA and SVCCA where computed, else the first two computed."""
    if chosen:
        missing = [m for m in chosen if m not in computed]
        if missing:
            raise ConfigError(f"main metrics {missing} are not among the computed {computed}")
        return list(chosen)
    return [m for m in DEFAULT_MAIN_METRICS if m in computed] or list(computed[:2])


def figure_views(exp: dict) -> list[str]:
    """The views of a validated experiment that get figures of their own: figures.views, or
    every computed view."""
    return exp["figures"]["views"] or exp["similarity"]["views"]


def figure_parts(exp: dict) -> list[str]:
    """The similarity-vs-round figures of a validated experiment: 'main', and 'companion'
    where metrics are left over for it."""
    metrics = exp["similarity"]["metrics"]
    main = main_metrics(metrics, exp["figures"]["main_metrics"])
    return ["main", "companion"] if set(metrics) - set(main) else ["main"]


def experiment_summary(name: str, exp: dict) -> str:
    """One sentence on what a validated experiment runs (the report's captions start with it)."""
    dataset, pruning = exp["dataset"], exp["pruning"]
    methods = "; ".join(
        f"{METHODS[m].label}, {METHODS[m].count_rounds(pruning)} rounds" for m in pruning["methods"]
    )
    seeds = ", ".join(str(s) for s in exp["seeds"])
    rate = ""
    # only IMP's variants have a rate (the random ones mirror IMP's masks)
    if any(m.startswith("imp") for m in pruning["methods"]):
        rate = f"; IMP's round r keeps (1 - {pruning['rate']})^r of the prunable weights"
        rate += f" ({pruning['scope']} scope)"
    return (
        f"Experiment {name}: {exp['model']} on {dataset['name']} ({dataset['probe_size']} "
        f"probe images from its test split), seeds {seeds}; {methods}{rate}."
    )


def _check_figures(key: str, exp: dict) -> None:
    """The figures block asks only for what the experiment computes."""
    figures, similarity = exp["figures"], exp["similarity"]
    missing = [m for m in figures["main_metrics"] if m not in similarity["metrics"]]
    if missing:
        raise ConfigError(
            f"config key {key}.figures.main_metrics: {missing} not computed (expected metrics "
            f"from similarity.metrics: {similarity['metrics']})"
        )
    uncomputed = [v for v in figures["views"] if v not in similarity["views"]]
    if uncomputed:
        raise ConfigError(
            f"config key {key}.figures.views: {uncomputed} not computed (expected views from "
            f"similarity.views: {similarity['views']})"
        )
    if figures["score"] == "corrected" and similarity["permutations"] == 0:
        raise ConfigError(
            f"config key {key}.figures.score: 'corrected' needs chance levels, but "
            "similarity.permutations is 0 (expected permutations > 0, or score 'similarity')"
        )
    most = max(METHODS[m].count_rounds(exp["pruning"]) for m in exp["pruning"]["methods"])
    beyond = [r for r in figures["heatmap_rounds"] if r > most]
    if beyond:
        raise ConfigError(
            f"config key {key}.figures.heatmap_rounds: {beyond} beyond the last round "
            f"(expected rounds within 1..{most})"
        )


def check_device_visible(device: str) -> None:
    """A :class:`ConfigError` when ``device`` names a CUDA GPU that this machine cannot see
    (:func:`prunesim.device.check_visible`)."""
    try:
        check_visible(device)
    except DeviceError as err:
        raise ConfigError(f"config key device: {str(err).removeprefix('device ')}") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m prunesim.config FILE...``: check config files as the workflow would (YAML
    syntax with its line, schema, cross-key checks), one line per file, before a run.

    ``--architectures-from-stdin``: the architecture checks of a validated config given as
    JSON on stdin (what the Snakefile asks of a job's Python); prints the problem as JSON,
    ``null`` if none."""
    import json
    import sys

    paths = sys.argv[1:] if argv is None else argv
    if paths == [ARCHITECTURES_FROM_STDIN]:
        if missing(ARCHITECTURE_LIBRARIES):
            return LACKS_LIBRARIES
        try:
            check_architectures(json.load(sys.stdin))
        except ConfigError as err:
            print(json.dumps(str(err)))
        else:
            print(json.dumps(None))
        return 0
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
