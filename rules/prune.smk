rule prune:
    """One round of a pruning method (prunesim.methods): start from the files its registry
    entry names, prune, retrain or fine-tune."""
    input:
        unpack(round_inputs),
        data=rules.prepare_data.output[0],
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/mask.pt",
        summary=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/summary.json",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/train.benchmark.tsv"
    wildcard_constraints:
        method="|".join(METHODS),
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS,
    params:
        arch=lambda wc: experiment(wc)["model"],
        train=results_of("train"),
        settings=method_settings,
        job_module=lambda wc: METHODS[wc.method].job,
        code=lambda wc: PRUNE_CODE[wc.method],
    script:
        "../workflow/scripts/prune.py"
