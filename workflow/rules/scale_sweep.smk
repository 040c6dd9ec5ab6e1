# Arbitrary-scale models (Meta-SRGAN, issue 6): HR-only stores, ONE training per dataset,
# evaluation at every scale of the dataset, the scale-sweep table/plot and a fixed-scale table.
#
# A model with `store: hr` trains once, on HR-only patch stores (LR made on the fly at one
# scale per minibatch), into results/models/{dataset}/{method}/any/, and is evaluated at every
# scale its dataset lists for it. A dataset with such a model is a "sweep dataset": its many
# scales would cost one interpreter start per (subject, scale) in `degrade` and per (method,
# scale) in `evaluate`, so here
#   * one `degrade_scales_{dataset}` job per subject writes lr/{degradation}/x{s}/{subject}
#     for every scale s (ruleorder over `degrade`);
#   * one `evaluate_scales_{dataset}_{method}` job per interpolation / arbitrary-scale method
#     writes the standard eval folder eval/{dataset}/{method}/x{s}/ for every scale (rules
#     without wildcards win over `evaluate` by Snakemake's rule precedence);
#   * one `figures_{dataset}` job writes every tables/figures/{dataset}_x{s}.png.
# Those eval folders are ordinary experiments: `tables` reads them into summary.csv like any
# other, and the sweep table/plot (tables/scale_sweep_{dataset}.{csv,md,png}) is read back
# from summary.csv. Fixed-scale models of a sweep dataset (edsr, srgan at ×2) go through the
# ordinary degrade → patches → train → evaluate rules; tables/{dataset}_x{s}_methods.md lists
# every method at each scale where a fixed-scale model runs (PSNR, SSIM and parameter counts:
# the paper's Table 1).


def is_arbitrary(dataset, method):
    return method not in INTERPOLATIONS and model_config(dataset, method).get("store") == "hr"


def sweep_datasets():
    return [d for d in config["datasets"] if any(is_arbitrary(d, m) for m, _s in method_entries(d))]


def sweep_methods(dataset):
    """[(method, scales)] evaluated in one job per method: interpolations and arbitrary-scale models."""
    return [(m, s) for m, s in method_entries(dataset) if m in INTERPOLATIONS or is_arbitrary(dataset, m)]


def table_scales(dataset):
    """Scales where a fixed-scale model runs: each gets a methods table (Table 1)."""
    fixed = [s for m, scales in method_entries(dataset)
             if m not in INTERPOLATIONS and not is_arbitrary(dataset, m) for s in scales]
    return sorted({fmt_scale(s) for s in fixed}, key=float)


def arbitrary_model(dataset, method):
    return f"results/models/{train_dataset(dataset)}/{method}/any/model.pt"


def scale_sweep_targets():
    out = []
    for d in sweep_datasets():
        out += [f"results/tables/scale_sweep_{d}.{ext}" for ext in ("csv", "md", "png")]
        out += [f"results/tables/{d}_x{s}_methods.md" for s in table_scales(d)]
    return out


# ---------------------------------------------------------------------------- HR-only stores, one training
rule patches_hr:
    """HR-only patch store: `patches.per_slice` random HR patches of every 2D slice."""
    input:
        split="results/{dataset}/split.json",
        prepared=lambda wc: expand("results/{d}/prepared/{s}/manifest.json", d=wc.dataset, s=subjects(wc.dataset)),
    output:
        "results/{dataset}/patches/{task}-hr_{split}.h5",
    params:
        p=lambda wc: ds(wc.dataset)["patches"],
        axes=lambda wc: ds(wc.dataset)["degradation"]["axes"],
        series=lambda wc: ds(wc.dataset)["target"],
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/{task}-hr_{split}.log",
    benchmark:
        "benchmarks/patches/{dataset}/{task}-hr_{split}.tsv"
    shell:
        "{MRISR} patches-hr --task {wildcards.task} --split-file {input.split} --split {wildcards.split}"
        " --prepared-dir results/{wildcards.dataset}/prepared --series {params.series}"
        " --hr-patch {params.p[hr_patch]} --per-slice {params.p[per_slice]} --axes {params.axes}"
        " --seed {params.seed} --out {output} > {log} 2>&1"


def arbitrary_train_config(dataset, method):
    """train_config plus the dataset's degradation: the LR made on the fly must be the LR the
    model is evaluated on."""
    cfg = train_config(dataset, method)
    deg = ds(dataset)["degradation"]
    cfg["train"]["degradation"], cfg["train"]["window"] = deg["mode"], deg["window"]
    return cfg


