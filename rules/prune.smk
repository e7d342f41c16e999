rule prune_imp:
    """One IMP round with learning-rate rewinding: prune by magnitude, retrain in full."""
    input:
        unpack(previous_round("imp")),
        data=rules.prepare_data.output[0],
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/mask.pt",
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/metrics.json",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/train.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS,
    params:
        train=lambda wc: experiment(wc)["train"],
        rate=lambda wc: experiment(wc)["pruning"]["rate"],
        scope=lambda wc: experiment(wc)["pruning"]["scope"],
        device=config["device"],
        code=CODE["train"],
    script:
        "../workflow/scripts/prune_imp.py"


rule prune_random:
    """One round of a random baseline at IMP round r's sparsity (total or per layer)."""
    input:
        unpack(previous_round(None)),
        data=rules.prepare_data.output[0],
        reference=mirrored_imp_mask,
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/mask.pt",
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/metrics.json",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{method}}/round{{round}}/train.benchmark.tsv"
    wildcard_constraints:
        method="random_global|random_layerwise",
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS,
    params:
        train=lambda wc: experiment(wc)["train"],
        device=config["device"],
        code=CODE["train"],
    script:
        "../workflow/scripts/prune_random.py"
