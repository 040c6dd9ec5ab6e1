"""Adversarial losses on critic outputs: SRGAN's BCE on logits (`train.gan`) and UDEAN's
least-squares terms and feature confusion (eqs. 4, 6, 7; `losses.udean`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """SRGAN critic: BCE(D(HR), real) + BCE(D(SR), fake), on logits."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    """SRGAN generator: BCE(D(SR), real), on logits."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eqs. 4 and 6, critic side: ½E[(D(real) − 1)²] + ½E[D(fake)²]."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    """Eq. 4, generator side: ½E[(D(fake) − 1)²]."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def confusion(scores: torch.Tensor) -> torch.Tensor:
    """Eq. 7 for one feature batch: E|D_F(f) − 0.5| — zero where the critic cannot tell."""
    return (scores - 0.5).abs().mean()
