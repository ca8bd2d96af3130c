"""Padding and cropping images to a multiple of ``2**depth``, and undoing it on the output.

The decoders of dipkit halve the image ``depth`` times, so both sides of the input must be a
multiple of ``2**depth``. :func:`pad_to_multiple` pads evenly (reflection by default) and
:func:`crop_to_multiple` centre-crops; both return a :class:`Padding` whose :meth:`Padding.undo`
brings the network output (..., H', W') back to the original size (..., H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import DipkitError, ShapeError

__all__ = ["Padding", "pad_to_multiple", "crop_to_multiple"]

_PAD_MODES = ("reflect", "replicate", "circular", "constant")


@dataclass(frozen=True)
class Padding:
    """How an image was padded or cropped to a multiple, so that the output can be brought back.

    Attributes
    ----------
    top, bottom, left, right : int
        Rows and columns added (``kind='pad'``) or removed (``kind='crop'``) on each side.
    kind : {'pad', 'crop'}
    height, width : int or None
        The original size, used to check the image given to :meth:`undo`.
    mode : str
        The padding mode used by :func:`pad_to_multiple` (and by :meth:`undo` of a crop).
    """

    top: int
    bottom: int
    left: int
    right: int
    kind: str = "pad"
    height: Optional[int] = None
    width: Optional[int] = None
    mode: str = "reflect"

    @property
    def is_identity(self) -> bool:
        """True when nothing was padded or cropped."""
        return self.top == self.bottom == self.left == self.right == 0

    def undo(self, image: torch.Tensor, original: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Bring an image of the padded (or cropped) size back to the original size.

        Parameters
        ----------
        image : Tensor (..., H', W')
            An image of the padded or cropped size (e.g. the network output).
        original : Tensor (..., H, W), optional
            For a crop only: the original image. The result is ``original`` with its centre
            replaced by ``image``, so the cut borders get their original pixels back.

        Returns
        -------
        Tensor (..., H, W)
            For a pad: ``image`` cropped by the padding (exactly the original pixels if ``image``
            is the padded image). For a crop without ``original``: ``image`` padded back with
            ``mode`` (reflection), which cannot restore the pixels that were cut.
        """
        if not isinstance(image, torch.Tensor) or image.ndim < 2:
            raise ShapeError("undo expects an image tensor (..., H, W)")
        h, w = image.shape[-2:]
        if self.kind == "pad":
            oh, ow = h - self.top - self.bottom, w - self.left - self.right
            if oh <= 0 or ow <= 0 or (self.height is not None and (oh, ow) != (self.height, self.width)):
                raise ShapeError(f"this padding turned {self.height}x{self.width} images into "
                                 f"{self._other()} ones, but the image given to undo is {h}x{w}; "
                                 f"pass the padded image (or the output made from it)")
            return image[..., self.top:self.top + oh, self.left:self.left + ow]
        if self.kind != "crop":
            raise DipkitError(f"Padding.kind must be 'pad' or 'crop', got {self.kind!r}")
        oh, ow = h + self.top + self.bottom, w + self.left + self.right
        if self.height is not None and (oh, ow) != (self.height, self.width):
            raise ShapeError(f"this crop turned {self.height}x{self.width} images into "
                             f"{self._other()} ones, but the image given to undo is {h}x{w}; "
                             f"pass the cropped image (or the output made from it)")
        if original is not None:
            if not isinstance(original, torch.Tensor) or tuple(original.shape[-2:]) != (oh, ow):
                got = tuple(original.shape) if hasattr(original, "shape") else type(original).__name__
                raise ShapeError(f"original must be the uncropped {oh}x{ow} image, got {got}")
            try:
                out = original.to(device=image.device, dtype=image.dtype).expand(
                    *image.shape[:-2], oh, ow).clone()
            except RuntimeError:
                raise ShapeError(f"original {tuple(original.shape)} does not match the batch and "
                                 f"channels of the image {tuple(image.shape)}") from None
            out[..., self.top:self.top + h, self.left:self.left + w] = image
            return out
        return _pad(image, self.top, self.bottom, self.left, self.right, self.mode)

    def _other(self) -> str:
        if self.height is None:
            return "other"
        s = 1 if self.kind == "pad" else -1
        return f"{self.height + s * (self.top + self.bottom)}x{self.width + s * (self.left + self.right)}"


