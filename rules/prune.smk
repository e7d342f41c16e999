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
        model=lambda wc: experiment(wc)["model"],
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
        model=lambda wc: experiment(wc)["model"],
        device=config["device"],
        code=CODE["train"],
    script:
        "../workflow/scripts/prune_random.py"


rule prune_epruner:
    """EPruner at the round's beta: keep each layer's exemplar filters of the dense network
    (affinity propagation), start from their weights, fine-tune."""
    input:
        dense=dense_model,
        data=rules.prepare_data.output[0],
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/epruner/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/epruner/round{{round}}/mask.pt",
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/epruner/round{{round}}/metrics.json",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/epruner/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/epruner/round{{round}}/train.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS,
    params:
        train=lambda wc: experiment(wc)["train"],
        beta=lambda wc: experiment(wc)["pruning"]["epruner"]["betas"][int(wc.round) - 1],
        finetune_epochs=lambda wc: experiment(wc)["pruning"]["epruner"][
            "finetune_epochs"
        ],
        prune_output_layer=lambda wc: experiment(wc)["pruning"]["prune_output_layer"],
        model=lambda wc: experiment(wc)["model"],
        device=config["device"],
        code=CODE["train"],
    script:
        "../workflow/scripts/prune_epruner.py"


rule prune_cka_layers:
    """One CKA layer-pruning step: remove the residual block whose removal keeps the
    penultimate representation most similar (linear CKA), fine-tune."""
    input:
        unpack(previous_round("cka_layers")),
        dense=dense_model,
        data=rules.prepare_data.output[0],
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/cka_layers/round{{round}}/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/cka_layers/round{{round}}/mask.pt",
        metrics=f"{RESULTS}/{{exp}}/seed{{seed}}/cka_layers/round{{round}}/metrics.json",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/cka_layers/round{{round}}/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/cka_layers/round{{round}}/train.benchmark.tsv"
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=GPUS,
    params:
        train=lambda wc: experiment(wc)["train"],
        finetune_epochs=lambda wc: experiment(wc)["pruning"]["cka_layers"][
            "finetune_epochs"
        ],
        criterion_samples=lambda wc: experiment(wc)["pruning"]["cka_layers"][
            "criterion_samples"
        ],
        prune_output_layer=lambda wc: experiment(wc)["pruning"]["prune_output_layer"],
        model=lambda wc: experiment(wc)["model"],
        device=config["device"],
        code=CODE["train"],
    script:
        "../workflow/scripts/prune_cka_layers.py"
