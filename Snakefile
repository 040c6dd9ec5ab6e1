# mrisr: raw MRI -> prepared -> split -> degraded -> patches -> trained -> evaluated -> tables.
# Rules are thin: each calls one `mrisr <stage>` CLI with arguments built from `config`.
# One rule file per stage (workflow/rules/); every function the rules use is in common.smk.
from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given: Snakemake would otherwise
# deep-merge it under the user's file and run the default datasets too.
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# Bookkeeping rules run where Snakemake runs (the login node), not as cluster jobs; downloads
# too (compute nodes often have no internet access). batched.smk adds its own.
localrules:
    all,
    download,
    installed,
    inventory,
    split,
    groups,
    tables,
    figure,


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/degrade.smk"
include: "workflow/rules/patches.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/batched.smk"


rule all:
    """Every table, figure and trained model (weights + model card) the config asks for."""
    input:
        "results/tables/summary.csv",
        "results/tables/summary.md",
        "results/tables/psnr.png",
        get_figure_targets(),
        get_study_targets(),
        get_scale_sweep_targets(),
        get_model_targets(),
    default_target: True
