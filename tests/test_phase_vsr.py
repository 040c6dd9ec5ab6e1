"""Phase code, cyclic clip indexing and the phase-aware video SR model (phase_vsr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrisr.grid import Grid, cubic_upsample
from mrisr.phase import cyclic_clip_indices, phase_code
from mrisr.models.phase_vsr import ConvLSTM, ConvLSTMCell, PhaseVSR
from mrisr.models.registry import build_model, count_parameters

TINY = {"n_feats": 6, "n_layers": 1}


def tiny_model(scale: int = 2, **args) -> PhaseVSR:
    torch.manual_seed(0)
    return PhaseVSR(scale=scale, dims=2, grid_convention="center", **{**TINY, **args})


def clip(frames: int, size: int = 6, batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(batch, frames, 1, size, size, generator=g)
    phase = torch.rand(batch, frames, generator=g) * 2 - 1
    return lr, phase


# --- phase code ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "t, ed, es, n, expected",
    [
        (0, 0, 10, 30, 1.0),  # ED
        (10, 0, 10, 30, -1.0),  # ES
        (5, 0, 10, 30, 0.0),  # midway through systole: cos(π/2)
        (20, 0, 10, 30, 0.0),  # diastole: cos(π(1 + 10/20))
        (25, 0, 10, 30, np.cos(np.pi * 1.75)),
        (29, 0, 10, 30, np.cos(np.pi * (1 + 19 / 20))),  # last frame, just before the next ED
        # ES before ED in frame order (systole wraps: 15 → 19 → 0 → 3, 8 frames long)
        (15, 15, 3, 20, 1.0),
        (3, 15, 3, 20, -1.0),
        (19, 15, 3, 20, 0.0),  # 4 of 8 systolic frames after ED
        (1, 15, 3, 20, np.cos(np.pi * 6 / 8)),
        (9, 15, 3, 20, 0.0),  # diastole: 6 of 12 frames after ES
    ],
)
def test_phase_code_hand_values(t, ed, es, n, expected):
    assert float(phase_code(t, ed, es, n)) == pytest.approx(expected, abs=1e-6)


def test_phase_code_cycle_shape():
    """Systole falls monotonically 1 → −1, diastole rises back; t outside [0, T) wraps."""
    t = np.arange(30)
    p = phase_code(t, 4, 14, 30)
    assert p.shape == (30,) and p.dtype == np.float32
    assert np.all(np.abs(p) <= 1 + 1e-6)
    systole = p[4:15]
    diastole = np.concatenate([p[14:], p[:5]])
    assert np.all(np.diff(systole) < 0) and np.all(np.diff(diastole) > 0)
    np.testing.assert_array_equal(phase_code(t + 30, 4, 14, 30), p)
    np.testing.assert_array_equal(phase_code(t - 30, 4, 14, 30), p)


@pytest.mark.parametrize(
    "args",
    [(0, 3, 3, 10), (0, 0, 10, 10), (0, -1, 3, 10), (0, 0, 3, 1), (0.5, 0, 3, 10), (0, 0.5, 3, 10)],
)
def test_phase_code_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        phase_code(*args)


# --- cyclic clips -------------------------------------------------------------------------

def test_cyclic_clip_indices():
    np.testing.assert_array_equal(cyclic_clip_indices(0, 3, 2, 10), [8, 9, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(cyclic_clip_indices(8, 3, 1, 10), [7, 8, 9, 0, 1])
    # whole-cine inference with warm-up wraps on both sides
    idx = cyclic_clip_indices(0, 5, 6, 5)
    assert len(idx) == 17
    np.testing.assert_array_equal(idx[6:11], np.arange(5))
    np.testing.assert_array_equal(idx, np.arange(-6, 11) % 5)
    np.testing.assert_array_equal(cyclic_clip_indices(4, 2, 0, 10), [4, 5])
    for bad in [(0, 0, 2, 10), (0, 3, -1, 10), (0, 3, 2, 0), (0.5, 3, 2, 10)]:
        with pytest.raises(ValueError):
            cyclic_clip_indices(*bad)


# --- ConvLSTM -----------------------------------------------------------------------------

def test_convlstm_cell_matches_lstm_equations():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4)
    x, h, c = torch.randn(2, 3, 5, 7), torch.randn(2, 4, 5, 7), torch.randn(2, 4, 5, 7)
    h1, c1 = cell(x, (h, c))
    assert h1.shape == c1.shape == (2, 4, 5, 7)
    z = F.conv2d(torch.cat([x, h], 1), cell.conv.weight, cell.conv.bias, padding=1)
    i, f, o, g = z[:, 0:4], z[:, 4:8], z[:, 8:12], z[:, 12:16]
    c_ref = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    torch.testing.assert_close(c1, c_ref)
    torch.testing.assert_close(h1, torch.sigmoid(o) * torch.tanh(c_ref))


def test_convlstm_memory_carries_information_forward_only():
    torch.manual_seed(0)
    seq = torch.randn(1, 4, 3, 6, 6)
    changed = seq.clone()
    changed[:, 0] += 1.0
    for memory in (True, False):
        net = ConvLSTM(3, 5, n_layers=2, memory=memory)
        out, out2 = net(seq), net(changed)
        assert out.shape == (1, 4, 5, 6, 6)
        later_differs = not torch.allclose(out[:, 3], out2[:, 3])
        assert later_differs == memory  # no memory: state reset each frame
        assert not torch.allclose(out[:, 0], out2[:, 0])
    net = ConvLSTM(3, 5, n_layers=1)
    changed_late = seq.clone()
    changed_late[:, 3] += 1.0
    torch.testing.assert_close(net(seq)[:, :3], net(changed_late)[:, :3])  # causal


# --- model --------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes(scale):
    model = tiny_model(scale, n_warmup=2)
    lr, phase = clip(frames=3 + 4)
    out = model(lr, phase)
    assert out.shape == (2, 3, 1, 6 * scale, 6 * scale)
    assert len(model.stage_outputs["sr"]) == model.omega + 1


def test_registered_and_built_through_registry():
    import mrisr.models.phase_vsr  # noqa: F401  (registration happens on import)

    model = build_model("phase_vsr", scale=2, dims=2, grid_convention="corner", **TINY)
    assert isinstance(model, PhaseVSR) and model.inputs == ("lr", "phase")
    with pytest.raises(ValueError):
        build_model("phase_vsr", scale=2, dims=3, grid_convention="corner", **TINY)


def test_zero_decoder_gives_cubic_baseline_of_central_frames():
    """With the last conv zeroed, I_SR is exactly the convention-aware cubic upsample of
    the central frames (independent numpy reference: mrisr.grid.cubic_upsample)."""
    for convention in ("center", "corner"):
        model = PhaseVSR(scale=2, dims=2, grid_convention=convention, **TINY, n_warmup=1)
        torch.nn.init.zeros_(model.up[-1].weight)
        torch.nn.init.zeros_(model.up[-1].bias)
        lr, phase = clip(frames=4, size=5, batch=1)
        out = model(lr, phase).detach().numpy()
        grid = Grid(convention, axes=(0, 1), hr_shape=(10, 10), lr_shape=(5, 5))
        for k, t in enumerate((1, 2)):
            ref = cubic_upsample(lr[0, t, 0].numpy(), grid)
            np.testing.assert_allclose(out[0, k, 0], ref, atol=1e-5)


def test_omega_changes_at_inference_without_new_parameters():
    counts = {count_parameters(tiny_model(omega=w)) for w in (0, 2, 4)}
    assert len(counts) == 1
    model = tiny_model(omega=2, n_warmup=1).eval()
    lr, phase = clip(frames=5)
    with torch.no_grad():
        outs = [model(lr, phase, omega=w) for w in range(5)]
        default = model(lr, phase)
    torch.testing.assert_close(default, outs[2])
    assert all(o.shape == (2, 3, 1, 12, 12) for o in outs)
    for a in range(5):
        for b in range(a + 1, 5):
            assert not torch.allclose(outs[a], outs[b])
    assert len(model.stage_outputs["sr"]) == 3
    with pytest.raises(ValueError):
        model(lr, phase, omega=-1)


def test_loss_is_sum_of_stage_and_deep_supervision_l1_and_trains_every_parameter():
    model = tiny_model(omega=1, n_warmup=1).train()
    lr, phase = clip(frames=5)
    out = model(lr, phase)
    hr = torch.rand_like(out)
    loss = model.loss(out, {"hr": hr})
    stages = model.stage_outputs
    assert [len(stages[k]) for k in ("sr", "fwd", "bwd")] == [2, 2, 2]
    expected = sum(float((o.detach() - hr).abs().mean()) for k in ("sr", "fwd", "bwd") for o in stages[k])
    assert torch.isfinite(loss) and float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    with pytest.raises(RuntimeError):
        model.loss(out.detach().clone(), {"hr": hr})  # not this forward's output


@pytest.mark.parametrize("args", [{}, {"bidirectional": False}, {"bidirectional": False, "fusion": False},
                                  {"fusion": False}])
def test_the_card_names_the_loss_terms_training_sums(args):
    """The model card's loss (`loss_text`) lists exactly the stage outputs a training forward makes."""
    model = tiny_model(omega=1, n_warmup=1, **args).train()
    lr, phase = clip(frames=5)
    model(lr, phase)
    made = [k for k in ("sr", "fwd", "bwd") if model.stage_outputs[k]]
    named = {"sr": "L1(I_SR^ω)", "fwd": "L1(I_SR,F^ω)", "bwd": "L1(I_SR,B^ω)"}
    text = model.loss_text()
    assert [k for k in named if named[k] in text] == made and "2 refinement stage" in text


