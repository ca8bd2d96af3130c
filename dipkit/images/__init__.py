"""Images as float32 tensors (N, C, H, W) in [0, 1]: loading, saving, gray conversion.

Everything in dipkit works on float32 tensors of shape (N, C, H, W) with values in [0, 1],
C = 1 (gray) or 3 (RGB). This package is the edge where files and NumPy arrays become such
tensors and back:

* :func:`load`, :func:`save`, :func:`image_info` read and write PNG, JPEG, TIFF and BMP files
  at 8 or 16 bits per channel (module :mod:`~dipkit.images.io`; Pillow, with pypng and tifffile
  for the 16-bit colour files that Pillow would reduce to 8 bits);
* :func:`to_tensor`, :func:`to_numpy` convert NumPy arrays (H, W) or (H, W, C), and
  :func:`rgb_to_gray` is the paper's gray conversion (module :mod:`~dipkit.images.convert`);
* :func:`pad_to_multiple`, :func:`crop_to_multiple` make the sides a multiple of ``2**depth``
  as the networks need, and return a :class:`Padding` that undoes it on the output (module
  :mod:`~dipkit.images.padding`);
* :func:`sample` gives the test images that scikit-image ships (no download; module
  :mod:`~dipkit.images.samples`);
* :func:`load_folder` reads a benchmark folder, pairing ``NAME_mask.png`` with ``NAME.png``
  (module :mod:`~dipkit.images.folders`).

Examples
--------
>>> from dipkit import images
>>> x = images.sample("astronaut", size=64)
>>> x.shape, x.dtype
(torch.Size([1, 3, 64, 64]), torch.float32)
>>> padded, padding = images.pad_to_multiple(x[..., :60, :50], 32)
>>> padded.shape[-2:], padding.undo(padded).shape[-2:]
(torch.Size([64, 64]), torch.Size([60, 50]))
"""

from .convert import GRAY_WEIGHTS, check_image, rgb_to_gray, to_numpy, to_tensor
from .folders import NamedImage, load_folder
from .io import IMAGE_EXTENSIONS, ImageInfo, image_info, load, save
from .padding import Padding, crop_to_multiple, pad_to_multiple
from .samples import SAMPLES, sample

__all__ = [
    "GRAY_WEIGHTS", "rgb_to_gray", "load", "save", "image_info", "ImageInfo", "to_tensor",
    "to_numpy", "pad_to_multiple", "crop_to_multiple", "Padding", "sample", "SAMPLES",
    "load_folder", "NamedImage", "IMAGE_EXTENSIONS",
]
