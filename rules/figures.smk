FIGURES = f"{RESULTS}/figures"


rule figure_similarity_vs_depth:
    """Matched-layer similarity to the dense network vs depth, one line per round."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.pdf",
        png=f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.png",
    params:
        code=CODE["figures"],
    log:
        f"{FIGURES}/{{exp}}/similarity_vs_depth_{{method}}.log",
    script:
        "../workflow/scripts/figure_similarity_vs_depth.py"


rule figure_accuracy_vs_sparsity:
    """Test accuracy vs weights remaining, one line per method."""
    input:
        rules.aggregate.output,
    output:
        pdf=f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.pdf",
        png=f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.png",
    params:
        code=CODE["figures"],
    log:
        f"{FIGURES}/{{exp}}/accuracy_vs_sparsity.log",
    script:
        "../workflow/scripts/figure_accuracy_vs_sparsity.py"


def paper_figures():
    files = []
    for exp in config["experiments"]:
        files += expand(
            f"{FIGURES}/{exp}/similarity_vs_depth_{{method}}.{{ext}}",
            method=methods(exp),
            ext=["pdf", "png"],
        )
        files += expand(f"{FIGURES}/{exp}/accuracy_vs_sparsity.{{ext}}", ext=["pdf", "png"])
    return files


rule paper:
    """Every figure of every experiment."""
    input:
        paper_figures(),


localrules:
    aggregate,
    figure_similarity_vs_depth,
    figure_accuracy_vs_sparsity,
    paper,
    all,