@pytest.mark.parametrize("omega", [0, 2])
def test_warmup_frames_run_without_gradients_in_training(omega):
    """As the authors' code: warm-up frames prime the memory under no_grad (no gradient
    reaches their inputs), central frames get gradients; outputs do not depend on it."""
    n = 2
    lr, phase = clip(frames=3 + 2 * n, batch=1)
    grads, outs = {}, {}
    for warmup_grad in (False, True):
        model = tiny_model(omega=omega, n_warmup=n, warmup_grad=warmup_grad).train()
        x = lr.clone().requires_grad_(True)
        out = model(x, phase)
        model.loss(out, {"hr": torch.rand_like(out)}).backward()
        per_frame = x.grad.abs().sum(dim=(0, 2, 3, 4))
        grads[warmup_grad], outs[warmup_grad] = per_frame, out.detach()
        assert all(p.grad is not None for p in model.parameters())
    torch.testing.assert_close(outs[False], outs[True])
    assert torch.all(grads[False][:n] == 0) and torch.all(grads[False][-n:] == 0)
    assert torch.all(grads[False][n:-n] > 0)
    assert torch.all(grads[True] > 0)  # with warmup_grad the priming frames learn too


def test_eval_mode_has_no_deep_supervision_outputs():
    model = tiny_model(omega=1, n_warmup=1).eval()
    lr, phase = clip(frames=5)
    with torch.no_grad():
        out = model(lr, phase)
    assert model.stage_outputs["fwd"] == [] and model.stage_outputs["bwd"] == []
    assert len(model.stage_outputs["sr"]) == 2 and model.stage_outputs["sr"][-1] is out


