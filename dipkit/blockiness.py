"""How blocky an image is: the 8-pixel grid of JPEG in the jumps between neighbouring columns.

JPEG rounds each 8×8 block on its own, so the jump from the last column of one block to the first
of the next is larger, on average, than the jumps inside a block. The *jump profile* averages
``|I(r, c+1) − I(r, c)|`` over the rows; a block grid makes it periodic with period 8, which puts
its energy at 1/8, 2/8, 3/8 and 4/8 cycles/pixel. The *grid ratio* is the mean magnitude of the
profile's DFT at those frequencies over its mean at the others: about 1 for a natural image,
well above 1 for a JPEG image.

Examples
--------
>>> import dipkit
>>> from dipkit.blockiness import grid_ratio
>>> x = dipkit.images.sample("chelsea", size=64, mode="gray")
>>> y = dipkit.degradations.JPEG(10).observe(x)
>>> grid_ratio(y) > grid_ratio(x)
True
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import ShapeError
from .images import rgb_to_gray

__all__ = ["jump_image", "jump_profile", "jump_spectrum", "grid_ratio", "grid_bins"]

BLOCK = 8  # JPEG's block side, pixels


def jump_image(image: torch.Tensor) -> torch.Tensor:
    """The jumps ``|I(r, c+1) − I(r, c)|`` of the gray image, periodic (the last column jumps to
    the first), same shape as a gray image: (N, 1, H, W) for an (N, C, H, W) input in [0, 1].

    Its spectrum shows JPEG's block grid as lines at multiples of 1/8 cycles/pixel along the
    columns (chapter 7's figure); :func:`jump_profile` is its mean over the rows, non-periodic.
    """
    gray = rgb_to_gray(image)
    return (gray.roll(-1, dims=-1) - gray).abs()


def _gray(image: torch.Tensor) -> torch.Tensor:
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
        raise ShapeError(f"expected one image (1, C, H, W) with C = 1 or 3, got {tuple(image.shape)}")
    if image.shape[-1] < 2 * BLOCK:
        raise ShapeError(f"the image must be at least {2 * BLOCK} pixels wide, got {image.shape[-1]}")
    return rgb_to_gray(image.detach().cpu())[0, 0].double()


def jump_profile(image: torch.Tensor) -> np.ndarray:
    """J(c) = mean over the rows of ``|I(r, c+1) − I(r, c)|`` of the gray image.

    Parameters
    ----------
    image : Tensor (1, C, H, W) in [0, 1], C = 1 or 3

    Returns
    -------
    ndarray (W − 1,), intensity units
    """
    g = _gray(image)
    return (g[:, 1:] - g[:, :-1]).abs().mean(dim=0).numpy()


def jump_spectrum(image: torch.Tensor) -> tuple:
    """Frequencies (cycles/pixel, (W//2 + 1,)) and ``|DFT|`` of the jump profile (mean removed,
    zero-padded to W, divided by √W)."""
    j = jump_profile(image)
    width = j.size + 1
    return np.fft.rfftfreq(width), np.abs(np.fft.rfft(j - j.mean(), n=width)) / np.sqrt(width)


def grid_bins(width: int) -> list:
    """The DFT bins of 1/8, 2/8, 3/8 and 4/8 cycles/pixel for a profile zero-padded to ``width``."""
    return [width * k // BLOCK for k in range(1, BLOCK // 2 + 1)]


def grid_ratio(image: torch.Tensor) -> float:
    """Mean ``|DFT|`` of the jump profile at multiples of 1/8 over its mean at the other
    frequencies (the zero frequency excluded): ≈ 1 without a block grid, ≫ 1 with one."""
    _, magnitude = jump_spectrum(image)
    width = image.shape[-1]
    on = grid_bins(width)
    others = [i for i in range(1, magnitude.size) if i not in on]
    return float(magnitude[on].mean() / magnitude[others].mean())
