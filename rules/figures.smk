# Every figure is a rule of its own that reads only the aggregate: changing the figures block
# of the config, or a figure's code, redraws figures and computes nothing. The PNGs, captions
# (workflow/report/) and key numbers make up `snakemake --report`.


rule figure_similarity_vs_round:
    """Each layer vs its dense self round by round, IMP beside its controls, one view: the
    main metrics (part 'main') or the others (part 'companion')."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/similarity_{{part}}_{{view}}.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/similarity_{{part}}_{{view}}.png",
            caption="../workflow/report/similarity_vs_round.rst",
            category="{exp}",
            subcategory="similarity vs round",
            labels={"figure": "similarity vs round, {part}", "view": "{view}"},
        ),
    log:
        f"{FIGURES}/{{exp}}/similarity_{{part}}_{{view}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        figures=results_of("figures"),
        context=run_context,
        code=CODE["figure_similarity_vs_round"],
    script:
        "../workflow/scripts/figure_similarity_vs_round.py"


rule figure_layer_heatmaps:
    """Every dense layer vs every pruned layer for chosen rounds, beside the seed matrix."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/layer_heatmaps_{{view}}.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/layer_heatmaps_{{view}}.png",
            caption="../workflow/report/layer_heatmaps.rst",
            category="{exp}",
            subcategory="layer x layer",
            labels={"figure": "layer x layer heatmaps", "view": "{view}"},
        ),
    log:
        f"{FIGURES}/{{exp}}/layer_heatmaps_{{view}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        figures=results_of("figures"),
        context=run_context,
        code=CODE["figure_layer_heatmaps"],
    script:
        "../workflow/scripts/figure_layer_heatmaps.py"


rule figure_metric_agreement:
    """How consistently the metrics rank the same cells, and where they disagree most."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/metric_agreement_{{view}}.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/metric_agreement_{{view}}.png",
            caption="../workflow/report/metric_agreement.rst",
            category="{exp}",
            subcategory="metric agreement",
            labels={"figure": "metric agreement", "view": "{view}"},
        ),
        csv=f"{FIGURES}/{{exp}}/metric_agreement_{{view}}.csv",
    log:
        f"{FIGURES}/{{exp}}/metric_agreement_{{view}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        context=run_context,
        code=CODE["figure_metric_agreement"],
    script:
        "../workflow/scripts/figure_metric_agreement.py"


rule figure_similarity_vs_accuracy:
    """Each layer's similarity to its dense self vs the test accuracy lost."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/similarity_vs_accuracy_{{view}}.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/similarity_vs_accuracy_{{view}}.png",
            caption="../workflow/report/similarity_vs_accuracy.rst",
            category="{exp}",
            subcategory="similarity vs accuracy",
            labels={"figure": "similarity vs accuracy lost", "view": "{view}"},
        ),
    log:
        f"{FIGURES}/{{exp}}/similarity_vs_accuracy_{{view}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        figures=results_of("figures"),
        context=run_context,
        code=CODE["figure_similarity_vs_accuracy"],
    script:
        "../workflow/scripts/figure_similarity_vs_accuracy.py"


rule figure_accuracy_vs_sparsity:
    """Test accuracy vs prunable weights and vs FLOPs remaining, one line per method."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.png",
            caption="../workflow/report/accuracy_vs_sparsity.rst",
            category="{exp}",
            subcategory="accuracy",
            labels={"figure": "accuracy vs weights and FLOPs remaining", "view": "-"},
        ),
    log:
        f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        context=run_context,
        code=CODE["figure_accuracy_vs_sparsity"],
    script:
        "../workflow/scripts/figure_accuracy_vs_sparsity.py"


rule figure_units_per_round:
    """Units that never fire or never vary on the probe images, round by round."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/units_per_round.pdf",
        png=report(
            f"{FIGURES}/{{exp}}/units_per_round.png",
            caption="../workflow/report/units_per_round.rst",
            category="{exp}",
            subcategory="units",
            labels={"figure": "units without information", "view": "-"},
        ),
    log:
        f"{FIGURES}/{{exp}}/units_per_round.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        context=run_context,
        code=CODE["figure_units_per_round"],
    script:
        "../workflow/scripts/figure_units_per_round.py"


rule key_numbers:
    """The run's key numbers: accuracy and size per round, last-round similarity per layer
    beside chance and the other seed, undefined values by reason."""
    input:
        rules.aggregate.output,
    output:
        html=report(
            f"{FIGURES}/{{exp}}/key_numbers.html",
            caption="../workflow/report/key_numbers.rst",
            category="{exp}",
            subcategory="key numbers",
            labels={"figure": "key numbers", "view": "all"},
        ),
        csv=f"{FIGURES}/{{exp}}/key_numbers.csv",
    log:
        f"{FIGURES}/{{exp}}/key_numbers.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        figures=results_of("figures"),
        context=run_context,
        code=CODE["key_numbers"],
    script:
        "../workflow/scripts/key_numbers.py"


rule paper:
    """Every figure of every experiment."""
    input:
        paper_figures(),


localrules:
    aggregate,
    figure_similarity_vs_round,
    figure_layer_heatmaps,
    figure_metric_agreement,
    figure_similarity_vs_accuracy,
    figure_accuracy_vs_sparsity,
    figure_units_per_round,
    key_numbers,
    paper,
    numbers,
    all,
