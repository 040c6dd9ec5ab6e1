# patches/ -> models/{dataset}/{method}/x{scale}/ (model.pt written last; ckpt/ survives failed jobs)


def store(wc, split):
    if split == "train" and is_group_store(wc.dataset, wc.method):  # UDEAN data groups (udean.smk)
        return group_store(wc)
    return f"results/{wc.dataset}/patches/{store_task(wc.dataset, wc.method)}-x{wc.scale}_{split}.h5"


def train_config(dataset, method):
    """What the training loop sees: the model config minus pipeline-only keys."""
    cfg = copy.deepcopy(model_config(dataset, method))
    is_video = cfg.pop("store", "patches") == "clips"
    cfg.pop("sweeps", None)
    clip_frames = cfg["train"].pop("clip_frames", 7)
    if is_video:  # video models infer in clips of the length they were trained on: a model arg
        cfg["args"] = {**(cfg.get("args") or {}), "clip_frames": clip_frames}
    return cfg


rule train:
    input:
        train=lambda wc: store(wc, "train"),
        val=lambda wc: store(wc, "val"),
    output:
        model="results/models/{dataset}/{method}/x{scale}/model.pt",
        log_csv="results/models/{dataset}/{method}/x{scale}/log.csv",
        card="results/models/{dataset}/{method}/x{scale}/card.md",
    params:
        # Only this (dataset, method) entry: editing another model's config never retrains this one.
        cfg=lambda wc: json.dumps(train_config(wc.dataset, wc.method), sort_keys=True),
        seed=config["seed"],
        device=config["device"],
    threads: job_threads()
    resources:
        gpu=lambda wc: 1 if config["device"] == "cuda" else 0,
    log:
        "logs/train/{dataset}/{method}/x{scale}.log",
    benchmark:
        "benchmarks/train/{dataset}/{method}/x{scale}.tsv"
    shell:
        "{MRISR} train --model-config {params.cfg:q} --train {input.train} --val {input.val}"
        " --out-dir results/models/{wildcards.dataset}/{wildcards.method}/x{wildcards.scale}"
        " --seed {params.seed} --device {params.device} --threads {threads} > {log} 2>&1"
