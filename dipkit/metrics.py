"""Image quality metrics in the paper's conventions: one value per image.

As in deepinv, a metric is called ``metric(x_net, x)`` on batches (N, C, H, W) and returns a
tensor (N,) on the input's device. The paper's conventions: images in [0, 1] (data range 1),
no border crop, all channels together (RGB PSNR for denoising, gray otherwise: convert with
:func:`dipkit.images.rgb_to_gray` first when a gray PSNR of a colour image is wanted).

Examples
--------
>>> x = torch.full((2, 1, 8, 8), 0.5)
>>> psnr(x + 0.1, x).round()
tensor([20., 20.])
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import DipkitError, ShapeError

__all__ = ["psnr", "ssim", "mse"]


def _pair(x, y, data_range) -> tuple:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise DipkitError(f"{name} must be a torch tensor (N, C, H, W), got {type(t).__name__}; "
                              f"convert arrays with dipkit.images.to_tensor")
    if x.shape != y.shape:
        raise ShapeError(f"the images differ in shape: x {tuple(x.shape)}, y {tuple(y.shape)}; "
                         f"compare images of the same size and channels (convert colour with "
                         f"dipkit.images.rgb_to_gray if one is gray)")
    if x.ndim == 3:
        x, y = x[None], y[None]
    if x.ndim != 4:
        raise ShapeError(f"expected images (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ShapeError(f"cannot compare empty images of shape {tuple(x.shape)}")
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(data_range) and data_range > 0):
        raise DipkitError(f"data_range must be a positive number (1 for images in [0, 1]), got "
                          f"{data_range!r}")
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(device=x.device, dtype=dtype)


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image over all channels and pixels.

    Parameters
    ----------
    x, y : Tensor (N, C, H, W) or (C, H, W), same shape

    Returns
    -------
    Tensor (N,), float32 (float64 if an input is float64), on x's device
    """
    x, y = _pair(x, y, 1.0)
    return (x - y).square().flatten(1).mean(dim=1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image.

    Parameters
    ----------
    x, y : Tensor (N, C, H, W) or (C, H, W), same shape
        Images (e.g. the output and the clean image), on any device; y is moved to x's device.
        Values are not clipped or checked (so this never waits for the device).
    data_range : float
        The peak value: 1 for images in [0, 1] (the paper's convention).

    Returns
    -------
    Tensor (N,), float32 (float64 if an input is float64), on x's device
        ``10 · log10(data_range² / MSE)`` with the MSE over all channels and pixels of each image
        (no border crop). Identical images give ``+inf``.

    Raises
    ------
    ShapeError
        x and y differ in shape; the message gives both.

    Examples
    --------
    >>> x = torch.zeros(1, 3, 4, 4)
    >>> psnr(x + 0.01, x).round()
    tensor([40.])
    """
    x, y = _pair(x, y, data_range)
    err = (x - y).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(float(data_range) ** 2 / err)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (scikit-image's), one value per image.

    Parameters
    ----------
    x, y : Tensor (N, C, H, W) or (C, H, W), same shape, C = 1 or 3
        Both sides at least 7 pixels (the SSIM window).
    data_range : float
        1 for images in [0, 1].

    Returns
    -------
    Tensor (N,), float32, on x's device
        ``skimage.metrics.structural_similarity`` with its defaults (7×7 uniform window) and
        ``data_range``; colour images with ``channel_axis`` (mean over the channels). Computed
        on the CPU in float64; identical images give 1.

    Raises
    ------
    ShapeError
        Shapes differ (the message gives both), or an image is smaller than 7×7.

    Examples
    --------
    >>> x = torch.rand(2, 3, 16, 16)
    >>> ssim(x, x)
    tensor([1., 1.])
    """
    from skimage.metrics import structural_similarity

    xd, yd = _pair(x, y, data_range)
    if min(xd.shape[-2:]) < 7:
        raise ShapeError(f"SSIM needs images of at least 7x7 pixels (its window), got "
                         f"{xd.shape[-2]}x{xd.shape[-1]}; use psnr for tiny images")
    a = xd.detach().cpu().double().numpy()
    b = yd.detach().cpu().double().numpy()
    values = []
    for ai, bi in zip(a, b):
        if ai.shape[0] == 1:
            v = structural_similarity(ai[0], bi[0], data_range=float(data_range))
        else:
            v = structural_similarity(ai.transpose(1, 2, 0), bi.transpose(1, 2, 0),
                                      data_range=float(data_range), channel_axis=-1)
        values.append(v)
    return torch.tensor(values, dtype=torch.float32, device=x.device)
