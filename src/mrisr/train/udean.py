"""UDEAN training (`trainer: udean`): unsupervised 3D SR from unpaired (or misaligned) source HR
and target LR. Networks and paths are in mrisr.models.udean (`UdeanSystem`); `UdeanTask`
validates like the supervised task (paired val store) and differs in its two unpaired input
streams, two optimisers ("g", "d") with alternating updates and its card. Every loss term (and both critics' losses) is a log.csv column.

Losses: `mrisr.losses.udean` (eqs. 1–10 in its docstring). Both critics take one L_D step on
the detached outputs of the same forward after every generator step (CycleGAN's alternation).
Adam(β = (0.9, 0.99), ε = 1e-8) for both; cosine learning rate from `train.lr` (paper 1e-4) to
`lr_min` (1e-8) over the run.

Data: one store's `source_hr` and `target_lr` (mrisr.patches.groups), or a pair store's `hr` and
`lr`, drawn as two independent streams (different RNG streams, so that sides cut at the same
places from the same subjects — the misaligned flavour — never come out aligned). The paired
val store only picks the best weights by PSNR, as for every other method (a benchmark
convenience; a truly unsupervised deployment would keep the last weights).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch

from mrisr.losses.udean import DEFAULT_LAMBDAS, TERMS, discriminator_terms, generator_terms, weighted_sum
from mrisr.models import build_model, count_parameters
from mrisr.models.udean import UdeanSystem
from mrisr.patches.augment import augment_batch, augment_plan
from mrisr.patches.dataset import PatchDataset, UnpairedDataset
from mrisr.patches.sampler import unpaired_sampler
from mrisr.train.config import checked_config, fingerprint
from mrisr.train.engine import step_loader
from mrisr.train.supervised import SupervisedTask, autocast, make_scheduler, store_info, to_device

@dataclass(frozen=True)
class UdeanConfig:
    """The `udean` section of the model config: the training-only networks and the loss weights."""

    alpha: float = 0.5
    beta: float = 0.01
    lambdas: dict = field(default_factory=lambda: dict(DEFAULT_LAMBDAS))
    deg_layers: int = 6
    lr_dec_groups: int = 2
    lr_dec_blocks: int = 2
    disc_feats: int = 16
    disc_stages: int = 3
    lr_min: float = 1e-8
    adam_betas: tuple = (0.9, 0.99)
    adam_eps: float = 1e-8

    @classmethod
    def from_dict(cls, d: dict | None) -> "UdeanConfig":
        d = dict(d or {})
        bad = sorted(set(d.get("lambdas") or {}) - set(TERMS))
        if bad:
            raise ValueError(f"unknown udean loss terms {bad}; accepted: {list(TERMS)}")
        d["lambdas"] = {**DEFAULT_LAMBDAS, **{k: float(v) for k, v in (d.get("lambdas") or {}).items()}}
        if "adam_betas" in d:
            d["adam_betas"] = tuple(float(b) for b in d["adam_betas"])
        return checked_config(cls, d, "udean")

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"udean.alpha must lie in [0, 1], got {self.alpha}")
        if self.beta < 0 or any(v < 0 for v in self.lambdas.values()):
            raise ValueError("udean.beta and udean.lambdas must be >= 0")
        for name in ("deg_layers", "lr_dec_groups", "lr_dec_blocks", "disc_feats", "disc_stages"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"udean.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_min < 0 or len(self.adam_betas) != 2:
            raise ValueError("udean.lr_min must be >= 0 and udean.adam_betas a pair")


class UdeanTask(SupervisedTask, kind="udean"):
    """Unpaired source/target streams and alternating G/D updates; validation as supervised.
    `model` is the inference net (`udean`, saved as model.pt); `nets` = `system` holds every
    trained network (ckpt/last.pt)."""

    loss_columns = ("loss", *TERMS, "d_lr", "d_feat")

    def __init__(self, model_cfg: dict, train_h5, val_h5, seed: int, device: torch.device) -> None:
        self.setup_stores(model_cfg, train_h5, val_h5, seed, device)
        if self.arch != "udean":
            raise ValueError(f"trainer udean trains arch 'udean', got {self.arch!r}")
        self.ucfg = u = UdeanConfig.from_dict(model_cfg.get("udean"))
        torch.manual_seed(self.seed)  # model init
        sr = build_model(self.arch, **self.geometry, **self.args)
        self.system = UdeanSystem(sr, grid_convention=self.geometry["grid_convention"], deg_layers=u.deg_layers,
                                  lr_dec_groups=u.lr_dec_groups, lr_dec_blocks=u.lr_dec_blocks,
                                  reduction=int(self.args.get("reduction", 4)), disc_feats=u.disc_feats,
                                  disc_stages=u.disc_stages).to(self.device)
        if self.fmt is not None:
            self.system = self.system.to(memory_format=self.fmt)
        self.system.train()
        self.model, self.nets = self.system.sr, self.system
        self.train_ds = UnpairedDataset(self.train_h5)
        self.val_ds = PatchDataset(self.val_h5, ("lr", "hr"))
        self.cfg = self.cfg.resolve_steps(len(self.train_ds))  # an epoch: a pass over the larger stream
        params = {"g": self.system.generator_parameters(), "d": self.system.discriminator_parameters()}
        self.optimizers = {k: torch.optim.Adam(v, lr=self.cfg.lr, betas=tuple(u.adam_betas), eps=u.adam_eps)
                           for k, v in params.items()}
        self.schedulers = {k: make_scheduler(opt, self.cfg, u.lr_min) for k, opt in self.optimizers.items()}
        self.stores = (store_info("source (hr)", self.train_h5, self.attrs, len(self.train_ds.source)),
                       store_info("target (lr)", self.train_h5, self.attrs, len(self.train_ds.target)),
                       store_info("val", self.val_h5, self.val_attrs, len(self.val_ds)))
        h = self.attrs.get("config_hash", "")  # source+target hash: one store holds both sides
        self.fingerprint = fingerprint(self.arch, {**self.args, "udean": asdict(u)}, self.cfg, self.seed, f"{h}+{h}",
                                       str(self.val_attrs.get("config_hash", "")))

    def batches(self, start: int):
        sampler = unpaired_sampler(self.seed, len(self.train_ds.source), len(self.train_ds.target),
                                   self.cfg.batch_size, start, self.cfg.steps)
        return step_loader(self.train_ds, sampler, self.cfg, self.device)

    def prepare_batch(self, batch: dict, step: int) -> dict:
        """Grid-preserving flips (and transposes), drawn independently for the source and target halves."""
        if self.cfg.augment:
            b, geometry = len(batch["hr"]), (self.attrs["hr_patch"], self.attrs["lr_patch"])
            plan = augment_plan(self.seed, step, 2 * b, *geometry, self.attrs["grid_convention"],
                                transposes=self.cfg.augment is True)
            batch = {**augment_batch({"hr": batch["hr"]}, plan[:b], geometry),
                     **augment_batch({"lr": batch["lr"]}, plan[b:], geometry)}
        return to_device(batch, self.device, self.fmt)

    def step(self, batch: dict, step: int) -> torch.Tensor:
        """One generator step (critics frozen), then one critic step on the detached outputs."""
        batch = self.prepare_batch(batch, step)
        x_s, x_t = batch["hr"], batch["lr"]
        u, sys_, opt = self.ucfg, self.system, self.optimizers
        critics = torch.nn.ModuleList([sys_.d_lr, sys_.d_feat])
        critics.requires_grad_(False)
        with autocast(self.device, self.cfg.bf16):
            out = sys_(x_s, x_t)
            g_terms = generator_terms(sys_, out, x_s, x_t, u.alpha, u.beta)
        g_loss = weighted_sum(g_terms, u.lambdas)
        opt["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        opt["g"].step()
        critics.requires_grad_(True)
        with autocast(self.device, self.cfg.bf16):
            d_terms = discriminator_terms(sys_, out, x_t)
        opt["d"].zero_grad(set_to_none=True)
        (d_terms["d_lr"] + d_terms["d_feat"]).backward()
        opt["d"].step()
        for sched in self.schedulers.values():
            if sched is not None:
                sched.step()
        return torch.stack([g_loss, *(g_terms[k] for k in TERMS), d_terms["d_lr"], d_terms["d_feat"]]).detach()

    def card_rows(self) -> dict[str, str | None]:
        u, cfg = self.ucfg, self.cfg
        return {"optimiser": f"| optimiser | Adam (β {u.adam_betas[0]:g}, {u.adam_betas[1]:g}; ε {u.adam_eps:g}) for "
                             f"generators and critics, alternating; lr {cfg.lr:g} → {u.lr_min:g} ({cfg.scheduler}); "
                             f"unsupervised UDEAN objective |"}

    def card_sections(self) -> list[str]:
        u = self.ucfg
        lam = ", ".join(f"{k} {v:g}" for k, v in u.lambdas.items())
        return ["", "## UDEAN", "",
                "Trained without HR/LR pairs: source HR and target LR patches are drawn independently; the val "
                "store (paired) only selects the best weights. Inference = LR encoder + SR decoder.", "",
                f"- pixel loss L1 + α·(1−SSIM3D), α = {u.alpha:g}; adversarial weight β = {u.beta:g} (LSGAN on LR "
                f"images, |D_F − 0.5| on features)",
                f"- λ: {lam}",
                f"- training-only networks: E_D {u.deg_layers} × (conv + LeakyReLU), LR decoder TS-RCAN "
                f"{u.lr_dec_groups} groups × {u.lr_dec_blocks} blocks, "
                f"VGG critics {u.disc_stages} stages from {u.disc_feats} feats; "
                f"{count_parameters(self.system):,} trainable parameters in all",
                f"- udean settings: `{json.dumps(asdict(u), sort_keys=True)}`"]