rule train_arbitrary:
    """One arbitrary-scale model per dataset: every minibatch at its own scale."""
    input:
        train=lambda wc: f"results/{wc.dataset}/patches/{task_of(wc.dataset)}-hr_train.h5",
        val=lambda wc: f"results/{wc.dataset}/patches/{task_of(wc.dataset)}-hr_val.h5",
    output:
        model="results/models/{dataset}/{method}/any/model.pt",
        log_csv="results/models/{dataset}/{method}/any/log.csv",
        card="results/models/{dataset}/{method}/any/card.md",
    params:
        cfg=lambda wc: json.dumps(arbitrary_train_config(wc.dataset, wc.method), sort_keys=True),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads()
    resources:
        gpu=lambda wc: 1 if config["device"] == "cuda" else 0,
    log:
        "logs/train/{dataset}/{method}/any.log",
    benchmark:
        "benchmarks/train/{dataset}/{method}/any.tsv"
    shell:
        "{MRISR} train --model-config {params.cfg:q} --train {input.train} --val {input.val}"
        " --out-dir results/models/{wildcards.dataset}/{wildcards.method}/any"
        " --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"


# ---------------------------------------------------------------------------- batched per sweep dataset
def _scales_text(scales):
    return " ".join(fmt_scale(s) for s in scales)


for _d in sweep_datasets():
    _deg = degradation_name(_d)
    _scales = [fmt_scale(s) for s in ds(_d)["scales"]]

    rule:
        name:
            f"degrade_scales_{_d}"
        input:
            f"results/{_d}/prepared/{{subject}}/manifest.json",
        output:
            nii=[f"results/{_d}/lr/{_deg}/x{s}/{{subject}}.nii.gz" for s in _scales],
            sidecar=[f"results/{_d}/lr/{_deg}/x{s}/{{subject}}.json" for s in _scales],
        params:
            hr=lambda wc, _d=_d: f"results/{_d}/prepared/{wc.subject}/{ds(_d)['target']}.nii.gz",
            deg=ds(_d)["degradation"],
            scales=_scales_text(_scales),
            root=f"results/{_d}/lr/{_deg}",
            meta=lambda wc, _d=_d: json.dumps({"dataset": _d, "subject": wc.subject, "series": ds(_d)["target"]}),
        log:
            f"logs/degrade/{_d}/{_deg}/scales/{{subject}}.log",
        benchmark:
            f"benchmarks/degrade/{_d}/{_deg}/scales/{{subject}}.tsv"
        shell:
            "{MRISR} degrade-scales --hr {params.hr} --subject {wildcards.subject} --out-root {params.root}"
            " --mode {params.deg[mode]} --scales {params.scales} --axes {params.deg[axes]}"
            " --window {params.deg[window]} --meta {params.meta:q} > {log} 2>&1"

    workflow.ruleorder(f"degrade_scales_{_d}", "degrade")
    workflow.localrules(f"figures_{_d}", f"scale_sweep_{_d}")  # bookkeeping, like `figure` and `tables`

    for _m, _mscales in sweep_methods(_d):
        _ms = [fmt_scale(s) for s in _mscales]

        rule:
            name:
                f"evaluate_scales_{_d}_{_m}"
            input:
                lr=lambda wc, _d=_d, _ms=_ms: [f"results/{_d}/lr/{degradation_name(_d)}/x{s}/{subj}.nii.gz"
                                               for s in _ms for subj in subjects(_d)],
                split=f"results/{_d}/split.json",
                model=[] if _m in INTERPOLATIONS else arbitrary_model(_d, _m),
            output:
                [f"{eval_dir(_d, _m, s)}/metrics.csv" for s in _ms],
            params:
                model="" if _m in INTERPOLATIONS else f"--model {arbitrary_model(_d, _m)}",
                method=_m,
                dataset=_d,
                task=task_of(_d),
                scales=_scales_text(_ms),
                lr_root=f"results/{_d}/lr/{_deg}",
                out_root=f"results/eval/{_d}/{_m}",
                device="cpu" if config["device"] == "auto" else config["device"],
            threads: job_threads()
            resources:
                # every scale in one job (rule names vary per dataset, so the cluster profile cannot list them)
                runtime=60 * max(4, len(_ms)),
                mem_mb=16000,
            log:
                f"logs/evaluate/{_d}/{_m}/scales.log",
            benchmark:
                f"benchmarks/evaluate/{_d}/{_m}/scales.tsv"
            shell:
                "{MRISR} evaluate-scales --method {params.method} {params.model} --split-file {input.split}"
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
        shell:
            "{MRISR} figures --jobs {params.jobs:q} > {log} 2>&1"

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
            methods=[m for m, _s in sweep_methods(_d)],
            tables=json.dumps(_tables, sort_keys=True),
        log:
            f"logs/scale_sweep/{_d}.log",
        shell:
            "{MRISR} scale-sweep --summary {input.summary} --dataset {params.dataset} --methods {params.methods}"
            " --out-csv {output.csv} --out-md {output.md} --plot {output.plot} --tables {params.tables:q} > {log} 2>&1"
