# Stage degrade: prepared/{subject}/{target}.nii.gz -> lr/{degradation}/x{scale}/{subject}.nii.gz
# (+ sidecar with the grid); the UDEAN inputs: motion-simulated HR, nearest-decimated LR, and
# the moved HR registered back onto its LR. Many scales of a scale-sweep dataset: batched.smk.
# One job per dataset (× scale) for every subject (mrisr.batch): each writes every subject's files,
# then a manifest (the subject list) LAST, beside the folder -- lr/{degradation}/x{scale}.json,
# motion.json, registered/x{scale}.json -- which is the declared output downstream rules take.
# A subject's files are byte for byte those of a one-subject run (its random draws are seeded by
# (seed, stage, subject)). The prepared series are read through prepared.json (prepare's output).


rule degrade:
    input:
        "results/{dataset}/prepared.json",
    output:
        "results/{dataset}/lr/{degradation}/x{scale}.json",
    params:
        deg=lambda wc: ds(wc.dataset)["degradation"],
        meta=get_series_meta,
    resources:
        runtime=240,  # minutes: every subject of the dataset in one job (Slurm)
    log:
        "logs/degrade/{dataset}/{degradation}/x{scale}.log",
    benchmark:
        "benchmarks/degrade/{dataset}/{degradation}/x{scale}.tsv"
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr degrade --subjects {input} --prepared-dir results/{wildcards.dataset}/prepared"
        " --out-dir results/{wildcards.dataset}/lr/{wildcards.degradation}/x{wildcards.scale} --manifest {output}"
        " --mode {params.deg[mode]} --scale {wildcards.scale} --axes {params.deg[axes]} --window {params.deg[window]}"
        " --meta {params.meta:q} > {log} 2>&1"


rule degrade_nearest:
    """Nearest-neighbour (decimation) LR of the UDEAN source group: ts_rcan_shift's simulated pairs."""
    input:
        prepared="results/{dataset}/prepared.json",
        groups="results/{dataset}/groups.json",
    output:
        "results/{dataset}/lr/nearest/x{scale}.json",
    params:
        axes=lambda wc: ds(wc.dataset)["degradation"]["axes"],
        meta=get_series_meta,
    resources:
        runtime=240,  # minutes: every subject of the dataset in one job (Slurm)
    log:
        "logs/degrade/{dataset}/nearest/x{scale}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr degrade --subjects {input.groups} --subjects-key source"
        " --prepared-dir results/{wildcards.dataset}/prepared --out-dir results/{wildcards.dataset}/lr/nearest/x{wildcards.scale}"
        " --manifest {output} --mode nearest --scale {wildcards.scale} --axes {params.axes} --window none"
        " --meta {params.meta:q} > {log} 2>&1"


ruleorder: degrade_nearest > degrade


rule motion:
    """Motion-simulated HR (rigid + shrinking deformation) of the UDEAN target group."""
    input:
        prepared="results/{dataset}/prepared.json",
        groups="results/{dataset}/groups.json",
    output:
        "results/{dataset}/motion.json",
    params:
        ranges=get_motion_ranges,
        seed=config["seed"],
        meta=get_series_meta,
    resources:
        runtime=240,  # minutes: every subject of the dataset in one job (Slurm)
    log:
        "logs/motion/{dataset}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr motion --subjects {input.groups} --subjects-key target"
        " --prepared-dir results/{wildcards.dataset}/prepared --out-dir results/{wildcards.dataset}/motion"
        " --manifest {output} --ranges {params.ranges:q} --seed {params.seed} --meta {params.meta:q} > {log} 2>&1"


rule register:
    """Motion-simulated HR rigidly registered back onto its LR (Mattes MI): ts_rcan_registered."""
    input:
        lr=get_all_lr,
        moving="results/{dataset}/motion.json",
        groups="results/{dataset}/groups.json",
    output:
        "results/{dataset}/registered/x{scale}.json",
    params:
        lr_dir=get_lr_dir,
    resources:
        runtime=240,  # minutes: every subject of the dataset in one job (Slurm)
    log:
        "logs/register/{dataset}/x{scale}.log",
    benchmark:
        "benchmarks/register/{dataset}/x{scale}.tsv"
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr register --subjects {input.groups} --subjects-key target --lr-dir {params.lr_dir}"
        " --moving-dir results/{wildcards.dataset}/motion --out-dir results/{wildcards.dataset}/registered/x{wildcards.scale}"
        " --manifest {output} > {log} 2>&1"
