"""Conversions between NumPy arrays, tensors and colour modes; the checks of image tensors.

dipkit images are float32 tensors (N, C, H, W) in [0, 1] with C = 1 (gray) or 3 (RGB).
:func:`to_tensor` and :func:`to_numpy` convert NumPy arrays (H, W) or (H, W, C) to and from
them, :func:`rgb_to_gray` is the paper's gray conversion, :func:`check_image` validates a tensor.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..errors import DipkitError, ImageError, ShapeError

__all__ = ["GRAY_WEIGHTS", "check_image", "rgb_to_gray", "to_tensor", "to_numpy"]

#: The luma weights of the paper's code (ITU-R BT.601, as in MATLAB's ``rgb2gray``).
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)

_MODES = (None, "gray", "rgb")


def check_image(x, what: str = "image", values: bool = False) -> torch.Tensor:
    """Check a float image tensor (N, C, H, W) or (C, H, W); with ``values`` also [0, 1].

    Returns ``x`` unchanged; raises :class:`~dipkit.errors.DipkitError` (or ``ShapeError``)
    saying what to do otherwise. ``what`` names the tensor in the messages.
    """
    if not isinstance(x, torch.Tensor):
        raise DipkitError(f"{what} must be a torch tensor (N, C, H, W) in [0, 1], got "
                          f"{type(x).__name__}; load files with dipkit.images.load, convert "
                          f"arrays with dipkit.images.to_tensor")
    if x.ndim not in (3, 4):
        raise ShapeError(f"{what} must have shape (N, C, H, W) or (C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise DipkitError(f"{what} must be a float tensor in [0, 1], got dtype {x.dtype}; "
                          f"dipkit.images.to_tensor converts integer images")
    if values:
        if not torch.isfinite(x).all():
            raise DipkitError(f"{what} contains NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise DipkitError(f"{what} must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                              f"divide 8-bit values by 255 (dipkit.images.to_tensor does it)")
    return x


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """Convert RGB images to gray with the paper's weights.

    Parameters
    ----------
    x : Tensor, shape (N, 3, H, W) or (N, 1, H, W)
        Images in [0, 1]. One-channel input is returned unchanged.

    Returns
    -------
    Tensor, shape (N, 1, H, W)
        ``clip(0.2989 R + 0.5870 G + 0.1140 B, 0, 1)``, same dtype and device as ``x``.

    Examples
    --------
    >>> rgb_to_gray(torch.ones(2, 3, 4, 4)).shape
    torch.Size([2, 1, 4, 4])
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ShapeError(f"expected images of shape (N, C, H, W), got {shape}; add a batch "
                         f"dimension with x[None] or convert arrays with dipkit.images.to_tensor")
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ShapeError(f"expected 1 or 3 channels, got {x.shape[1]} (shape {tuple(x.shape)}); "
                         f"drop an alpha channel with x[:, :3]")
    w = torch.tensor(GRAY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).clamp(0, 1)


def _check_mode(mode: Optional[str]) -> None:
    """Raise a DipkitError unless ``mode`` is one of None, 'gray', 'rgb'."""
    if mode not in _MODES:
        raise DipkitError(f"mode must be 'gray', 'rgb' or None (keep the file's channels), "
                          f"got {mode!r}")


def _convert_mode(x: torch.Tensor, mode: Optional[str]) -> torch.Tensor:
    """Convert (N, C, H, W) images to the requested colour mode (None keeps them)."""
    _check_mode(mode)
    if mode == "gray":
        return rgb_to_gray(x)
    if mode == "rgb" and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    return x


def _single_image(image, what: str = "image", first: bool = False) -> torch.Tensor:
    """(C, H, W) CPU view of a (1, C, H, W) or (C, H, W) tensor; with ``first`` also the first
    image of (N, C, H, W)."""
    if not isinstance(image, torch.Tensor):
        raise DipkitError(f"{what} must be a torch tensor (1, C, H, W) or (C, H, W), got "
                          f"{type(image).__name__}; convert arrays with dipkit.images.to_tensor")
    if image.ndim == 4:
        if image.shape[0] != 1 and not first:
            raise ShapeError(f"{what} holds {image.shape[0]} images (shape {tuple(image.shape)}); "
                             f"save them one at a time, e.g. image[i]")
        image = image[0]
    if image.ndim != 3:
        raise ShapeError(f"{what} must have shape (1, C, H, W) or (C, H, W), got "
                         f"{tuple(image.shape)}")
    return image.detach().cpu()


