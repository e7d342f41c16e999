"""Single metric calls of prunesim against the published code researchers call for the same
quantity, side by side in one process, on one thread and on two.

The libraries are not part of prunesim and are never imported by it: the benchmark loads their
published code from a folder you fetch once (``--libraries``, laid out as below):

    DIR/representation_similarity/Demo.ipynb  Kornblith et al. 2019 (google-research): the
                                              notebook's function definitions are run,
                                              nothing else of it
    DIR/svcca/cca_core.py, DIR/svcca/pwcca.py google/svcca
    DIR/anatome/anatome/distance.py, utils.py moskomule/anatome (torch; its package __init__,
                                              which imports its other modules, is not run)

    git clone https://github.com/google/svcca DIR/svcca
    git -C DIR/svcca checkout 1f3fbf19bd31bd9b76e728ef75842aa1d9a4cd2b
    git clone https://github.com/moskomule/anatome DIR/anatome
    git -C DIR/anatome checkout 2212a8c4ff16f5fe3b2ced4a8661529b79c0c211
    mkdir -p DIR/representation_similarity && curl -o DIR/representation_similarity/Demo.ipynb \\
      https://raw.githubusercontent.com/google-research/google-research/10bf941a5a0625bf27bb8443aa849e9b48fdd5f9/representation_similarity/Demo.ipynb

These are the versions measured in docs/metrics.md. anatome's distance.py imports
torchvision, which the pipeline's install has.

Rows: every prunesim metric that one of these libraries computes, against each library's
function for it (the library's fastest documented settings: svcca without coefficients or
printing). "x" is the library's time over prunesim's (above 1: prunesim is faster);
"ceiling" the library's time over that of the products of the centred data the metric needs
(XcᵀXc, YcᵀYc and XcᵀYc; NBS: XcᵀYc alone), which Kornblith's code, svcca and anatome's CKA
and NBS form too (anatome's CCA family takes SVDs of the data instead): the most any route
that forms them could be ahead of the library, were everything else free; "|Δ|" the
difference of the two values. Where a library defines the quantity differently, the row says
how, and |Δ| is that difference, not an error: RBF CKA's bandwidth (Kornblith's median of the
squared distances includes the n zeros of the diagonal), and PWCCA's weights (google/svcca's
and anatome's code each weight differently from the paper's projections on the canonical
variates; the row says how). A library whose n × n matrices would not fit in this machine's
memory is skipped, with the memory it would need.

Timings are the best of ``--repeat`` calls, for prunesim and the libraries alike, or of one
call when a call takes over 20 s. Not a test: compare the ratios, measured in one run on a
quiet machine.

    python benchmarks/libraries.py --libraries DIR                       # the issue's shapes
    python benchmarks/libraries.py --libraries DIR 20000,512,512 --threads 2
    python benchmarks/libraries.py --libraries DIR --metrics cka_linear,nbs
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import math
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from prunesim.metrics import similarity

SHAPES = [(5000, 500, 500), (20000, 512, 512), (50000, 1024, 1024)]
REPEAT_MAX_SECONDS = 20.0
MEMORY_SHARE = 0.6  # a library runs only when its estimated peak fits this share of free memory

KORNBLITH = Path("representation_similarity") / "Demo.ipynb"
SVCCA = Path("svcca")
ANATOME = Path("anatome") / "anatome"


def load_kornblith(folder: Path) -> dict:
    """The function definitions (and imports) of the notebook's code cells, run in one
    namespace; its demonstration statements are left out."""
    namespace: dict = {}
    for cell in json.loads((folder / KORNBLITH).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        tree.body = [
            node
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))
        ]
        exec(compile(tree, str(folder / KORNBLITH), "exec"), namespace)
    return namespace


def load_svcca(folder: Path) -> types.SimpleNamespace:
    sys.path.insert(0, str(folder / SVCCA))  # pwcca.py imports cca_core by that name
    import cca_core  # noqa: PLC0415
    import pwcca  # noqa: PLC0415

    return types.SimpleNamespace(cca_core=cca_core, pwcca=pwcca)


def load_anatome(folder: Path) -> types.ModuleType:
    """anatome.distance, with the package made importable without running its __init__."""
    package = folder / ANATOME
    spec = importlib.util.spec_from_file_location(
        "anatome", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    sys.modules["anatome"] = importlib.util.module_from_spec(spec)
    return importlib.import_module("anatome.distance")


def missing_libraries(folder: Path) -> list[str]:
    expected = [
        folder / KORNBLITH,
        folder / SVCCA / "cca_core.py",
        folder / SVCCA / "pwcca.py",
        folder / ANATOME / "distance.py",
        folder / ANATOME / "utils.py",
    ]
    return [str(path) for path in expected if not path.is_file()]


def test_data(n: int, p1: int, p2: int) -> tuple[np.ndarray, np.ndarray]:
    """Two related representations with decaying spectra and non-zero means (seeded)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, p1)) * np.linspace(1.0, 0.05, p1) + 0.3
    shared = min(p1, p2)
    y = x[:, :shared] @ rng.standard_normal((shared, p2)) / 10 + rng.standard_normal((n, p2))
    return x, y


