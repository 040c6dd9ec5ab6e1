# Stage degrade: prepared/{subject}/{target}.nii.gz -> lr/{degradation}/x{scale}/{subject}.nii.gz
# (+ sidecar with the grid); the UDEAN inputs: motion-simulated HR, nearest-decimated LR, and
# the moved HR registered back onto its LR. Many scales of a scale-sweep dataset: batched.smk.
# The prepared series are read through their subject's manifest (prepare's output, written last).


rule degrade:
    input:
        get_prepared,
    output:
        nii="results/{dataset}/lr/{degradation}/x{scale}/{subject}.nii.gz",
        sidecar="results/{dataset}/lr/{degradation}/x{scale}/{subject}.json",
    params:
        hr=get_hr,
        deg=lambda wc: ds(wc.dataset)["degradation"],
        meta=get_series_meta,
    log:
        "logs/degrade/{dataset}/{degradation}/x{scale}/{subject}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr degrade --hr {params.hr} --out {output.nii} --mode {params.deg[mode]}"
        " --scale {wildcards.scale} --axes {params.deg[axes]} --window {params.deg[window]}"
        " --meta {params.meta:q} > {log} 2>&1"


rule degrade_nearest:
    """Nearest-neighbour (decimation) LR of the UDEAN source group: ts_rcan_shift's simulated pairs."""
    input:
        get_prepared,
    output:
        nii="results/{dataset}/lr/nearest/x{scale}/{subject}.nii.gz",
        sidecar="results/{dataset}/lr/nearest/x{scale}/{subject}.json",
    params:
        hr=get_hr,
        axes=lambda wc: ds(wc.dataset)["degradation"]["axes"],
        meta=get_series_meta,
    log:
        "logs/degrade/{dataset}/nearest/x{scale}/{subject}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr degrade --hr {params.hr} --out {output.nii} --mode nearest --scale {wildcards.scale}"
        " --axes {params.axes} --window none --meta {params.meta:q} > {log} 2>&1"


ruleorder: degrade_nearest > degrade


rule motion:
    """Motion-simulated HR (rigid + shrinking deformation) of the UDEAN target group."""
    input:
        get_prepared,
    output:
        "results/{dataset}/motion/{subject}.nii.gz",
    params:
        hr=get_hr,
        ranges=get_motion_ranges,
        seed=config["seed"],
        meta=get_series_meta,
    log:
        "logs/motion/{dataset}/{subject}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr motion --hr {params.hr} --out {output} --ranges {params.ranges:q} --seed {params.seed}"
        " --subject {wildcards.subject} --meta {params.meta:q} > {log} 2>&1"


rule register:
    """Motion-simulated HR rigidly registered back onto its LR (Mattes MI): ts_rcan_registered."""
    input:
        lr=get_lr_file,
        moving="results/{dataset}/motion/{subject}.nii.gz",
    output:
        "results/{dataset}/registered/x{scale}/{subject}.nii.gz",
    log:
        "logs/register/{dataset}/x{scale}/{subject}.log",
    conda:
        "../../envs/degrade.yaml"
    shell:
        "python -m mrisr register --lr {input.lr} --moving {input.moving} --out {output} > {log} 2>&1"
