# Stage patches: lr/ + prepared/ + split.json -> HDF5 patch stores
#   patches/{task}-x{scale}_{split}.h5               LR/HR pairs (task sisr2d, mcsr, sisr3d)
#   patches/vsr{frames}w{warmup}-x{scale}_{split}.h5 cine clips of video models (store: clips)
#   patches/{task}-hr_{split}.h5                     HR only, for arbitrary-scale models (store: hr)
#   patches/groups/{kind}-x{scale}_train.h5          UDEAN data-group train stores
# Each LR file's sidecar names its prepared HR (hr_source); the prepared series are complete
# once the LR (made from them) exists.


rule patches:
    input:
        lr=get_all_lr,
        split="results/{dataset}/split.json",
    output:
        "results/{dataset}/patches/{task}-x{scale}_{split}.h5",
    params:
        lr_dir=get_lr_dir,
        p=lambda wc: ds(wc.dataset)["patches"],
        n=get_patch_count,
        hr_patch=get_hr_patch,
        ref=get_reference_arg,
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/{task}-x{scale}_{split}.log",
    conda:
        "../../envs/patches.yaml"
    shell:
        "python -m mrisr patches --task {wildcards.task} --split-file {input.split} --split {wildcards.split}"
        " --lr-dir {params.lr_dir} --scale {wildcards.scale} --hr-patch {params.hr_patch}"
        " --n-per-subject {params.n} --fg-fraction {params.p[fg_fraction]} --seed {params.seed} {params.ref}"
        " --out {output} > {log} 2>&1"


rule clips:
    """Cine clips of `frames` frames with `warmup` cyclic warm-up frames on each side (video models)."""
    input:
        lr=get_all_lr,
        split="results/{dataset}/split.json",
    output:
        "results/{dataset}/patches/vsr{frames}w{warmup}-x{scale}_{split}.h5",
    params:
        lr_dir=get_lr_dir,
        p=lambda wc: ds(wc.dataset)["patches"],
        n=get_patch_count,
        hr_patch=get_hr_patch,
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/vsr{frames}w{warmup}-x{scale}_{split}.log",
    conda:
        "../../envs/patches.yaml"
    shell:
        "python -m mrisr patches --task vsr{wildcards.frames}w{wildcards.warmup} --split-file {input.split}"
        " --split {wildcards.split} --lr-dir {params.lr_dir} --scale {wildcards.scale} --hr-patch {params.hr_patch}"
        " --n-per-subject {params.n} --fg-fraction {params.p[fg_fraction]} --seed {params.seed}"
        " --clip {wildcards.frames} {wildcards.warmup} --out {output} > {log} 2>&1"


rule patches_hr:
    """HR-only patch store: `patches.per_slice` random HR patches of every 2D slice."""
    input:
        split="results/{dataset}/split.json",
        prepared=get_all_prepared,
    output:
        "results/{dataset}/patches/{task}-hr_{split}.h5",
    params:
        p=lambda wc: ds(wc.dataset)["patches"],
        axes=lambda wc: ds(wc.dataset)["degradation"]["axes"],
        series=lambda wc: ds(wc.dataset)["target"],
        hr_patch=get_hr_only_patch,
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/{task}-hr_{split}.log",
    benchmark:
        "benchmarks/patches/{dataset}/{task}-hr_{split}.tsv"
    conda:
        "../../envs/patches.yaml"
    shell:
        "python -m mrisr patches-hr --task {wildcards.task} --split-file {input.split} --split {wildcards.split}"
        " --prepared-dir results/{wildcards.dataset}/prepared --series {params.series}"
        " --hr-patch {params.hr_patch} --per-slice {params.p[per_slice]} --axes {params.axes}"
        " --seed {params.seed} --out {output} > {log} 2>&1"


rule group_patches:
    """A UDEAN group store (`kind` = the model's store): pairs or unpaired source/target patches."""
    input:
        groups="results/{dataset}/groups.json",
        volumes=get_group_volumes,
    output:
        "results/{dataset}/patches/groups/{kind}-x{scale}_train.h5",
    params:
        lr_dir=get_group_lr_dir,
        hr_dir=get_group_hr_arg,
        p=lambda wc: ds(wc.dataset)["patches"],
        hr_patch=get_hr_patch,
        seed=config["seed"],
    log:
        "logs/patches/{dataset}/groups/{kind}-x{scale}.log",
    conda:
        "../../envs/patches.yaml"
    shell:
        "python -m mrisr group-patches --kind {wildcards.kind} --groups {input.groups} --lr-dir {params.lr_dir}"
        " {params.hr_dir} --scale {wildcards.scale} --hr-patch {params.hr_patch}"
        " --n-per-subject {params.p[train_per_subject]} --fg-fraction {params.p[fg_fraction]} --seed {params.seed}"
        " --out {output} > {log} 2>&1"