def free_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 2**63


class Row:
    """One library's function for one prunesim metric."""

    def __init__(
        self,
        metric: str,
        library: str,
        call: Callable[[], float],
        options: dict | None = None,
        differs: str = "",
        peak_bytes: int = 0,
    ):
        self.metric, self.library, self.call = metric, library, call
        self.options, self.differs, self.peak_bytes = options or {}, differs, peak_bytes


def rows_for(x: np.ndarray, y: np.ndarray, libs: dict) -> list[Row]:
    import torch  # noqa: PLC0415  (anatome's arrays)

    kornblith, svcca, anatome = libs["kornblith"], libs["svcca"], libs["anatome"]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    n = len(x)
    # Kornblith's RBF CKA holds about six n × n float64 matrices at once
    rbf_peak = 6 * 8 * n * n
    median_differs = (
        "bandwidth: Kornblith's median squared distance counts the n zero distances of the "
        "diagonal, prunesim's the distinct pairs"
    )
    # PWCCA's weights as each library's code computes them (prunesim's: docs/metrics.md)
    svcca_weights = (
        "weights: the whitened CCA's rotation applied to the raw centred neurons without the "
        "whitening, the means added back, orthonormalised by QR"
    )
    anatome_weights = (
        "weights: sums over samples of |x q|, x uncentred, q the orthonormalised coefficients"
    )
    return [
        Row("cka_linear", "Kornblith", lambda: kornblith["feature_space_linear_cka"](x, y)),
        Row("cka_linear", "anatome", lambda: 1 - float(anatome.linear_cka_distance(tx, ty, False))),
        Row(
            "cka_debiased",
            "Kornblith",
            lambda: kornblith["feature_space_linear_cka"](x, y, debiased=True),
        ),
        Row(
            "cka_debiased", "anatome", lambda: 1 - float(anatome.linear_cka_distance(tx, ty, True))
        ),
        Row(
            "cka_rbf",
            "Kornblith",
            lambda: kornblith["cka"](kornblith["gram_rbf"](x), kornblith["gram_rbf"](y)),
            differs=median_differs,
            peak_bytes=rbf_peak,
        ),
        Row("nbs", "anatome", lambda: 1 - float(anatome.orthogonal_procrustes_distance(tx, ty))),
        Row(
            "cca_mean",
            "google/svcca",
            lambda: svcca.cca_core.get_cca_similarity(x.T, y.T, compute_coefs=False, verbose=False)[
                "mean"
            ][0],
            options={"cca_threshold": 0.98},  # svcca's "mean": threshold 0.98 by default
        ),
        Row("cca_mean", "anatome", lambda: float(anatome.cca(tx, ty, "svd")[2].mean())),
        Row(
            "pwcca",
            "google/svcca",
            lambda: svcca.pwcca.compute_pwcca(x.T, y.T)[0],
            differs=svcca_weights,
        ),
        Row(
            "pwcca",
            "anatome",
            lambda: 1 - float(anatome.pwcca_distance(tx, ty, "svd")),
            differs=anatome_weights,
        ),
    ]


