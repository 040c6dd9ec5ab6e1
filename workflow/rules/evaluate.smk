# Stage evaluate: trained model (or an interpolation) + lr/ + prepared/ -> eval/{dataset}/{method}/x{scale}/;
# inference-time studies of a model's settings (config key `sweeps`, e.g. Ω stages and warm-up
# frames n: re-evaluation without retraining, common.smk) and model cost tables.
# Many scales of a scale-sweep dataset: batched.smk.


rule evaluate:
    input:
        lr=get_all_lr,
        split="results/{dataset}/split.json",
        model=get_model,
    output:
        metrics="results/eval/{dataset}/{method}/x{scale}/metrics.csv",
    params:
        lr_dir=get_lr_dir,
        task=lambda wc: task_of(wc.dataset),
        model=get_model_arg,
        ref=get_reference_arg,
        device=get_device(),
    threads: get_threads
    log:
        "logs/evaluate/{dataset}/{method}/x{scale}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{method}/x{scale}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m mrisr evaluate --method {wildcards.method} {params.model} --split-file {input.split}"
        " --lr-dir {params.lr_dir} --out-dir results/eval/{wildcards.dataset}/{wildcards.method}/x{wildcards.scale}"
        " --dataset {wildcards.dataset} --task {params.task} --scale {wildcards.scale} {params.ref}"
        " --device {params.device} --threads {threads} > {log} 2>&1"


rule study_evaluate:
    """One trained model re-evaluated with one inference-time setting changed (an eval folder that
    never enters summary.csv)."""
    input:
        lr=get_all_lr,
        split="results/{dataset}/split.json",
        model="results/models/{dataset}/{method}/x{scale}/model.pt",
    output:
        metrics="results/eval/{dataset}/{method}/x{scale}/sweep/{key}{value}/metrics.csv",
    params:
        lr_dir=get_lr_dir,
        task=lambda wc: task_of(wc.dataset),
        out_dir=get_study_dir,
        device=get_device(),
    threads: get_threads
    log:
        "logs/sweep/{dataset}/{method}/x{scale}/{key}{value}.log",
    benchmark:
        "benchmarks/sweep/{dataset}/{method}/x{scale}/{key}{value}.tsv"
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m mrisr evaluate --method {wildcards.method} --model {input.model} --split-file {input.split}"
        " --lr-dir {params.lr_dir} --out-dir {params.out_dir} --dataset {wildcards.dataset}"
        " --task {params.task} --scale {wildcards.scale} --device {params.device} --threads {threads}"
        " --no-sr --set {wildcards.key}={wildcards.value} > {log} 2>&1"


rule study_table:
    """tables/sweeps.csv (long form) + plot of every inference-time study."""
    input:
        get_study_metrics,
    output:
        csv="results/tables/sweeps.csv",
        html=report("results/tables/sweeps.html", caption="../report/sweeps_table.rst", category="Tables",
                    subcategory="Hyper-parameter studies"),
        plot=report("results/tables/sweeps.png", caption="../report/sweeps_plot.rst", category="Plots"),
    params:
        dirs=get_study_dirs,
    log:
        "logs/sweep_table.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m mrisr sweep-table --sweep-dirs {params.dirs} --out {output.csv} --plot {output.plot} > {log} 2>&1"


rule cost:
    """Parameters and inference frames/s of every method at one dataset × scale (Fig. 4a)."""
    input:
        lr=get_all_lr,
        split="results/{dataset}/split.json",
        models=get_cost_models,
    output:
        csv="results/tables/cost_{dataset}_x{scale}.csv",
        html=report("results/tables/cost_{dataset}_x{scale}.html", caption="../report/cost_table.rst",
                    category="Tables", subcategory="Cost"),
        plot=report("results/tables/cost_{dataset}_x{scale}.png", caption="../report/cost_plot.rst", category="Plots"),
    params:
        lr_dir=get_lr_dir,
        specs=get_cost_specs,
        device=get_device(),
    threads: get_threads
    log:
        "logs/cost/{dataset}_x{scale}.log",
    conda:
        "../../envs/evaluate.yaml"
    shell:
        "python -m mrisr cost --methods {params.specs} --split-file {input.split} --lr-dir {params.lr_dir}"
        " --dataset {wildcards.dataset} --scale {wildcards.scale} --device {params.device} --threads {threads}"
        " --out {output.csv} --plot {output.plot} > {log} 2>&1"
