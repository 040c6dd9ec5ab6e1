# mrisr: raw MRI -> prepared -> split -> degraded -> patches -> trained -> evaluated -> tables.
# Rules are thin: each calls one `mrisr <stage>` CLI with arguments built from `config`.
from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given: Snakemake would otherwise
# deep-merge it under the user's file and run the default datasets too.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"



# Bookkeeping rules run where Snakemake runs (the login node), not as cluster jobs.
localrules:
    all,
    inventory,
    split,
    tables,
    figure,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/degrade.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/scale_sweep.smk"
include: "workflow/rules/udean.smk"


rule all:
    input:
        "results/tables/summary.csv",
        "results/tables/summary.md",
        "results/tables/psnr.png",
        all_figures(),
        sweep_targets(),
        scale_sweep_targets(),
    default_target: True
