# eval/ -> tables/summary.csv (the one table) -> Markdown/HTML tables, plots, figures; `snakemake --report`.
#
# The Snakemake report shows HTML files and images inline but CSV/Markdown only as download
# links, so every table also has an .html rendering marked for the report (category "Tables"),
# and every plot is marked too (category "Plots"; comparison figures under "Figures").


rule tables:
    input:
        [f"{eval_dir(d, m, s)}/metrics.csv" for d, m, s in experiments()],
    output:
        csv=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables",
                   subcategory="Data"),
        md=report("results/tables/summary.md", caption="../report/summary_md.rst", category="Tables",
                  subcategory="Data"),
        html=report("results/tables/summary.html", caption="../report/summary_html.rst", category="Tables",
                    subcategory="Results"),
        plot=report("results/tables/psnr.png", caption="../report/psnr.rst", category="Plots"),
    params:
        dirs=[eval_dir(d, m, s) for d, m, s in experiments()],
        # which rows are ablations / scale sweeps (from the config); the rest is the main comparison.
        # Not key-sorted: the ablation rungs keep the config's order (the ladder), row for row.
        families=lambda wc: json.dumps(get_table_families()),
    log:
        "logs/tables.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m mrisr tables --eval-dirs {params.dirs} --out-dir results/tables --families {params.families:q} > {log} 2>&1"


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
