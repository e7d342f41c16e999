"""What calibration costs: one comparison of two activation stores with and without it.

Runs ``compare_stores`` on the same two stores four times in this process (no calibration; the
permutations alone; the bootstrap alone; both, as the config asks) and prints each time and its
ratio to the uncalibrated run. By default the stores are the default run's dense network and
its last IMP round (seed 0), which must exist (run ``snakemake --cores all`` first).

    python benchmarks/calibration.py
    python benchmarks/calibration.py STORE_A STORE_B --permutations 20 --bootstrap 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_stores() -> list[str]:
    """Seed 0's dense network and last IMP round of the embedded default's experiment."""
    from prunesim.config import load_config_file
    from prunesim.layout import model_dir

    config = load_config_file(ROOT / "config" / "config.yaml")
    ((name, experiment),) = config["experiments"].items()
    return [model_dir(name, 0), model_dir(name, 0, "imp", experiment["pruning"]["rounds"])]


def main() -> None:
    from prunesim.comparison import CompareSettings, compare_stores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", default=default_stores())
    parser.add_argument("--permutations", type=int, default=CompareSettings.permutations)
    parser.add_argument("--bootstrap", type=int, default=CompareSettings.bootstrap)
    args = parser.parse_args()
    paths = [
        str(Path(p) / "activations.zarr")
        if Path(p).is_dir() and not str(p).endswith(".zarr")
        else str(p)
        for p in args.stores
    ]
    for path in paths:
        if not Path(path).exists():
            raise SystemExit(f"no activation store at {path}: run the default pipeline first")
    runs = {
        "no calibration": (0, 0),
        f"{args.permutations} permutations": (args.permutations, 0),
        f"{args.bootstrap} bootstrap resamples": (0, args.bootstrap),
        "both (the config's)": (args.permutations, args.bootstrap),
    }
    print(f"compare_stores({paths[0]}, {paths[1]}), default metrics and views")
    print("| calibration | time | × uncalibrated |")
    print("|---|---|---|")
    baseline = None
    for label, (permutations, bootstrap) in runs.items():
        settings = CompareSettings(permutations=permutations, bootstrap=bootstrap)
        start = time.perf_counter()
        compare_stores(*paths, settings)
        seconds = time.perf_counter() - start
        baseline = baseline or seconds
        print(f"| {label} | {seconds:.1f} s | {seconds / baseline:.1f} |", flush=True)


if __name__ == "__main__":
    main()
