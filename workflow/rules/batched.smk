# BATCHED RULES (generated): the one file whose rules are made in a loop, one family per
# scale-sweep dataset (a dataset with an arbitrary-scale model, `store: hr`). Their names are
# listed by common.smk's batched_rule_names(); tests/test_workflow_layout.py checks that every
# other rule is written out literally in a rule file.
#
# Why generated: a sweep dataset evaluates every listed scale (30 in the default config) as an
# ordinary experiment, and one interpreter start per (dataset, scale) in `degrade` and per
# (method, scale) in `evaluate` would cost more than the work. One job here writes every scale,
# and Snakemake fixes a rule's number of outputs when it parses the rule, so a rule whose outputs
# are "every scale of this dataset" needs the dataset's scale list, i.e. one rule per dataset.
#   * degrade_scales_{dataset}: one job writes lr/{degradation}/x{s}/{subject} for every subject and
#     every scale s, then each lr/{degradation}/x{s}.json manifest (ruleorder over `degrade`);
#   * evaluate_scales_{dataset}_{method}: one job per interpolation / arbitrary-scale method writes
#     the standard eval folder eval/{dataset}/{method}/x{s}/ for every scale (rules without
#     wildcards win over `evaluate` by Snakemake's rule precedence);
#   * figures_{dataset}: every tables/figures/{dataset}_x{s}.png in one job;
#   * scale_sweep_{dataset}: from summary.csv, tables/scale_sweep_{dataset}.{csv,md,png} (PSNR/SSIM
#     against scale: the Meta-SRGAN paper's Fig. 8) and tables/{dataset}_x{s}_methods.md at each
#     scale where a fixed-scale model runs (the paper's Table 1).
# Those eval folders are ordinary experiments: `tables` reads them into summary.csv. Fixed-scale
# models of a sweep dataset (edsr, srgan at ×2) go through the ordinary degrade → patches →
# train → evaluate rules; the arbitrary-scale model itself through the ordinary `train` rule
# (models/{dataset}/{method}/any/).

for _d in scale_sweep_datasets():
    _deg = degradation_name(_d)
    _scales = [fmt_scale(s) for s in ds(_d)["scales"]]

    rule:
        name:
            f"degrade_scales_{_d}"
        input:
            f"results/{_d}/prepared.json",
        output:
            [lr_manifest(_d, s) for s in _scales],
        params:
            deg=ds(_d)["degradation"],
            scales=scales_text(_scales),
            root=get_lr_root,
            prepared=get_prepared_dir,
            meta=json.dumps({"dataset": _d, "series": ds(_d)["target"]}),
        resources:
            runtime=240,  # minutes: every subject and scale in one job (Slurm)
        log:
            f"logs/degrade/{_d}/{_deg}/scales.log",
        benchmark:
            f"benchmarks/degrade/{_d}/{_deg}/scales.tsv"
        conda:
            "../../envs/degrade.yaml"
        shell:
            "python -m mrisr degrade-scales --subjects {input} --prepared-dir {params.prepared}"
            " --out-root {params.root} --mode {params.deg[mode]} --scales {params.scales} --axes {params.deg[axes]}"
            " --window {params.deg[window]} --meta {params.meta:q} > {log} 2>&1"

    workflow.ruleorder(f"degrade_scales_{_d}", "degrade")
    workflow.localrules(f"figures_{_d}", f"scale_sweep_{_d}")  # bookkeeping, like `figure` and `tables`

    for _m, _mscales in scale_sweep_methods(_d):
        _ms = [fmt_scale(s) for s in _mscales]

        rule:
            name:
                f"evaluate_scales_{_d}_{_m}"
            input:
                lr=[lr_manifest(_d, s) for s in _ms],
                split=f"results/{_d}/split.json",
                model=[] if _m in INTERPOLATIONS else arbitrary_model(_d, _m),
            output:
                [f"{eval_dir(_d, _m, s)}/metrics.csv" for s in _ms],
            params:
                model="" if _m in INTERPOLATIONS else f"--model {arbitrary_model(_d, _m)}",
                method=_m,
                dataset=_d,
                task=task_of(_d),
                scales=scales_text(_ms),
                lr_root=get_lr_root_of_input,
                out_root=get_eval_root,
                device=get_device(),
            threads: get_threads
            resources:
                # every scale in one job: the Slurm profile cannot name these rules, so they say it here
                runtime=60 * max(4, len(_ms)),
                mem_mb=16000,
            log:
                f"logs/evaluate/{_d}/{_m}/scales.log",
            benchmark:
                f"benchmarks/evaluate/{_d}/{_m}/scales.tsv"
            conda:
                "../../envs/evaluate.yaml"
            shell:
                "python -m mrisr evaluate-scales --method {params.method} {params.model} --split-file {input.split}"
                " --lr-root {params.lr_root} --out-root {params.out_root} --dataset {params.dataset}"
                " --task {params.task} --scales {params.scales} --device {params.device} --threads {threads}"
                " > {log} 2>&1"

    _fig_jobs = {f"results/tables/figures/{_d}_x{s}.png": {
        "eval_dirs": [eval_dir(_d, m, s) for m in methods_at(_d, s)], "title": f"{_d} ×{s}"} for s in _scales}

    rule:
        name:
            f"figures_{_d}"
        input:
            [f"{e}/metrics.csv" for job in _fig_jobs.values() for e in job["eval_dirs"]],
        output:
            [report(f, caption="../report/figures_sweep.rst", category="Figures", subcategory=_d) for f in _fig_jobs],
        params:
            jobs=json.dumps(_fig_jobs, sort_keys=True),
        log:
            f"logs/figure/{_d}_scales.log",
        benchmark:
            f"benchmarks/figure/{_d}_scales.tsv"
        conda:
            "../../envs/report.yaml"
        shell:
            "python -m mrisr figures --jobs {params.jobs:q} > {log} 2>&1"

    _tables = {f"results/tables/{_d}_x{s}_methods.md": [eval_dir(_d, m, s) for m in methods_at(_d, s)]
               for s in table_scales(_d)}

    rule:
        name:
            f"scale_sweep_{_d}"
        input:
            summary="results/tables/summary.csv",
        output:
            csv=f"results/tables/scale_sweep_{_d}.csv",
            md=f"results/tables/scale_sweep_{_d}.md",
            html=report(f"results/tables/scale_sweep_{_d}.html", caption="../report/scale_sweep_table.rst",
                        category="Tables", subcategory="Scale sweeps"),
            plot=report(f"results/tables/scale_sweep_{_d}.png", caption="../report/scale_sweep_plot.rst",
                        category="Plots"),
            tables=list(_tables),
            tables_html=[report(t.removesuffix(".md") + ".html", caption="../report/methods_table.rst",
                                category="Tables", subcategory="Scale sweeps") for t in _tables],
        params:
            dataset=_d,
            methods=[m for m, _s in scale_sweep_methods(_d)],
            tables=json.dumps(_tables, sort_keys=True),
        log:
            f"logs/scale_sweep/{_d}.log",
        conda:
            "../../envs/report.yaml"
        shell:
            "python -m mrisr scale-sweep --summary {input.summary} --dataset {params.dataset} --methods {params.methods}"
            " --out-csv {output.csv} --out-md {output.md} --plot {output.plot} --tables {params.tables:q} > {log} 2>&1"
