"""Phase-aware cardiac cine video SR (Lin et al., "Efficient and Phase-aware Video
Super-resolution for Cardiac MRI", MICCAI 2020), for one-channel 2D frames, plus a
global cubic residual.

Data flow for a clip of T̃ + 2n consecutive frames (taken cyclically from the cine, see
`cyclic_clip_indices`; the first and last n are memory warm-up frames, SR is returned
for the central T̃):

    L^t        = FE(I_LR^t)                     conv + PReLU (low-frequency feature)
    H_F^t      = ConvLSTM_F over L^0..L^t       forward memory, warm-up frames included
    H_B^t      = ConvLSTM_B over L^end..L^t     backward memory (bidirectional)
    H_P^t      = PF([H_F, H_B, P]^{t-N..t+N})   phase fusion over 2N+1 frames; P^t = phase
                                                code (mrisr.phase), one constant
                                                channel per frame; the window is clamped
                                                at the clip ends
    I_SR^t     = Up(L^t ⊕ H_P^t) + cubic(I_LR^t)
    I_SR,F^t   = Up(L^t ⊕ H_F^t) + cubic,  I_SR,B^t = Up(L^t ⊕ H_B^t) + cubic
                                                (deep supervision, training only)

* ⊕ is element-wise addition, as in the authors' code (github.com/cmlab-mira/
  Efficient-and-Phase-aware-Video-Super-resolution-for-Cardiac-MRI, `RefineNet`:
  `out_block(in_features + h)`); channel concatenation would need an extra conv per
  branch for no documented gain.
* One Up (sub-pixel upsampler + conv to 1 channel, shared) serves I_SR, I_SR,F and
  I_SR,B, as in the authors' code: deep supervision then trains the same decoder on
  three feature sources, and adds no parameters.
* Global cubic residual (not in the paper): Up learns only what the degradation-aware
  Keys-cubic baseline (`CubicUpsample`) misses, and the output stays on the HR grid.
* Residual of residual (eqs. 2-3): Net_sub = (ConvLSTM_F, ConvLSTM_B, PF), ONE set of
  weights shared by every stage. Stage ω = 0..Ω runs Net_sub on L^{·,ω} and emits an
  output; between stages L^{t,ω+1} = L^{t,ω} + H_P^{t,ω} (warm-up frames included, as
  the authors update their warm-up features too). Ω = 0 is the plain network; Ω may be
  changed at inference (`forward(..., omega=k)`) without new parameters. The default
  Ω = 2 gives three stages, the authors' `num_stages: 3`.
* Memory cells start from zero at the clip start; the warm-up frames prime them. As in
  the authors' code, warm-up frames (FE, both ConvLSTMs, PF) run under no_grad in
  training: the loss is on the central frames only, and backpropagating through 2n
  priming frames would cost ~2x the training compute for gradients the authors never
  used. `warmup_grad=True` lets gradients flow through them instead; outputs are
  identical either way (no_grad changes gradients, not values).

Ablation ladder (the paper's ablation table); the lead registers these by args:

    phase_vsr_nomem   memory=False, bidirectional=False, n_warmup=0, fusion=False, omega=0
                      (ConvLSTM state reset each frame: frames are SR'd independently)
    phase_vsr_mem     memory=True   (forward memory only, no warm-up)
    phase_vsr_mem_n6  + n_warmup=6  (cells primed by 6 cyclic frames on each side)
    phase_vsr_bidir   + bidirectional=True  (H_P = (H_F + H_B)/2 while fusion=False)
    phase_vsr_pf      + fusion=True, use_phase=True  (phase fusion, N = fusion_n = 2)
    phase_vsr         + omega=2  (residual of residual: the full model)

Inference runs a cine as consecutive clips of `clip_frames` central frames, each with its
own n cyclic warm-up frames (`mrisr.evaluate.inference`), i.e. exactly as the model was
trained: run over a whole cine at once, the recurrent state goes far beyond the horizon
it was trained on and drifts (default config, ×4: −1.4 dB cardiac PSNR against clips).
The pipeline sets `clip_frames` from the training config's `train.clip_frames`.

`init_cubic=True` zeroes the decoder's last conv so training starts at the cubic baseline
(an initialisation, not an architecture change: short schedules then improve on cubic from
the first step instead of first unlearning a random decoder).

`fusion=False` replaces PF by a parameter-free merge (H_F, or the mean of H_F and H_B;
the phase code, which enters through PF only, is then unused),
so each rung adds exactly one component.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from mrisr.models.common import CubicUpsample, SRModel, Upsampler, check_integer_scale, conv_nd
from mrisr.models.registry import register
from mrisr.phase import cyclic_clip_indices, phase_code

__all__ = ["ConvLSTMCell", "ConvLSTM", "PhaseFusion", "PhaseVSR", "cyclic_clip_indices", "phase_code"]

State = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell (Shi et al., 2015): one conv over [x, h] gives the
    input, forget, output gates and the candidate g; c' = f·c + i·g, h' = o·tanh(c').

    memory=False: the state is reset every frame (h = c = 0), so the cell is a
    gated feed-forward block; its conv then sees x only (an h input that is always
    zero would add parameters that never train).
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3, memory: bool = True) -> None:
        super().__init__()
        self.hidden = hidden
        self.memory = memory
        self.conv = nn.Conv2d(in_channels + (hidden if memory else 0), 4 * hidden, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        if state is None or not self.memory:
            zeros = x.new_zeros(x.shape[0], self.hidden, *x.shape[2:])
            state = (zeros, zeros)
        h, c = state
        gates = self.conv(torch.cat([x, h], dim=1) if self.memory else x)
        i, f, o, g = torch.chunk(gates, 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM cells run over a sequence (B, T, C, h, w) → top-layer h (B, T, hidden, h, w)."""

    def __init__(self, in_channels: int, hidden: int, n_layers: int, memory: bool = True) -> None:
        super().__init__()
        self.cells = nn.ModuleList(
            ConvLSTMCell(in_channels if k == 0 else hidden, hidden, memory=memory) for k in range(n_layers)
        )

    def forward(self, seq: torch.Tensor, no_grad_ends: int = 0) -> torch.Tensor:
        """no_grad_ends: the first and last that many frames (warm-up) run under no_grad."""
        states: list[State | None] = [None] * len(self.cells)
        out = []
        n_frames = seq.shape[1]
        for t in range(n_frames):
            x = seq[:, t]
            with _grad_unless(t < no_grad_ends or t >= n_frames - no_grad_ends):
                for k, cell in enumerate(self.cells):
                    states[k] = cell(x, states[k])
                    x = states[k][0]
            out.append(x)
        return torch.stack(out, dim=1)


