"""Units of the shared LR↔HR grid module (mrisr.grid)."""

from __future__ import annotations

import numpy as np
import pytest

from mrisr.grid import (
    Grid,
    axis_grid,
    cubic_matrix,
    cubic_upsample,
    downsample_matrix,
    format_scale,
    integer_scale,
    keys_kernel,
    lr_size,
    shapes_match,
    upsample_matrix,
)


def test_keys_kernel_hand_values():
    # a = -0.5: |t|<=1: 1.5|t|^3 - 2.5|t|^2 + 1;  1<|t|<2: -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2
    t = np.array([0.0, 0.5, 1.0, 1.5, -0.5, -1.5, 2.0, 2.5])
    want = np.array([1.0, 0.5625, 0.0, -0.0625, 0.5625, -0.0625, 0.0, 0.0])
    np.testing.assert_allclose(keys_kernel(t), want, atol=1e-15)


def test_cubic_matrix_rows_sum_to_one():
    coords = np.linspace(-1.3, 20.7, 57)
    np.testing.assert_allclose(cubic_matrix(coords, 20).sum(axis=1), 1.0, atol=1e-12)


def test_cubic_matrix_reproduces_linear_functions_in_the_interior():
    n = 30
    coords = np.linspace(1.0, n - 3.0, 101)  # all four taps inside [0, n)
    signal = 0.7 * np.arange(n) - 3.2
    np.testing.assert_allclose(cubic_matrix(coords, n) @ signal, 0.7 * coords - 3.2, atol=1e-12)


def test_cubic_matrix_interpolates_samples():
    np.testing.assert_allclose(cubic_matrix(np.arange(9.0), 9), np.eye(9), atol=1e-15)


@pytest.mark.parametrize("convention,offset", [("corner", 0.0), ("center", 1.5)])
def test_axis_grid_conventions(convention, offset):
    ag = axis_grid(convention, 40, 10)
    assert ag.step == 4.0 and ag.offset == offset
    assert ag.lr_position(ag.hr_position(3.0)) == pytest.approx(3.0)


def test_axis_grid_rejects_unknown_convention():
    with pytest.raises(ValueError, match="convention"):
        axis_grid("edge", 8, 4)


def test_lr_size_rounding():
    assert [lr_size(97, 2.5), lr_size(120, 4), lr_size(10, 4), lr_size(1, 4)] == [39, 30, 3, 1]
    with pytest.raises(ValueError):
        lr_size(10, 0.5)


def test_grid_json_round_trip():
    g = Grid("center", (0, 1), (40, 30, 5), (20, 15, 5))
    d = g.to_json()
    assert d["offset"] == [0.5, 0.5] and d["step"] == [2.0, 2.0]
    assert Grid.from_json(d) == g


def test_down_then_up_matrices_recover_a_smooth_signal():
    n_hr, n_lr = 120, 30
    x = np.cos(2 * np.pi * np.arange(n_hr) / 60.0)
    ag = axis_grid("center", n_hr, n_lr)
    back = upsample_matrix(ag, n_lr, n_hr) @ (downsample_matrix(ag, n_hr, n_lr) @ x)
    np.testing.assert_allclose(back[8:-8], x[8:-8], atol=0.02)


def test_cubic_upsample_places_corner_samples_exactly():
    lr = np.random.default_rng(0).random((6, 5)).astype(np.float32)
    g = Grid("corner", (0, 1), (18, 15), (6, 5))
    np.testing.assert_allclose(cubic_upsample(lr, g)[::3, ::3], lr, atol=1e-6)


def test_scale_helpers():
    assert format_scale(2.0) == "2" and format_scale(2.5) == "2.5"
    assert integer_scale(3.0) == 3 and integer_scale(2.5) is None
    assert shapes_match((97, 40, 3), (39, 16, 3), (0, 1), 2.5)
    assert not shapes_match((97, 40, 3), (38, 16, 3), (0, 1), 2.5)
