rule prepare_data:
    """Load the experiment's dataset once; fix its train/test split and probe set."""
    output:
        f"{RESULTS}/{{exp}}/data.npz",
    log:
        f"{RESULTS}/{{exp}}/prepare_data.log",
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        dataset=results_of("dataset"),
        code=CODE["prepare_data"],
    script:
        "../workflow/scripts/prepare_data.py"


rule train_dense:
    """Train the dense network of one seed; keep its state at the rewind epoch."""
    input:
        data=rules.prepare_data.output[0],
    output:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/model.pt",
        mask=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/mask.pt",
        summary=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/summary.json",
        rewind=f"{RESULTS}/{{exp}}/seed{{seed}}/dense/{REWIND_FILE}",
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/dense/train.log",
    benchmark:
        f"{RESULTS}/{{exp}}/seed{{seed}}/dense/train.benchmark.tsv"
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
        prune_output_layer=lambda wc: experiment(wc)["pruning"]["prune_output_layer"],
        rewind_epoch=lambda wc: rewind_epoch(
            experiment(wc)["pruning"], experiment(wc)["train"]
        ),
        code=CODE["train_dense"],
    script:
        "../workflow/scripts/train_dense.py"
