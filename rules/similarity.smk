rule compare:
    """Similarity of every layer pair of one model to the dense network of its seed."""
    input:
        dense=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/activations.zarr",
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/activations.zarr",
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.nc",
    params:
        similarity=lambda wc: experiment(wc)["similarity"],
        code=CODE["compare"],
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/compare.py"


def experiment_files(name):
    def files(wildcards):
        return [
            f"{model_dir(wildcards.exp, m['seed'], m['method'], m['round'])}/{name}"
            for m in experiment_models(wildcards.exp)
        ]

    return files


rule aggregate:
    """One Dataset per experiment over seed, method and round, with accuracy and sparsity."""
    input:
        similarity=experiment_files("similarity.nc"),
        metrics=experiment_files("metrics.json"),
    output:
        f"{RESULTS}/{{exp}}/similarity.nc",
    params:
        models=lambda wc: experiment_models(wc.exp),
        code=CODE["aggregate"],
    log:
        f"{RESULTS}/{{exp}}/aggregate.log",
    script:
        "../workflow/scripts/aggregate.py"
