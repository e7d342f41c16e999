rule extract_activations:
    """Record every recorded layer of one model on the experiment's probe set (zarr)."""
    input:
        model=f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/model.pt",
        data=rules.prepare_data.output[0],
    output:
        activation_store(f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/activations.zarr"),
    log:
        f"{RESULTS}/{{exp}}/seed{{seed}}/{{stage}}/activations.log",
    conda:
        "../envs/prunesim.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=GPUS,
    params:
        batch_size=lambda wc: experiment(wc)["activations"]["batch_size"],
        arch=lambda wc: experiment(wc)["model"],
        expect=expected_provenance,
        code=CODE["extract_activations"],
    script:
        "../workflow/scripts/extract_activations.py"
