# UDEAN data groups (issue 7): split.json -> groups.json (checkpoint: target + disjoint source);
# motion-simulated HR of the target group (rule motion, degrade.smk), registered back onto its
# LR; nearest-decimated LR of the source group; one patch store per group kind. The val and test
# stores and the evaluation are the ordinary ones (true pairs, the dataset's degradation).

GROUP_STORES = ("misaligned_pairs", "registered_pairs", "nearest_pairs", "udean_misaligned", "udean_unpaired")


wildcard_constraints:
    kind="|".join(GROUP_STORES),


localrules:
    groups,


def is_group_store(dataset, method):
    return model_config(dataset, method).get("store", "patches") in GROUP_STORES


def group_store(wc):
    """The train store of a model trained on a UDEAN data group (train.smk's `store`)."""
    kind = model_config(wc.dataset, wc.method)["store"]
    return f"results/{wc.dataset}/patches/groups/{kind}-x{wc.scale}_train.h5"


def group(dataset, name):
    with open(checkpoints.groups.get(dataset=dataset).output[0]) as f:
        return json.load(f)[name]


def nearest_dir(wc):
    return f"results/{wc.dataset}/lr/nearest/x{wc.scale}"


def group_volumes(wc):
    """Every volume a group store is cut from (so each subject's job runs first)."""
    lr, kind = lr_dir(wc), wc.kind
    target = group(wc.dataset, "target")
    if kind == "nearest_pairs":
        return [f"{nearest_dir(wc)}/{s}.nii.gz" for s in group(wc.dataset, "source")]
    files = [f"{lr}/{s}.nii.gz" for s in target]
    if kind == "udean_unpaired":
        files += [f"{lr}/{s}.nii.gz" for s in group(wc.dataset, "source")]
    if kind in ("misaligned_pairs", "udean_misaligned"):
        files += [f"results/{wc.dataset}/motion/{s}.nii.gz" for s in target]
    if kind == "registered_pairs":
        files += [f"results/{wc.dataset}/registered/x{wc.scale}/{s}.nii.gz" for s in target]
    return files


def group_hr_dir(wc):
    """HR folder replacing the LR sidecars' hr_source, where the group's HR is not the prepared one."""
    if wc.kind in ("misaligned_pairs", "udean_misaligned"):
        return f"--hr-dir results/{wc.dataset}/motion"
    if wc.kind == "registered_pairs":
        return f"--hr-dir results/{wc.dataset}/registered/x{wc.scale}"
    return ""


checkpoint groups:
    input:
        "results/{dataset}/split.json",
    output:
        "results/{dataset}/groups.json",
    params:
        fraction=lambda wc: ds(wc.dataset)["source_fraction"],
        seed=config["seed"],
    log:
        "logs/groups/{dataset}.log",
    shell:
        "{MRISR} groups --split-file {input} --source-fraction {params.fraction} --seed {params.seed}"
        " --dataset {wildcards.dataset} --out {output} > {log} 2>&1"


rule degrade_nearest:
    """Nearest-neighbour (decimation) LR of the source group: ts_rcan_shift's simulated pairs."""
    input:
        "results/{dataset}/prepared/{subject}/manifest.json",
    output:
        nii="results/{dataset}/lr/nearest/x{scale}/{subject}.nii.gz",
        sidecar="results/{dataset}/lr/nearest/x{scale}/{subject}.json",
    params:
        hr=lambda wc: f"results/{wc.dataset}/prepared/{wc.subject}/{ds(wc.dataset)['target']}.nii.gz",
        axes=lambda wc: ds(wc.dataset)["degradation"]["axes"],
        meta=lambda wc: json.dumps({"dataset": wc.dataset, "subject": wc.subject, "series": ds(wc.dataset)["target"]}),
    log:
        "logs/degrade/{dataset}/nearest/x{scale}/{subject}.log",
    shell:
        "{MRISR} degrade --hr {params.hr} --out {output.nii} --mode nearest --scale {wildcards.scale}"
        " --axes {params.axes} --window none --meta {params.meta:q} > {log} 2>&1"


ruleorder: degrade_nearest > degrade


rule register:
    """Motion-simulated HR rigidly registered back onto its LR (Mattes MI): ts_rcan_registered."""
    input:
        lr=lambda wc: f"{lr_dir(wc)}/{wc.subject}.nii.gz",
        moving="results/{dataset}/motion/{subject}.nii.gz",
    output:
        "results/{dataset}/registered/x{scale}/{subject}.nii.gz",
    log:
        "logs/register/{dataset}/x{scale}/{subject}.log",
    shell:
        "{MRISR} register --lr {input.lr} --moving {input.moving} --out {output} > {log} 2>&1"


rule group_patches:
    input:
        groups="results/{dataset}/groups.json",
        volumes=group_volumes,
    output:
        "results/{dataset}/patches/groups/{kind}-x{scale}_train.h5",
    params:
        lr_dir=lambda wc: nearest_dir(wc) if wc.kind == "nearest_pairs" else lr_dir(wc),
        hr_dir=group_hr_dir,
        p=lambda wc: ds(wc.dataset)["patches"],
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/groups/{kind}-x{scale}.log",
    shell:
        "{MRISR} group-patches --kind {wildcards.kind} --groups {input.groups} --lr-dir {params.lr_dir} {params.hr_dir}"
        " --scale {wildcards.scale} --hr-patch {params.p[hr_patch]} --n-per-subject {params.p[train_per_subject]}"
        " --fg-fraction {params.p[fg_fraction]} --seed {params.seed} --out {output} > {log} 2>&1"