def _hwc_array(array) -> np.ndarray:
    """``array`` as an ndarray (H, W, C) with C = 1 or 3, or a ShapeError saying how to fix it."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ShapeError(f"expected an image array of shape (H, W) or (H, W, C), got shape "
                         f"{a.shape}; convert images one at a time")
    if a.shape[2] not in (1, 3):
        if a.shape[0] in (1, 3):
            hint = "it looks channels-first: pass array.transpose(1, 2, 0)"
        elif a.shape[2] in (2, 4):
            hint = "drop the alpha channel: pass array[..., :-1]"
        else:
            hint = "images have 1 (gray) or 3 (RGB) channels"
        raise ShapeError(f"expected (H, W, C) with C = 1 or 3, got shape {a.shape}; {hint}")
    return a


def _unit_float(a: np.ndarray) -> np.ndarray:
    """float32 values in [0, 1] of a bool, uint8, uint16 or float array (same shape)."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / np.float32(65535)
    if np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise ImageError("the array contains NaN or infinite values; fix them before "
                             "converting")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ImageError(f"float images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                             f"scale them first (e.g. divide 0..255 values by 255, or pass the "
                             f"uint8 array itself)")
        return x
    if np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"integer images must be uint8 or uint16, got {a.dtype}; convert with "
                         f"array.astype(np.uint8) if the values are 0..255 (np.uint16 if "
                         f"0..65535)")
    raise ImageError(f"cannot convert an array of dtype {a.dtype} to an image; use uint8, "
                     f"uint16, bool or float in [0, 1]")


def to_tensor(array) -> torch.Tensor:
    """Convert a NumPy image (H, W) or (H, W, C) to a float32 tensor (1, C, H, W) in [0, 1].

    Parameters
    ----------
    array : ndarray (or anything ``numpy.asarray`` accepts, e.g. a PIL image)
        Shape (H, W) or (H, W, C) with C = 1 or 3. dtype uint8 (divided by 255), uint16 (divided
        by 65535), bool (0 or 1), or float with values in [0, 1] (kept as they are).

    Returns
    -------
    Tensor, shape (1, C, H, W), float32 on the CPU
        A copy: it does not share memory with ``array``.

    Raises
    ------
    ShapeError
        Another number of dimensions or channels (e.g. channels first or an alpha channel).
    ImageError
        Float values outside [0, 1] or not finite, or another integer dtype.

    Examples
    --------
    >>> to_tensor(np.full((4, 5, 3), 255, dtype=np.uint8)).shape
    torch.Size([1, 3, 4, 5])
    """
    if isinstance(array, torch.Tensor):
        raise DipkitError("to_tensor converts NumPy arrays; this is already a torch tensor. dipkit "
                          "images are (N, C, H, W) float32 in [0, 1]: reshape it with "
                          "x.permute(2, 0, 1)[None] if it is (H, W, C)")
    x = _unit_float(_hwc_array(array))
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)).copy())[None]


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """Convert the first (or only) image of a tensor to a NumPy array for plotting or other libraries.

    Parameters
    ----------
    image : Tensor, shape (N, C, H, W) or (C, H, W)
        Any device, any float dtype. Values are not clipped.

    Returns
    -------
    ndarray, float32
        (H, W, C), or (H, W) for one channel (what ``matplotlib.pyplot.imshow`` expects).

    Examples
    --------
    >>> to_numpy(torch.zeros(1, 3, 4, 5)).shape
    (4, 5, 3)
    """
    x = _single_image(image, first=True)
    a = x.float().numpy().transpose(1, 2, 0)
    return np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)
