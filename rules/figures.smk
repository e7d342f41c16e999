rule figure_similarity_vs_depth:
    """Matched-layer similarity to the dense network vs depth, one line per round."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.pdf",
        png=f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.png",
    log:
        f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        code=CODE["figure_similarity_vs_depth"],
    script:
        "../workflow/scripts/figure_similarity_vs_depth.py"


rule figure_similarity_vs_round:
    """Each layer vs its dense self round by round, IMP beside its controls, one view."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/similarity_vs_round_{{view}}.pdf",
        png=f"{FIGURES}/{{exp}}/similarity_vs_round_{{view}}.png",
    log:
        f"{FIGURES}/{{exp}}/similarity_vs_round_{{view}}.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        code=CODE["figure_similarity_vs_round"],
    script:
        "../workflow/scripts/figure_similarity_vs_round.py"


rule figure_accuracy_vs_sparsity:
    """Test accuracy vs prunable weights and vs FLOPs remaining, one line per method."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.pdf",
        png=f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.png",
    log:
        f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.log",
    conda:
        "../envs/prunesim.yaml"
    params:
        code=CODE["figure_accuracy_vs_sparsity"],
    script:
        "../workflow/scripts/figure_accuracy_vs_sparsity.py"


rule paper:
    """Every figure of every experiment."""
    input:
        paper_figures(),


localrules:
    aggregate,
    figure_similarity_vs_depth,
    figure_similarity_vs_round,
    figure_accuracy_vs_sparsity,
    paper,
    all,