def _grad_unless(no_grad: bool):
    return torch.no_grad() if no_grad else contextlib.nullcontext()


def _apply_framewise(fn, seq: torch.Tensor, no_grad_ends: int) -> torch.Tensor:
    """fn over (B·T, ...) frames of seq (B, T, ...), its first/last no_grad_ends frames under no_grad."""
    b, t = seq.shape[:2]

    def run(part: torch.Tensor) -> torch.Tensor:
        out = fn(part.flatten(0, 1))
        return out.reshape(b, part.shape[1], *out.shape[1:])

    n = no_grad_ends
    if n == 0:
        return run(seq)
    with torch.no_grad():
        head, tail = run(seq[:, :n]), run(seq[:, t - n:])
    return torch.cat([head, run(seq[:, n:t - n]), tail], dim=1)


def temporal_windows(seq: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, T, C, h, w) → (B, T, (2·radius+1)·C, h, w): frames t−radius..t+radius stacked
    on channels, indices clamped to the clip (its ends repeat the edge frame)."""
    t = seq.shape[1]
    offsets = torch.arange(-radius, radius + 1, device=seq.device)
    idx = (torch.arange(t, device=seq.device)[:, None] + offsets[None, :]).clamp(0, t - 1)  # (T, 2r+1)
    win = seq[:, idx.flatten()]  # (B, T·(2r+1), C, h, w)
    return win.reshape(seq.shape[0], t, -1, *seq.shape[3:])


class PhaseFusion(nn.Module):
    """PF: fuse the memories (and phase codes) of frames t−N..t+N into H_P^t.

    Per frame the input is [H_F^t, (H_B^t), P^t as a constant channel]; the 2N+1 frames
    are stacked on channels and mixed by conv-PReLU-conv (the authors' `_RefineBlock`).
    """

    def __init__(self, n_feats: int, fusion_n: int, n_dirs: int, use_phase: bool) -> None:
        super().__init__()
        self.fusion_n = fusion_n
        self.use_phase = use_phase
        per_frame = n_dirs * n_feats + (1 if use_phase else 0)
        self.body = nn.Sequential(
            conv_nd(2, (2 * fusion_n + 1) * per_frame, n_feats), nn.PReLU(num_parameters=1, init=0.2),
            conv_nd(2, n_feats, n_feats),
        )

    def forward(self, memories: list[torch.Tensor], phase: torch.Tensor | None, no_grad_ends: int = 0) -> torch.Tensor:
        parts = list(memories)
        if self.use_phase:
            b, t, _, h, w = memories[0].shape
            parts.append(phase.to(memories[0].dtype)[:, :, None, None, None].expand(b, t, 1, h, w))
        win = temporal_windows(torch.cat(parts, dim=2), self.fusion_n)
        return _apply_framewise(self.body, win, no_grad_ends)


def _check_non_negative_int(name: str, v: int, lo: int = 0) -> int:
    if isinstance(v, bool) or int(v) != v or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


@register("phase_vsr")
class PhaseVSR(SRModel):
    """Phase-aware video SR; see the module docstring for the architecture and ablations.

    forward(lr (B, T̃+2n, 1, h, w), phase (B, T̃+2n), omega=None) → (B, T̃, 1, H, W).
    """

    inputs = ("lr", "phase")

    def __init__(
        self,
        *,
        scale: int,
        dims: int,
        grid_convention: str,
        n_feats: int = 64,
        n_layers: int = 3,
        n_warmup: int = 6,
        fusion_n: int = 2,
        omega: int = 2,
        bidirectional: bool = True,
        use_phase: bool = True,
        fusion: bool = True,
        memory: bool = True,
        init_cubic: bool = False,
        warmup_grad: bool = False,
        clip_frames: int = 7,
    ) -> None:
        super().__init__()
        scale = check_integer_scale(scale)
        if dims != 2:
            raise ValueError(f"phase_vsr super-resolves 2D frames: dims must be 2, got {dims}")
        n_feats = _check_non_negative_int("n_feats", n_feats, 1)
        self.n_warmup = _check_non_negative_int("n_warmup", n_warmup)
        self.omega = _check_non_negative_int("omega", omega)
        fusion_n = _check_non_negative_int("fusion_n", fusion_n)
        self.bidirectional = bool(bidirectional)
        self.warmup_grad = bool(warmup_grad)
        self.clip_frames = _check_non_negative_int("clip_frames", clip_frames, 1)  # inference clips
        self.fusion = bool(fusion)
        self.use_phase = bool(use_phase) and self.fusion  # the phase code enters through PF only
        self.fe = nn.Sequential(conv_nd(2, 1, n_feats), nn.PReLU(num_parameters=1, init=0.2))
        n_layers = _check_non_negative_int("n_layers", n_layers, 1)
        self.lstm_f = ConvLSTM(n_feats, n_feats, n_layers, memory=memory)
        self.lstm_b = ConvLSTM(n_feats, n_feats, n_layers, memory=memory) if self.bidirectional else None
        n_dirs = 2 if self.bidirectional else 1
        self.pf = PhaseFusion(n_feats, fusion_n, n_dirs, self.use_phase) if self.fusion else None
        self.up = nn.Sequential(Upsampler(scale, n_feats, 2), conv_nd(2, n_feats, 1))
        if init_cubic:
            # Start exactly at the cubic baseline: a randomly initialised decoder adds noise
            # that short (CPU) schedules spend their first ~100 steps unlearning.
            nn.init.zeros_(self.up[-1].weight)
            nn.init.zeros_(self.up[-1].bias)
        self.cubic = CubicUpsample(scale, 2, grid_convention)
        self.stage_outputs: dict[str, list[torch.Tensor]] = {}

    # --- pieces -------------------------------------------------------------------------
    def _check_inputs(self, lr: torch.Tensor, phase: torch.Tensor | None) -> None:
        if lr.ndim != 5 or lr.shape[2] != 1:
            raise ValueError(f"lr must be (B, frames, 1, h, w), got shape {tuple(lr.shape)}")
        if lr.shape[1] <= 2 * self.n_warmup:
            raise ValueError(f"a clip of {lr.shape[1]} frames leaves no central frame after "
                             f"{self.n_warmup} warm-up frames on each side")
        if self.use_phase:
            if phase is None:
                raise ValueError("phase codes are required (use_phase=True)")
            if tuple(phase.shape) != tuple(lr.shape[:2]):
                raise ValueError(f"phase must be (B, frames) = {tuple(lr.shape[:2])}, got {tuple(phase.shape)}")

    def _no_grad_ends(self) -> int:
        """Frames at each clip end computed without gradients: the warm-up frames in training."""
        return 0 if self.warmup_grad or not (self.training and torch.is_grad_enabled()) else self.n_warmup

    def _net_sub(self, feats: torch.Tensor, phase: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(H_F, H_B or None, H_P) for every clip frame: the shared sub-network of eqs. 2-3."""
        ends = self._no_grad_ends()
        h_f = self.lstm_f(feats, ends)
        h_b = self.lstm_b(feats.flip(1), ends).flip(1) if self.lstm_b is not None else None
        memories = [h_f] if h_b is None else [h_f, h_b]
        if self.pf is not None:
            h_p = self.pf(memories, phase, ends)
        else:
            h_p = h_f if h_b is None else 0.5 * (h_f + h_b)
        return h_f, h_b, h_p

    def _reconstruct(self, low: torch.Tensor, high: torch.Tensor, cubic: torch.Tensor) -> torch.Tensor:
        """Up(L ⊕ H) + cubic for the central frames: (B, T̃, C, h, w) → (B, T̃, 1, H, W)."""
        b, t = low.shape[:2]
        # channels_last: oneDNN's backward of the HR convs (8 → 1 channel) is ~1.7x faster
        # in it on CPU; the decoder runs 3·(Ω+1) times a step, most of the training time.
        x = (low + high).flatten(0, 1).contiguous(memory_format=torch.channels_last)
        out = self.up(x).contiguous() + cubic
        return out.reshape(b, t, *out.shape[1:])

    # --- forward / loss -----------------------------------------------------------------
    def forward(self, lr: torch.Tensor, phase: torch.Tensor | None = None, omega: int | None = None) -> torch.Tensor:
        # Patch stores give channel-first clips (B, 1, frames, h, w) and phase (B, 1, frames);
        # the network works frame-first (B, frames, 1, h, w) and answers in the caller's layout.
        channel_first = lr.ndim == 5 and lr.shape[1] == 1 and lr.shape[2] != 1
        if channel_first:
            lr = lr.transpose(1, 2)
            phase = phase.squeeze(1) if phase is not None and phase.ndim == 3 else phase
        out = self._forward(lr, phase, omega)
        self._last_output = out.transpose(1, 2) if channel_first else out
        return self._last_output

    def _forward(self, lr: torch.Tensor, phase: torch.Tensor | None, omega: int | None) -> torch.Tensor:
        self._check_inputs(lr, phase)
        omega = self.omega if omega is None else _check_non_negative_int("omega", omega)
        n = self.n_warmup
        b, t = lr.shape[:2]
        central = slice(n, t - n)
        feats = _apply_framewise(self.fe, lr, self._no_grad_ends())
        cubic = self.cubic(lr[:, central].flatten(0, 1))
        deep = self.training and self._has_direction_terms()
        outputs: dict[str, list[torch.Tensor]] = {"sr": [], "fwd": [], "bwd": []}
        for stage in range(omega + 1):
            h_f, h_b, h_p = self._net_sub(feats, phase)
            low = feats[:, central]
            outputs["sr"].append(self._reconstruct(low, h_p[:, central], cubic))
            if deep:
                outputs["fwd"].append(self._reconstruct(low, h_f[:, central], cubic))
                if h_b is not None:
                    outputs["bwd"].append(self._reconstruct(low, h_b[:, central], cubic))
            if stage < omega:
                feats = feats + h_p  # residual of residual: L^{ω+1} = L^ω + Net_sub(L^ω)
        self.stage_outputs = outputs
        return outputs["sr"][-1]

    def __getstate__(self) -> dict:
        # Stashed stage outputs carry autograd graphs that deepcopy/pickle refuse; they are
        # per-forward scratch, never model state.
        state = self.__dict__.copy()
        state["stage_outputs"], state["_last_output"] = {}, None
        return state

    def _has_direction_terms(self) -> bool:
        """Whether training supervises the per-direction outputs I_SR,F (and I_SR,B): without a
        backward memory or phase fusion, I_SR,F is I_SR itself."""
        return self.bidirectional or self.fusion

    def loss_text(self) -> str:
        """The terms `loss` sums (the switches `_forward` makes them with)."""
        terms = ["L1(I_SR^ω)"]
        if self._has_direction_terms():
            terms.append("L1(I_SR,F^ω)")
            if self.bidirectional:
                terms.append("L1(I_SR,B^ω)")
        return f"Σ over the {self.omega + 1} refinement stage(s) ω of " + " + ".join(terms)

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Σ_ω L1(I_SR^ω) + L1(I_SR,F^ω) + L1(I_SR,B^ω) against batch["hr"] (B, T̃, 1, H, W).

        Uses the stage outputs stashed by the forward that produced `output`; in eval
        mode (no deep supervision) only the I_SR^ω terms exist.
        """
        sr = self.stage_outputs.get("sr", [])
        if not sr or getattr(self, "_last_output", None) is not output:
            raise RuntimeError("loss() needs the output of this model's latest forward()")
        hr = batch["hr"]
        if output is not sr[-1]:  # channel-first caller: compare in the frame-first layout
            hr, output = hr.transpose(1, 2), output.transpose(1, 2)
        if hr.shape != sr[-1].shape:
            raise ValueError(f"hr shape {tuple(hr.shape)} does not match output {tuple(output.shape)}")
        terms = [F.l1_loss(o, hr) for key in ("sr", "fwd", "bwd") for o in self.stage_outputs[key]]
        return torch.stack(terms).sum()