def _changed(lr: torch.Tensor, frame: int) -> torch.Tensor:
    out = lr.clone()
    out[:, frame] = torch.rand_like(out[:, frame])
    return out


def test_ablation_flags_change_what_a_frame_sees():
    """nomem: frame-wise; mem: past frames; bidir: future frames too; PF: a window."""
    lr, phase = clip(frames=7, batch=1)  # n_warmup=1 → central frames 1..5
    ladder = {
        "nomem": dict(memory=False, bidirectional=False, fusion=False, omega=0, n_warmup=1),
        "mem": dict(memory=True, bidirectional=False, fusion=False, omega=0, n_warmup=1),
        "bidir": dict(memory=True, bidirectional=True, fusion=False, omega=0, n_warmup=1),
        "pf_window": dict(memory=False, bidirectional=False, fusion=True, fusion_n=1, omega=0, n_warmup=1),
    }
    sees = {}
    for name, args in ladder.items():
        model = tiny_model(**args).eval()
        with torch.no_grad():
            base = model(lr, phase)[:, 2]  # clip frame 3
            sees[name] = {f: not torch.allclose(base, model(_changed(lr, f), phase)[:, 2]) for f in range(7)}
    assert [f for f, s in sees["nomem"].items() if s] == [3]
    assert [f for f, s in sees["mem"].items() if s] == [0, 1, 2, 3]
    assert [f for f, s in sees["bidir"].items() if s] == list(range(7))
    assert [f for f, s in sees["pf_window"].items() if s] == [2, 3, 4]


