# trained model (or an interpolation) + lr/ + prepared/ -> eval/{dataset}/{method}/x{scale}/


def model_input(wc):
    if wc.method in INTERPOLATIONS:
        return []
    return f"results/models/{train_dataset(wc.dataset)}/{wc.method}/x{wc.scale}/model.pt"


rule evaluate:
    input:
        lr=all_lr,
        split="results/{dataset}/split.json",
        model=model_input,
    output:
        metrics="results/eval/{dataset}/{method}/x{scale}/metrics.csv",
    params:
        lr_dir=lr_dir,
        task=lambda wc: task_of(wc.dataset),
        model=lambda wc, input: f"--model {input.model}" if input.model else "",
        ref=lambda wc: f"--reference {ds(wc.dataset)['reference']}" if ds(wc.dataset).get("reference") else "",
        device="cpu" if config["device"] == "auto" else config["device"],
    threads: job_threads()
    log:
        "logs/evaluate/{dataset}/{method}/x{scale}.log",
    benchmark:
        "benchmarks/evaluate/{dataset}/{method}/x{scale}.tsv"
    shell:
        "{MRISR} evaluate --method {wildcards.method} {params.model} --split-file {input.split}"
        " --lr-dir {params.lr_dir} --out-dir results/eval/{wildcards.dataset}/{wildcards.method}/x{wildcards.scale}"
        " --dataset {wildcards.dataset} --task {params.task} --scale {wildcards.scale} {params.ref}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
