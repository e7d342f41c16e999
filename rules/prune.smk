def previous_imp_round(wildcards):
    """Round r starts from round r - 1; round 1 starts from the dense network."""
    r = int(wildcards.round)
    folder = model_dir(wildcards.exp, wildcards.seed, "imp", r - 1)
    return {"model": f"{folder}/model.pt", "mask": f"{folder}/mask.pt"}


rule prune_imp:
    """One IMP round with learning-rate rewinding: prune by magnitude, retrain in full."""
    input:
        unpack(previous_imp_round),
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/mask.pt",
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/metrics.json",
    params:
        dataset=lambda wc: experiment(wc)["dataset"],
        train=lambda wc: experiment(wc)["train"],
        rate=lambda wc: experiment(wc)["pruning"]["rate"],
        scope=lambda wc: experiment(wc)["pruning"]["scope"],
        device=config["device"],
        code=CODE["train"],
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/imp/round{{round}}/train.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../workflow/scripts/prune_imp.py"
