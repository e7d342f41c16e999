rule compare:
    """Similarity of every layer pair of one model to the dense network of its seed."""
    input:
        dense=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/activations.zarr",
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/activations.zarr",
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.nc",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{model}}/similarity.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS,
    params:
        similarity=lambda wc: experiment(wc)["similarity"],
        device=config["device"],
        code=CODE["compare"],
    script:
        "../workflow/scripts/compare.py"


rule compare_seeds:
    """Similarity of the dense networks of two seeds: how far apart independent training runs
    are, the reference against which pruning-induced change is read."""
    input:
        dense=f"{RESULTS}/{{exp}}/seed{{seed_a}}/dense/activations.zarr",
        model=f"{RESULTS}/{{exp}}/seed{{seed_b}}/dense/activations.zarr",
    output:
        f"{RESULTS}/{{exp}}/seeds/seed{{seed_a}}_vs_seed{{seed_b}}/similarity.nc",
    log:
        f"{RESULTS}/{{exp}}/seeds/seed{{seed_a}}_vs_seed{{seed_b}}/similarity.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seeds/seed{{seed_a}}_vs_seed{{seed_b}}/similarity.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS,
    params:
        similarity=lambda wc: experiment(wc)["similarity"],
        device=config["device"],
        code=CODE["compare"],
    script:
        "../workflow/scripts/compare.py"


rule aggregate:
    """One Dataset per experiment over seed, method and round, with accuracy and sparsity."""
    input:
        similarity=experiment_files("similarity.nc"),
        metrics=experiment_files("metrics.json"),
        seed_similarity=seed_pair_files,
    output:
        f"{RESULTS}/{{exp}}/similarity.nc",
    log:
        f"{RESULTS}/{{exp}}/aggregate.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        models=lambda wc: experiment_models(wc.exp),
        seed_pairs=lambda wc: seed_pairs(wc.exp),
        code=CODE["aggregate"],
    script:
        "../workflow/scripts/aggregate.py"
