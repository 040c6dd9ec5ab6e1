# eval/ -> tables/summary.csv (the one table) -> Markdown, plots, figures; `snakemake --report`.


rule tables:
    input:
        [f"{eval_dir(d, m, s)}/metrics.csv" for d, m, s in experiments()],
    output:
        csv=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
        md=report("results/tables/summary.md", caption="../report/summary_md.rst", category="Tables"),
        plot=report("results/tables/psnr.png", caption="../report/psnr.rst", category="Plots"),
    params:
        dirs=[eval_dir(d, m, s) for d, m, s in experiments()],
    log:
        "logs/tables.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m mrisr tables --eval-dirs {params.dirs} --out-dir results/tables > {log} 2>&1"


rule figure:
    input:
        lambda wc: [f"{eval_dir(wc.dataset, m, wc.scale)}/metrics.csv" for m in methods_at(wc.dataset, wc.scale)],
    output:
        report(
            "results/tables/figures/{dataset}_x{scale}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
    params:
        dirs=lambda wc: [eval_dir(wc.dataset, m, wc.scale) for m in methods_at(wc.dataset, wc.scale)],
    log:
        "logs/figure/{dataset}_x{scale}.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m mrisr figure --eval-dirs {params.dirs} --out {output} --title '{wildcards.dataset} ×{wildcards.scale}'"
        " > {log} 2>&1"
