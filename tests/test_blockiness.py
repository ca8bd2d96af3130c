"""The JPEG block-grid measure, against a direct computation and on synthetic grids."""

import numpy as np
import pytest
import torch

import dipkit
from dipkit.blockiness import grid_bins, grid_ratio, jump_profile, jump_spectrum
from dipkit.errors import ShapeError


def test_jump_profile_is_the_mean_absolute_column_difference():
    x = torch.rand(1, 1, 16, 32)
    direct = np.abs(np.diff(x[0, 0].double().numpy(), axis=1)).mean(axis=0)
    assert np.allclose(jump_profile(x), direct)
    f, m = jump_spectrum(x)
    assert f.shape == m.shape == (17,) and f[-1] == 0.5


def test_a_block_grid_raises_the_ratio_and_jpeg_is_blockier_than_clean():
    rng = np.random.default_rng(0)
    smooth = torch.from_numpy(np.cumsum(rng.normal(0, 0.01, (1, 1, 64, 64)), axis=-1) + 0.5).float()
    grid = smooth.clone()
    grid[..., 8::8] += 0.05  # a step at every block boundary
    assert grid_ratio(grid.clamp(0, 1)) > 2 * grid_ratio(smooth.clamp(0, 1))
    x = dipkit.images.sample("chelsea", size=64, mode="gray")
    assert grid_ratio(dipkit.degradations.JPEG(10).observe(x)) > 2 * grid_ratio(x)
    assert grid_bins(64) == [8, 16, 24, 32]


def test_bad_shapes_say_what_to_pass():
    with pytest.raises(ShapeError, match="one image"):
        grid_ratio(torch.rand(2, 1, 64, 64))
    with pytest.raises(ShapeError, match="at least 16 pixels wide"):
        grid_ratio(torch.rand(1, 1, 64, 8))


def test_the_jump_image_is_periodic_and_gray():
    from dipkit.blockiness import jump_image
    x = torch.zeros(1, 3, 8, 8)
    x[..., :, 4:] = 1.0                                   # one step up at column 4, down at the wrap
    j = jump_image(x)
    assert j.shape == (1, 1, 8, 8)
    step = float(dipkit.images.rgb_to_gray(torch.ones(1, 3, 1, 1)))      # the gray of white
    assert torch.allclose(j[0, 0, :, 3], torch.full((8,), step)) and torch.allclose(j[0, 0, :, 7], torch.full((8,), step))
    assert j.sum() == pytest.approx(16 * step, abs=1e-5)
