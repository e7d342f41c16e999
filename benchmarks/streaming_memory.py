"""Peak memory of comparing two activation stores: it must not grow with the number of samples.

Writes two stores (two layers of p = 1,024 float32 features each) for every n, then runs
``compare_stores`` on them in a fresh process and reports that process's peak resident memory
and the time, with the ratio against the smallest n measured in the same run. The RBF kernel is
left out: it is n × n by definition (see docs/metrics.md).

    python benchmarks/streaming_memory.py                 # n = 10,000 and 100,000
    python benchmarks/streaming_memory.py 20000 200000    # other sample counts
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time

P = 1024
METRICS = ("cca_mean", "svcca", "pwcca", "cka_linear", "cka_debiased", "nbs")


def write_store(path: str, n: int, seed: int) -> None:
    """A store of two p-wide layers from a fixed random network on n random inputs."""
    import torch
    from torch import nn

    from prunesim.activations import record_activations

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, P), nn.Tanh(), nn.Linear(P, P))
    model.recorded_layers = ("1", "2")
    inputs = torch.randn(n, 16, generator=torch.Generator().manual_seed(0))  # same probe set
    record_activations(
        model, ["1", "2"], inputs, path, batch_size=5000, attrs={"probe_digest": "bench"}
    )


def compare(path_a: str, path_b: str) -> None:
    from prunesim.comparison import CompareSettings, compare_stores

    start = time.perf_counter()
    ds = compare_stores(path_a, path_b, CompareSettings(metrics=METRICS, views=("flatten",)))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    values = ds.similarity.sel(view="flatten", layer_a="2", layer_b="2").values.tolist()
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "values": values}))


def run(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def main(sizes: list[int]) -> None:
    print(f"compare_stores of two stores with 2 layers x {P} features, metrics {METRICS}")
    print(f"{'n':>8} {'store MiB':>10} {'seconds':>8} {'peak RSS MiB':>13} {'RSS ratio':>10}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            a, b = f"{tmp}/a{n}.zarr", f"{tmp}/b{n}.zarr"
            run("write", a, str(n), "1")
            run("write", b, str(n), "2")
            result = json.loads(run("compare", a, b))
            base = base or result["peak_mib"]
            raw = 2 * n * P * 4 / 2**20
            print(
                f"{n:8d} {raw:10.0f} {result['seconds']:8.1f} {result['peak_mib']:13.0f} "
                f"{result['peak_mib'] / base:10.2f}",
                flush=True,
            )
            for path in (a, b):
                subprocess.run(["rm", "-rf", path], check=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "write":
        write_store(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        main([int(v) for v in sys.argv[1:]] or [10_000, 100_000])