def _pad_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source indices of a padded axis of length n + before + after."""
    j = torch.arange(-before, n + after, device=device)
    if mode == "replicate" or n == 1:
        return j.clamp(0, n - 1)
    if mode == "circular":
        return j.remainder(n)
    period = 2 * (n - 1)                    # reflect, repeated as often as needed
    j = j.remainder(period)
    return torch.where(j >= n, period - j, j)


def _pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    if top == bottom == left == right == 0:
        return x
    if mode == "constant":
        return torch.nn.functional.pad(x, (left, right, top, bottom), mode="constant", value=0.0)
    h, w = x.shape[-2:]
    rows = _pad_index(h, top, bottom, mode, x.device)
    cols = _pad_index(w, left, right, mode, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def _check_multiple(image, multiple) -> tuple:
    if not isinstance(image, torch.Tensor) or image.ndim < 2:
        got = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ShapeError(f"expected an image tensor (N, C, H, W) or (C, H, W), got {got}")
    if not isinstance(multiple, (int, np.integer)) or isinstance(multiple, bool) or multiple < 1:
        raise DipkitError(f"multiple must be a positive integer (e.g. 2**depth = 32), got "
                          f"{multiple!r}")
    h, w = image.shape[-2:]
    if h == 0 or w == 0:
        raise ShapeError(f"cannot pad or crop an empty image of shape {tuple(image.shape)}")
    return int(h), int(w), int(multiple)


def pad_to_multiple(image: torch.Tensor, multiple: int, mode: str = "reflect"):
    """Pad an image evenly on all sides so that height and width are multiples of ``multiple``.

    Parameters
    ----------
    image : Tensor (N, C, H, W) or (C, H, W)
    multiple : int
        E.g. ``2**depth`` (32 for the paper's decoder of depth 5).
    mode : {'reflect', 'replicate', 'circular', 'constant'}
        'reflect' mirrors without repeating the edge pixel (as ``torch.nn.ReflectionPad2d``),
        repeating the reflection when the padding is larger than the image; a 1-pixel side is
        replicated. 'constant' pads with zeros.

    Returns
    -------
    padded : Tensor (..., H2, W2)
        H2 = ceil(H / multiple) · multiple, same for W2. The image itself when nothing is needed.
    padding : Padding
        ``padding.undo(output)`` crops the padding off again (exact pixels).

    Notes
    -----
    The extra rows are split as evenly as possible: ``top = (H2 − H) // 2``, the rest at the
    bottom; the same for columns.

    Examples
    --------
    >>> x = torch.rand(1, 3, 100, 70)
    >>> y, padding = pad_to_multiple(x, 32)
    >>> y.shape, torch.equal(padding.undo(y), x)
    (torch.Size([1, 3, 128, 96]), True)
    """
    h, w, m = _check_multiple(image, multiple)
    if mode not in _PAD_MODES:
        raise DipkitError(f"mode must be one of {_PAD_MODES}, got {mode!r}")
    dh, dw = -h % m, -w % m
    top, left = dh // 2, dw // 2
    pad = Padding(top, dh - top, left, dw - left, "pad", h, w, mode)
    return _pad(image, pad.top, pad.bottom, pad.left, pad.right, mode), pad


def crop_to_multiple(image: torch.Tensor, multiple: int):
    """Centre-crop an image so that height and width are multiples of ``multiple``.

    Parameters
    ----------
    image : Tensor (N, C, H, W) or (C, H, W)
    multiple : int
        E.g. ``2**depth``. Both sides must be at least ``multiple``.

    Returns
    -------
    cropped : Tensor (..., H2, W2)
        H2 = floor(H / multiple) · multiple (a view of ``image``), same for W2; the centre part.
    padding : Padding
        ``kind='crop'``. ``padding.undo(output, original=image)`` pastes the output back into the
        original image (cut borders keep their original pixels); ``padding.undo(output)`` pads it
        back by reflection, which cannot restore the cut pixels.

    Raises
    ------
    ShapeError
        A side shorter than ``multiple``: pad with :func:`pad_to_multiple` instead.

    Examples
    --------
    >>> y, crop = crop_to_multiple(torch.rand(1, 1, 70, 65), 32)
    >>> y.shape[-2:], crop.undo(y).shape[-2:]
    (torch.Size([64, 64]), torch.Size([70, 65]))
    """
    h, w, m = _check_multiple(image, multiple)
    if h < m or w < m:
        raise ShapeError(f"cannot crop a {h}x{w} image to a multiple of {m}: a side is shorter "
                         f"than {m}; pad it with dipkit.images.pad_to_multiple instead")
    dh, dw = h % m, w % m
    top, left = dh // 2, dw // 2
    crop = Padding(top, dh - top, left, dw - left, "crop", h, w, "reflect")
    return image[..., top:h - crop.bottom, left:w - crop.right], crop