def best_of(call: Callable[[], float], repeat: int) -> tuple[float, float]:
    """(least seconds, value) over ``repeat`` calls, or one call when it takes over
    ``REPEAT_MAX_SECONDS``."""
    best, value = math.inf, math.nan
    for _ in range(repeat):
        start = time.perf_counter()
        value = float(call())
        seconds = time.perf_counter() - start
        best = min(best, seconds)
        if seconds > REPEAT_MAX_SECONDS:
            break
    return best, value


# The products of the centred data that a route forming them cannot go below (Kornblith's code
# and google/svcca's form the same: np.cov's X·Xᵀ of the stacked data is one symmetric product,
# the three below in one); RBF CKA's floor is its n × n Gram matrices
PRODUCTS_FLOOR = {
    "cka_linear": "all three",
    "cka_debiased": "all three",
    "cca_mean": "all three",
    "pwcca": "all three",
    "nbs": "cross",
}


def products_floors(x: np.ndarray, y: np.ndarray, repeat: int) -> dict[str, float]:
    """Seconds of XcᵀXc, YcᵀYc and XcᵀYc ("all three") and of XcᵀYc alone ("cross") on
    centred copies made beforehand, best of ``repeat``."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    three = best_of(lambda: (xc.T @ xc)[0, 0] + (yc.T @ yc)[0, 0] + (xc.T @ yc)[0, 0], repeat)
    return {"all three": three[0], "cross": best_of(lambda: (xc.T @ yc)[0, 0], repeat)[0]}


def run(shape, threads: int, libs: dict, metrics: set[str] | None, repeat: int) -> None:
    """Print one table row per library row at this shape and thread count."""
    import torch  # noqa: PLC0415

    x, y = test_data(*shape)
    torch.set_num_threads(threads)
    ours = {}
    with threadpool_limits(limits=threads):
        floors = products_floors(x, y, repeat)
        for row in rows_for(x, y, libs):
            if metrics is not None and row.metric not in metrics:
                continue
            key = (row.metric, tuple(sorted(row.options.items())))
            if key not in ours:
                ours[key] = best_of(lambda r=row: similarity(x, y, r.metric, **r.options), repeat)
            seconds, value = ours[key]
            label = f"{row.metric}" + "".join(f" {k}={v}" for k, v in row.options.items())
            head = f"| {shape} | {threads} | {label} | {seconds:.3f} | {row.library} |"
            if row.peak_bytes > MEMORY_SHARE * free_bytes():
                need = row.peak_bytes / 2**30
                print(f"{head} skipped: needs about {need:.0f} GiB | | | | |", flush=True)
                continue
            theirs, their_value = best_of(row.call, repeat)
            note = row.differs or "same quantity"
            floor = PRODUCTS_FLOOR.get(row.metric)
            ceiling = f"{theirs / floors[floor]:.2f}" if floor else "–"
            print(
                f"{head} {theirs:.3f} | {theirs / seconds:.2f} | {ceiling} "
                f"| {abs(their_value - value):.1e} | {note} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shapes", nargs="*", help="n,p1,p2 (default: the issue's three shapes)")
    parser.add_argument("--libraries", type=Path, required=True, help="the fetched libraries")
    parser.add_argument("--threads", default="1,2", help="BLAS/torch threads, comma-separated")
    parser.add_argument("--metrics", help="comma-separated prunesim metrics (default: all rows)")
    parser.add_argument("--repeat", type=int, default=3, help="calls per timing")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    try:
        shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] or SHAPES
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error("shapes are n,p1,p2 and --threads a comma-separated list of integers")
    if missing := missing_libraries(args.libraries):
        parser.error(
            f"--libraries {args.libraries}: missing {', '.join(missing)} (expected the layout "
            "in this script's docstring; fetch them with the commands there)"
        )
    libs = {
        "kornblith": load_kornblith(args.libraries),
        "svcca": load_svcca(args.libraries),
        "anatome": load_anatome(args.libraries),
    }
    metrics = set(args.metrics.split(",")) if args.metrics else None
    print(
        "| (n, p1, p2) | threads | metric | prunesim (s) | library | library (s) | x | ceiling "
        "| |Δ| | |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---|")
    for shape in shapes:
        for count in threads:
            run(shape, count, libs, metrics, args.repeat)


if __name__ == "__main__":
    main()
