"""Benchmark folders: every image of a folder, with its ``NAME_mask.png`` mask if there is one.

:func:`load_folder` returns a sorted list of :class:`NamedImage` (name, image (1, C, H, W) in
[0, 1], mask (1, 1, H, W) bool or None), as the benchmarks of :mod:`dipkit.bench` read them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from ..errors import ImageError, ShapeError
from .convert import rgb_to_gray
from .io import IMAGE_EXTENSIONS, PathLike, _as_path, load

__all__ = ["NamedImage", "load_folder"]


@dataclass(frozen=True, eq=False)
class NamedImage:
    """An image of a benchmark folder with its name and optional mask.

    Attributes
    ----------
    name : str
        The file name without extension ('house' for house.png).
    image : Tensor (1, C, H, W), float32 in [0, 1]
    mask : Tensor (1, 1, H, W) bool, or None
        From ``NAME_mask.png`` beside the image: True (white, nonzero) = known pixel.
    """

    name: str
    image: torch.Tensor
    mask: Optional[torch.Tensor] = None


def _image_files(folder: Path):
    """({name: image file}, {name: mask file}) of the image files in ``folder``; a file
    ``X_mask.*`` is the mask of ``X``. Hidden files and other extensions are ignored."""
    files = sorted(f for f in folder.iterdir()
                   if f.is_file() and not f.name.startswith(".")
                   and f.suffix.lower() in IMAGE_EXTENSIONS)
    images, masks = {}, {}
    for f in files:
        is_mask = f.stem.endswith("_mask")
        stem = f.stem[:-len("_mask")] if is_mask else f.stem
        table = masks if is_mask else images
        if stem in table:
            raise ImageError(f"'{folder}' holds two {'masks' if is_mask else 'images'} named "
                             f"{stem!r} ({table[stem].name} and {f.name}); keep one")
        table[stem] = f
    return images, masks


def load_folder(path: PathLike, mode: Optional[str] = None) -> list:
    """Load every image of a folder, pairing ``NAME_mask.png`` files with ``NAME.png``.

    Parameters
    ----------
    path : str or Path
        A folder of PNG/JPEG/TIFF/BMP files (other files and sub-folders are ignored), e.g.
        ``dipkit.datasets.path("bernoulli11")`` (the paper's inpainting set, fetched by name).
    mode : {None, 'gray', 'rgb'}
        Colour conversion of the images, as in :func:`load` (masks are always one channel).

    Returns
    -------
    list of NamedImage
        Sorted by name (Python's string order: capitals first). A file ``X_mask.*`` is not an
        image of its own but the mask (bool (1, 1, H, W), nonzero = known) of ``X``.

    Raises
    ------
    ImageError
        Missing folder, a file instead of a folder, no images in it, two files with the same
        name, or a file that cannot be read.
    ShapeError
        A mask of another size than its image.

    Warns
    -----
    UserWarning
        A mask file without its image (it is skipped).

    Examples
    --------
    >>> from dipkit import datasets
    >>> items = load_folder(datasets.path("bernoulli11"))   # doctest: +SKIP
    >>> items[0].name, items[0].mask.shape                   # doctest: +SKIP
    ('Cameraman256', torch.Size([1, 1, 256, 256]))
    """
    folder = _as_path(path)
    if not folder.exists():
        raise ImageError(f"no such folder: '{folder}'; check the path (relative paths start at "
                         f"{Path.cwd()})")
    if not folder.is_dir():
        raise ImageError(f"'{folder}' is a file, not a folder; load one image with "
                         f"dipkit.images.load")
    images, masks = _image_files(folder)
    if not images:
        raise ImageError(f"'{folder}' holds no images (looked for {', '.join(IMAGE_EXTENSIONS)} "
                         f"files); check the path")
    for stem in sorted(set(masks) - set(images)):
        warnings.warn(f"'{masks[stem]}' is a mask without an image {stem}.*; it is skipped",
                      stacklevel=2)
    out = []
    for stem in sorted(images):
        x = load(images[stem], mode=mode)
        m = None
        if stem in masks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = rgb_to_gray(load(masks[stem])) > 0
            if m.shape[-2:] != x.shape[-2:]:
                raise ShapeError(f"the mask '{masks[stem].name}' is {m.shape[-2]}x{m.shape[-1]} "
                                 f"but the image '{images[stem].name}' is {x.shape[-2]}x"
                                 f"{x.shape[-1]}; they must have the same size")
        out.append(NamedImage(stem, x, m))
    return out
