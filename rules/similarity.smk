rule compare:
    """Similarity of every layer pair of one model to the dense network of its seed."""
    input:
        a=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/activations.zarr",
        b=f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/activations.zarr",
    output:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/similarity.nc",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/similarity.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/similarity.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS,
    params:
        settings=results_of("similarity"),
        code=CODE["compare"],
    script:
        "../workflow/scripts/compare.py"


rule compare_seeds:
    """Similarity of the dense networks of two seeds: how far apart independent training runs
    are, the reference against which pruning-induced change is read."""
    input:
        a=f"{RESULTS}/{{exp}}/seed{{seed_a}}/dense/activations.zarr",
        b=f"{RESULTS}/{{exp}}/seed{{seed_b}}/dense/activations.zarr",
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
        settings=results_of("similarity"),
        code=CODE["compare"],
    script:
        "../workflow/scripts/compare.py"


rule aggregate:
    """One Dataset per experiment over seed, method and round, with accuracy and sparsity."""
    input:
        similarity=experiment_files("similarity.nc"),
        summaries=experiment_files("summary.json"),
        seed_similarity=seed_pair_files,
    output:
        aggregate_file("{exp}"),
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
