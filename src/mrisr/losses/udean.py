"""UDEAN's objective (`trainer: udean`, `train.udean`): the generator's loss terms and both
critics' losses on one forward of `mrisr.models.udean.UdeanSystem` (s = source HR, t = target LR).

Eqs. 1–10 as implemented (issue 12). Where the paper (or its unpublished code) does
not settle a detail, docs/fidelity.md marks the row READING.
    (1) L1(a, b) = mean |a − b|
    (2) L_SSIM(a, b) = 1 − SSIM3D(a, b)   (Gaussian window σ = 1.5, 11 taps, truncated to the
        axis length on short axes — a 3-voxel-thick LR patch gets a 3-tap window there)
    (3) ℓ(a, b) = L1(a, b) + α·L_SSIM(a, b), α = 0.5   — the pixel loss of every image term
    (4) LR-domain adversarial (LSGAN), D_LR: X_t real, X_{s~t} fake:
        L_D = ½E[(D(X_t) − 1)²] + ½E[D(X_{s~t})²];   generator L_G = ½E[(D(X_{s~t}) − 1)²]
    (5) image cycle          L_icyc = ℓ(Y_{s~t~s}, X_s)                      λ1 = 1
        feature cycle        L_fcyc = L1(f_{s~t~s}, f_s)                     λ2 = 0.1
    (6) feature critic D_F (LSGAN): f_t real, f_s fake, L_DF = ½E[(D_F(f_t) − 1)²] + ½E[D_F(f_s)²]
    (7) feature adaptation (encoders): both encoders drive D_F to its point of confusion,
        L_fa = E|D_F(f_s) − 0.5| + E|D_F(f_t) − 0.5|
    (8) HR consistency       L_hr   = ℓ(Ŷ_s, X_s)                            λ3 = 1
    (9) LR consistency       L_lr   = ℓ(X̂_t, X_t)   (X̂_t = D_LR(f_t): no shortcut from X_t)  λ4 = 1
   (10) generator objective  λ1·L_icyc + λ2·L_fcyc + λ3·L_hr + λ4·L_lr + β·(λ5·L_G + λ6·L_fa),
        β = 0.01, λ5 = λ6 = 0.1: β weights only the adversarial terms (eqs. 4, 7); the log's
        degradation_adaptation / feature_adaptation columns hold β·L_G and β·L_fa.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mrisr.losses.adversarial import confusion, lsgan_d, lsgan_g
from mrisr.losses.pixel import pixel_loss

if TYPE_CHECKING:
    from mrisr.models.udean import UdeanSystem

DEFAULT_LAMBDAS = {"image_cycle": 1.0, "feature_cycle": 0.1, "hr_consistency": 1.0, "lr_consistency": 1.0,
                   "degradation_adaptation": 0.1, "feature_adaptation": 0.1}  # λ1 … λ6
TERMS = tuple(DEFAULT_LAMBDAS)


def generator_terms(system: UdeanSystem, out: dict[str, torch.Tensor], x_s: torch.Tensor, x_t: torch.Tensor,
                    alpha: float, beta: float) -> dict[str, torch.Tensor]:
    """Eqs. 4, 5, 7, 8, 9, unweighted by λ; β (eq. 10) is applied here to the two adversarial terms."""
    return {
        "image_cycle": pixel_loss(out["y_sts"], x_s, alpha),
        "feature_cycle": torch.nn.functional.l1_loss(out["f_sts"].float(), out["f_s"].float()),
        "hr_consistency": pixel_loss(out["y_s_hat"], x_s, alpha),
        "lr_consistency": pixel_loss(out["x_t_hat"], x_t, alpha),
        "degradation_adaptation": beta * lsgan_g(system.d_lr(out["x_st"]).float()),
        "feature_adaptation": beta * sum(confusion(s) for s in critic_scores(system.d_feat, out["f_t"], out["f_s"])),
    }


def critic_scores(critic: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores of real and fake in one forward (the critics have no batch statistics, so this
    equals two calls and halves the number of small convolutions)."""
    scores = critic(torch.cat([real, fake.to(real.dtype)])).float()
    return scores[: len(real)], scores[len(real):]


def discriminator_terms(system: UdeanSystem, out: dict[str, torch.Tensor], x_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_D of both critics on detached generator outputs."""
    return {
        "d_lr": lsgan_d(*critic_scores(system.d_lr, x_t, out["x_st"].detach())),
        "d_feat": lsgan_d(*critic_scores(system.d_feat, out["f_t"].detach(), out["f_s"].detach())),
    }


def weighted_sum(terms: dict[str, torch.Tensor], lambdas: dict[str, float]) -> torch.Tensor:
    return sum(lambdas[k] * terms[k] for k in TERMS)
