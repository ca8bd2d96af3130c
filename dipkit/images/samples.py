"""Test images that scikit-image ships with its wheel (no download), as tensors (1, C, H, W).

:func:`sample` returns one of :data:`SAMPLES` as float32 in [0, 1], optionally centre-cropped to
an aspect ratio and resized (deterministically) to a size in pixels, and converted to gray or RGB.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import DipkitError
from .convert import _check_mode, _convert_mode, to_tensor

__all__ = ["SAMPLES", "sample"]

#: Names accepted by :func:`sample`: images that scikit-image ships with its wheel (no download).
SAMPLES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")


def _size_pair(size) -> tuple:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                       for s in size)):
        raise DipkitError(f"size must be a positive int or a pair (height, width) of positive "
                          f"ints, got {size!r}")
    return int(size[0]), int(size[1])


@lru_cache(maxsize=32)
def _sample_array(name: str, size) -> np.ndarray:
    import skimage.data
    a = getattr(skimage.data, name)()
    a = a.astype(np.float64) / 255.0
    if size is None:
        return a.astype(np.float32)
    th, tw = size
    h, w = a.shape[:2]
    if w * th > h * tw:                       # too wide: crop the width
        cw = max(1, int(round(h * tw / th)))
        x0 = (w - cw) // 2
        a = a[:, x0:x0 + cw]
    else:                                     # too tall: crop the height
        ch = max(1, int(round(w * th / tw)))
        y0 = (h - ch) // 2
        a = a[y0:y0 + ch]
    if a.shape[:2] != (th, tw):
        from skimage.transform import resize
        a = resize(a, (th, tw) + a.shape[2:], order=3, mode="reflect", anti_aliasing=True)
    return np.clip(a, 0, 1).astype(np.float32)


def sample(name: str, size: Union[None, int, Sequence[int]] = None,
           mode: Optional[str] = None) -> torch.Tensor:
    """A test image that scikit-image ships (no download), as a tensor (1, C, H, W) in [0, 1].

    Parameters
    ----------
    name : str
        One of :data:`SAMPLES`: 'astronaut' (512×512 RGB), 'camera' (512×512 gray), 'coffee'
        (400×600 RGB), 'chelsea' (300×451 RGB, a cat), 'rocket' (427×640 RGB),
        'immunohistochemistry' (512×512 RGB).
    size : int or (height, width), optional
        Output size. The image is centre-cropped to the target aspect ratio, then resized with
        ``skimage.transform.resize(order=3, anti_aliasing=True)`` (deterministic) and clipped to
        [0, 1]. None keeps the original size.
    mode : {None, 'gray', 'rgb'}
        As in :func:`load`.

    Returns
    -------
    Tensor (1, C, H, W), float32 in [0, 1]
        A new tensor at every call.

    Raises
    ------
    DipkitError
        Unknown name (the message lists the available ones) or bad size.

    Examples
    --------
    >>> sample("astronaut", size=64).shape
    torch.Size([1, 3, 64, 64])
    >>> sample("coffee", size=(32, 48), mode="gray").shape
    torch.Size([1, 1, 32, 48])
    """
    if name not in SAMPLES:
        raise DipkitError(f"unknown sample image {name!r}; choose one of {', '.join(SAMPLES)}")
    _check_mode(mode)
    a = _sample_array(name, None if size is None else _size_pair(size))
    return _convert_mode(to_tensor(a), mode)