def test_phase_code_input_matters_only_with_use_phase():
    lr, phase = clip(frames=5)
    other = phase.flip(1)
    with torch.no_grad():
        on = tiny_model(n_warmup=1, use_phase=True).eval()
        assert not torch.allclose(on(lr, phase), on(lr, other))
        off = tiny_model(n_warmup=1, use_phase=False).eval()
        torch.testing.assert_close(off(lr, phase), off(lr, other))
        torch.testing.assert_close(off(lr, None), off(lr, phase))
    with pytest.raises(ValueError):
        on(lr, None)


def test_bad_inputs_are_rejected():
    model = tiny_model(n_warmup=2)
    lr, phase = clip(frames=4)
    with pytest.raises(ValueError):
        model(lr, phase)  # 4 frames leave no central frame after 2 + 2 warm-up frames
    lr, phase = clip(frames=6)
    with pytest.raises(ValueError):
        model(lr, phase[:, :5])
    with pytest.raises(ValueError):
        model(lr[:, :, 0], phase)
    for bad in (dict(n_warmup=-1), dict(omega=1.5), dict(fusion_n=-1), dict(n_feats=0)):
        with pytest.raises(ValueError):
            tiny_model(**bad)
    with pytest.raises(ValueError):
        tiny_model(scale=1)


def test_patch_store_layout_and_deepcopy_after_forward() -> None:
    """The loop feeds channel-first clips (B, 1, frames, h, w); output comes back in that layout."""
    import copy

    from mrisr.models import build_model

    model = build_model("phase_vsr", scale=2, dims=2, grid_convention="center", n_feats=4, n_layers=1,
                        n_warmup=1, fusion_n=1, omega=1)
    lr = torch.rand(2, 1, 5, 6, 6)
    phase = torch.rand(2, 1, 5)
    out = model(lr=lr, phase=phase)
    assert out.shape == (2, 1, 3, 12, 12)
    frame_first = model(lr=lr.transpose(1, 2), phase=phase.squeeze(1))
    torch.testing.assert_close(out, frame_first.transpose(1, 2))
    out = model(lr=lr, phase=phase)
    loss = model.loss(out, {"hr": torch.rand(2, 1, 3, 12, 12)})
    loss.backward()
    copy.deepcopy(model)


def test_whole_cine_inference_runs_training_length_clips_with_cyclic_warmup():
    """super_resolve on a (X, Y, Z, T) cine = the model on clips of clip_frames central
    frames (last one shorter), each with n warm-up frames wrapping around the cycle."""
    from mrisr.evaluate.inference import super_resolve

    model = tiny_model(n_warmup=2, omega=1, clip_frames=3).eval()
    n_frames, ed, es = 7, 5, 2
    g = torch.Generator().manual_seed(3)
    cine = torch.rand(5, 6, 2, n_frames, generator=g).numpy()  # (X, Y, Z, T) LR
    grid = Grid("center", axes=(0, 1), hr_shape=(10, 12, 2, n_frames), lr_shape=cine.shape)
    out = super_resolve(cine, grid, "phase_vsr", model=model, cycle=(ed, es))
    assert out.shape == (10, 12, 2, n_frames)
    chunks = {0: [5, 6, 0, 1, 2, 3, 4], 3: [1, 2, 3, 4, 5, 6, 0], 6: [4, 5, 6, 0, 1]}  # by hand
    for z in range(2):
        for t0, idx in chunks.items():
            lr = torch.from_numpy(np.ascontiguousarray(np.moveaxis(cine[:, :, z][:, :, idx], -1, 0)))[None, :, None]
            phase = torch.from_numpy(phase_code(np.array(idx), ed, es, n_frames))[None]
            with torch.no_grad():
                sr = model(lr, phase)[0, :, 0].numpy()
            for k in range(sr.shape[0]):
                np.testing.assert_allclose(out[:, :, z, t0 + k], sr[k], atol=1e-5)
    model.clip_frames = n_frames  # an inference-time setting: one clip for the whole cine
    whole = super_resolve(cine, grid, "phase_vsr", model=model, cycle=(ed, es))
    assert not np.allclose(whole, out, atol=1e-4)
