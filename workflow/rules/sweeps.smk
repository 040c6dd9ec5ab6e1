# Inference-time sweeps of video-model settings (Ω stages, warm-up frames n), and model
# cost tables (the phase-aware cine work, issue 4).
#
# A model's `sweeps: {key: [values]}` re-evaluates the trained model with `mrisr evaluate
# --set key=value` (no retraining) into eval/{dataset}/{method}/x{scale}/sweep/{key}{value}/.
# Those folders are NOT experiments: the `tables` rule never reads them, so summary.csv
# holds the main runs only; tables/sweeps.csv (+ .png) collects them instead.
# Sweeps run on the datasets that train the model (not on external test sets), at the
# method's largest scale (the paper's Ω / n study is at ×4): one sweep costs one
# evaluation per value, so every scale would multiply the CPU budget for little insight.
#
# Cost: tables/cost_{dataset}_x{scale}.csv (+ .png) lists parameters and inference
# frames/s of every method of a dataset that has a clip-store (video) model, at that
# dataset's largest scale (the paper's Fig. 4a).

wildcard_constraints:
    key=r"[a-z][a-z_]*",
    value=r"-?[0-9]+",


def sweep_experiments():
    """(dataset, method, scale, key, value) of every configured inference-time sweep."""
    out = []
    for name, d in config["datasets"].items():
        if d.get("train_from"):
            continue
        for method, scales in method_entries(name):
            if method in INTERPOLATIONS:
                continue
            sweeps = model_config(name, method).get("sweeps") or {}
            scale = fmt_scale(max(map(float, scales)))
            out += [(name, method, scale, key, int(v)) for key, values in sweeps.items() for v in values]
    return out


def sweep_dir(dataset, method, scale, key, value):
    return f"{eval_dir(dataset, method, scale)}/sweep/{key}{value}"


def cost_experiments():
    """(dataset, scale) of each training dataset with a video (clip-store) model: its largest scale."""
    out = []
    for name, d in config["datasets"].items():
        if d.get("train_from"):
            continue
        if any(m not in INTERPOLATIONS and model_config(name, m).get("store") == "clips"
               for m, _s in method_entries(name)):
            out.append((name, fmt_scale(max(map(float, d["scales"])))))
    return out


def sweep_targets():
    targets = []
    if sweep_experiments():
        targets += ["results/tables/sweeps.csv", "results/tables/sweeps.png"]
    for d, s in cost_experiments():
        targets += [f"results/tables/cost_{d}_x{s}.csv", f"results/tables/cost_{d}_x{s}.png"]
    return targets


rule sweep_evaluate:
    """One trained model re-evaluated with one inference-time setting changed."""
    input:
        lr=all_lr,
        split="results/{dataset}/split.json",
        model="results/models/{dataset}/{method}/x{scale}/model.pt",
    output:
        metrics="results/eval/{dataset}/{method}/x{scale}/sweep/{key}{value}/metrics.csv",
    params:
        lr_dir=lr_dir,
        task=lambda wc: task_of(wc.dataset),
        out_dir=lambda wc: sweep_dir(wc.dataset, wc.method, wc.scale, wc.key, wc.value),
        device="cpu" if config["device"] == "auto" else config["device"],
    threads: job_threads()
    log:
        "logs/sweep/{dataset}/{method}/x{scale}/{key}{value}.log",
    benchmark:
        "benchmarks/sweep/{dataset}/{method}/x{scale}/{key}{value}.tsv"
    shell:
        "{MRISR} evaluate --method {wildcards.method} --model {input.model} --split-file {input.split}"
        " --lr-dir {params.lr_dir} --out-dir {params.out_dir} --dataset {wildcards.dataset}"
        " --task {params.task} --scale {wildcards.scale} --device {params.device} --threads {threads}"
        " --no-sr --set {wildcards.key}={wildcards.value} > {log} 2>&1"


rule sweep_table:
    input:
        [f"{sweep_dir(*e)}/metrics.csv" for e in sweep_experiments()],
    output:
        csv="results/tables/sweeps.csv",
        html=report("results/tables/sweeps.html", caption="../report/sweeps_table.rst", category="Tables",
                    subcategory="Hyper-parameter studies"),
        plot=report("results/tables/sweeps.png", caption="../report/sweeps_plot.rst", category="Plots"),
    params:
        dirs=[sweep_dir(*e) for e in sweep_experiments()],
    log:
        "logs/sweep_table.log",
    shell:
        "{MRISR} sweep-table --sweep-dirs {params.dirs} --out {output.csv} --plot {output.plot} > {log} 2>&1"


def cost_methods(dataset, scale):
    return methods_at(dataset, scale)


rule cost:
    """Parameters and inference frames/s of every method at one dataset × scale (Fig. 4a)."""
    input:
        lr=all_lr,
        split="results/{dataset}/split.json",
        models=lambda wc: [f"results/models/{wc.dataset}/{m}/x{wc.scale}/model.pt"
                           for m in cost_methods(wc.dataset, wc.scale) if m not in INTERPOLATIONS],
    output:
        csv="results/tables/cost_{dataset}_x{scale}.csv",
        html=report("results/tables/cost_{dataset}_x{scale}.html", caption="../report/cost_table.rst",
                    category="Tables", subcategory="Cost"),
        plot=report("results/tables/cost_{dataset}_x{scale}.png", caption="../report/cost_plot.rst", category="Plots"),
    params:
        lr_dir=lr_dir,
        specs=lambda wc: [m if m in INTERPOLATIONS else f"{m}=results/models/{wc.dataset}/{m}/x{wc.scale}/model.pt"
                          for m in cost_methods(wc.dataset, wc.scale)],
        device="cpu" if config["device"] == "auto" else config["device"],
    threads: job_threads()
    log:
        "logs/cost/{dataset}_x{scale}.log",
    shell:
        "{MRISR} cost --methods {params.specs} --split-file {input.split} --lr-dir {params.lr_dir}"
        " --dataset {wildcards.dataset} --scale {wildcards.scale} --device {params.device} --threads {threads}"
        " --out {output.csv} --plot {output.plot} > {log} 2>&1"
