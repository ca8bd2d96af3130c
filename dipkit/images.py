"""Images as float32 tensors (N, C, H, W) in [0, 1]: loading, saving, gray conversion.

Everything in dipkit works on float32 tensors of shape (N, C, H, W) with values in [0, 1],
C = 1 (gray) or 3 (RGB). This module is the edge where files and NumPy arrays become such
tensors and back:

* :func:`load`, :func:`save`, :func:`image_info` read and write PNG, JPEG, TIFF and BMP files
  at 8 or 16 bits per channel;
* :func:`to_tensor`, :func:`to_numpy` convert NumPy arrays (H, W) or (H, W, C);
* :func:`pad_to_multiple`, :func:`crop_to_multiple` make the sides a multiple of ``2**depth``
  as the networks need, and return a :class:`Padding` that undoes it on the output;
* :func:`sample` gives the test images that scikit-image ships (no download);
* :func:`load_folder` reads a benchmark folder, pairing ``NAME_mask.png`` with ``NAME.png``;
* :func:`rgb_to_gray` is the paper's gray conversion.

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

from __future__ import annotations

import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .errors import DipkitError, ImageError, ShapeError

__all__ = [
    "GRAY_WEIGHTS", "rgb_to_gray", "load", "save", "image_info", "ImageInfo", "to_tensor",
    "to_numpy", "pad_to_multiple", "crop_to_multiple", "Padding", "sample", "SAMPLES",
    "load_folder", "NamedImage", "IMAGE_EXTENSIONS",
]

PathLike = Union[str, os.PathLike]

#: The luma weights of the paper's code (ITU-R BT.601, as in MATLAB's ``rgb2gray``).
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)

#: File extensions that :func:`load_folder` treats as images (and :func:`save` can write).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Names accepted by :func:`sample`: images that scikit-image ships with its wheel (no download).
SAMPLES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "immunohistochemistry")

_MODES = (None, "gray", "rgb")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


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


def _convert_mode(x: torch.Tensor, mode: Optional[str]) -> torch.Tensor:
    """Convert (N, C, H, W) images to the requested colour mode (None keeps them)."""
    if mode not in _MODES:
        raise DipkitError(f"mode must be 'gray', 'rgb' or None (keep the file's channels), "
                          f"got {mode!r}")
    if mode == "gray":
        return rgb_to_gray(x)
    if mode == "rgb" and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    return x


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageInfo:
    """What an image file holds, read from its header (see :func:`image_info`).

    Attributes
    ----------
    width, height : int
        Size in pixels, after the EXIF orientation is applied (as :func:`load` returns it).
    channels : int
        Colour channels that :func:`load` returns with ``mode=None``: 1 (gray) or 3 (RGB). An
        alpha channel is not counted (see ``has_alpha``).
    bit_depth : int
        8 or 16 bits per channel: what :func:`save` should write to keep the file's precision.
        Files with fewer bits (1-bit masks, palettes) report 8; 32-bit integer or float files 16.
    mode : str
        The file's pixel layout: Pillow's mode name ('L', 'RGB', 'RGBA', 'P', '1', 'I;16', ...),
        or 'RGB;16', 'RGBA;16', 'LA;16' for 16-bit colour PNG/TIFF files that dipkit reads
        itself because Pillow would reduce them to 8 bits.
    has_alpha : bool
        Whether the file has transparency (dropped by :func:`load`, with a warning).
    """

    width: int
    height: int
    channels: int
    bit_depth: int
    mode: str
    has_alpha: bool


def _as_path(path, what: str = "path") -> Path:
    if isinstance(path, Path):
        return path
    if isinstance(path, (str, os.PathLike)):
        return Path(path)
    raise ImageError(f"{what} must be a str or pathlib.Path, got {type(path).__name__}")


def _check_file(path) -> Path:
    p = _as_path(path)
    if not p.exists():
        raise ImageError(f"no such file: '{p}'; check the path (relative paths start at "
                         f"{Path.cwd()})")
    if p.is_dir():
        raise ImageError(f"'{p}' is a directory, not an image file; pass a file, or use "
                         f"dipkit.images.load_folder to read all the images of a folder")
    try:
        size = p.stat().st_size
    except OSError as e:
        raise ImageError(f"cannot read '{p}': {e}") from None
    if size == 0:
        raise ImageError(f"'{p}' is empty (0 bytes), so it holds no image; it was probably not "
                         f"written completely: export or download it again")
    return p


def _head(p: Path, n: int = 64) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise ImageError(f"cannot read '{p}': {e}; check the file's permissions") from None


def _png_header(head: bytes):
    """(width, height, bit_depth, colour_type, interlace) of a PNG, or None if not a PNG."""
    if not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 29:
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return w, h, depth, ctype, interlace


# PNG colour types of 16-bit files that Pillow reduces to 8 bits, decoded here instead.
_PNG16_COLOUR = {2: ("RGB;16", 3), 4: ("LA;16", 2), 6: ("RGBA;16", 4)}


def _read_png16(p: Path) -> np.ndarray:
    """Decode a non-interlaced 16-bit colour PNG to uint16 (H, W, channels).

    Pillow decodes such files to 8 bits per channel; this decoder keeps all 16. The PNG row
    filters are undone along anti-diagonals (each pixel depends on its left, upper and upper-left
    neighbours only), so the Python loop runs H + W times, vectorised over each diagonal.
    """
    data = p.read_bytes()
    pos, idat, header = 8, [], None
    try:
        while pos < len(data):
            length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + length]
            if len(body) != length:
                raise ValueError("chunk runs past the end of the file")
            if ctype == b"IHDR":
                header = struct.unpack(">IIBBBBB", body[:13])
            elif ctype == b"IDAT":
                idat.append(body)
            elif ctype == b"IEND":
                break
            pos += 12 + length
        if header is None or not idat:
            raise ValueError("no IHDR or IDAT chunk")
        w, h, depth, colour, _, _, _ = header
        channels = _PNG16_COLOUR[colour][1]
        bpp = 2 * channels
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
        if raw.size < h * (1 + w * bpp):
            raise ValueError("image data is shorter than the header says")
    except (ValueError, KeyError, struct.error, zlib.error) as e:
        raise ImageError(f"'{p}' is a truncated or corrupt PNG file ({e}); export it again") from None
    rows = raw[:h * (1 + w * bpp)].reshape(h, 1 + w * bpp)
    filters = rows[:, 0].astype(np.int32)
    if filters.max(initial=0) > 4:
        raise ImageError(f"'{p}' is a corrupt PNG file (unknown row filter "
                         f"{int(filters.max())}); export it again")
    res = rows[:, 1:].reshape(h, w, bpp).astype(np.int32)
    out = np.zeros((h + 1, w + 1, bpp), dtype=np.int32)   # a zero row above and column left
    for k in range(h + w - 1):
        r = np.arange(max(0, k - w + 1), min(h - 1, k) + 1)
        x = k - r
        a, b, c = out[r + 1, x], out[r, x + 1], out[r, x]
        f = filters[r][:, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.choose(f, [np.zeros_like(a), a, b, (a + b) >> 1, paeth])
        out[r + 1, x + 1] = (res[r, x] + pred) & 255
    pix = out[1:, 1:].reshape(h, w, channels, 2)
    return (pix[..., 0] * 256 + pix[..., 1]).astype(np.uint16)


def _png_filtered_rows(data: np.ndarray, bpp: int) -> bytes:
    """Filter (H, W*bpp) uint8 rows for PNG, choosing per row the filter with the smallest sum of
    absolute residuals (the libpng heuristic); returns the bytes to compress."""
    x = data.astype(np.int32)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, bpp:] = x[:-1, :-bpp]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    cand = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]) & 255   # (5, H, n)
    cost = np.minimum(cand, 256 - cand).sum(axis=2)                           # (5, H)
    best = cost.argmin(axis=0)
    chosen = cand[best, np.arange(x.shape[0])].astype(np.uint8)
    return np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1).tobytes()


def _write_png16(array: np.ndarray, p: Path) -> None:
    """Write uint16 (H, W, C) as a 16-bit PNG: C = 3 (RGB) is what Pillow cannot write; C = 1, 2,
    4 (gray, gray + alpha, RGBA) are accepted too."""
    h, w, ch = array.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    data = np.ascontiguousarray(array.astype(">u2")).view(np.uint8).reshape(h, w * ch * 2)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    idat = zlib.compress(_png_filtered_rows(data, ch * 2), 6)
    p.write_bytes(_PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _tiff_page(p: Path):
    """tifffile's first page of a TIFF, or None when tifffile cannot parse it."""
    try:
        import tifffile
        with tifffile.TiffFile(p) as tif:
            page = tif.pages[0]
            return dict(bits=int(page.bitspersample), photometric=int(page.photometric),
                        samples=int(page.samplesperpixel), dtype=np.dtype(page.dtype),
                        shape=tuple(page.shape), axes=page.axes, width=int(page.imagewidth),
                        height=int(page.imagelength))
    except Exception:  # noqa: BLE001 - any failure means: let Pillow try
        return None


def _tiff_direct(meta) -> bool:
    """Whether a TIFF is read with tifffile: 16-bit gray or RGB, which Pillow may reduce to 8 bits."""
    return (meta is not None and meta["bits"] == 16 and meta["dtype"] == np.uint16
            and meta["photometric"] in (0, 1, 2) and meta["samples"] in (1, 2, 3, 4))


def _read_tiff16(p: Path, meta) -> np.ndarray:
    import tifffile
    try:
        a = tifffile.imread(p, key=0)
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"cannot decode the TIFF file '{p}' ({e}); save it uncompressed or as "
                         f"16-bit PNG") from None
    axes = meta["axes"]
    if a.ndim == 3 and axes.startswith("S"):       # planar configuration: (S, H, W)
        a = np.moveaxis(a, 0, -1)
    if meta["photometric"] == 0:                   # min-is-white
        a = 65535 - a
    return np.ascontiguousarray(a.astype(np.uint16))


def _pil_size_mode(im):
    """Size (w, h) after the EXIF orientation, and whether the file has alpha."""
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF: ignore it as Pillow does
        orientation = 1
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    alpha = im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
        im.mode == "P" and "transparency" in im.info)
    return w, h, alpha


_PIL_GRAY = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_PIL_COLOUR = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def _open_pil(p: Path):
    from PIL import Image, UnidentifiedImageError
    try:
        return Image.open(p)
    except UnidentifiedImageError:
        raise ImageError(f"'{p}' is not an image that Pillow can read (it may be a text file or "
                         f"another format under an image name); use a PNG, JPEG, TIFF or BMP "
                         f"file") from None
    except OSError as e:
        raise ImageError(f"cannot open '{p}' as an image: {e}") from None


def image_info(path: PathLike) -> ImageInfo:
    """Read the size, channels and bit depth of an image file without decoding its pixels.

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG, TIFF or BMP file (anything Pillow opens).

    Returns
    -------
    ImageInfo
        ``width``, ``height``, ``channels`` (1 or 3, alpha not counted), ``bit_depth`` (8 or 16),
        ``mode``, ``has_alpha``. Use ``bit_depth`` to save a result at the input's precision.

    Raises
    ------
    ImageError
        Missing, empty or unreadable file, or a pixel mode dipkit does not support.

    Examples
    --------
    >>> info = image_info("photo.png")                      # doctest: +SKIP
    >>> save(result, "restored.png", bit_depth=info.bit_depth)  # doctest: +SKIP
    """
    p = _check_file(path)
    head = _head(p)
    png = _png_header(head)
    if png is not None and png[2] == 16 and png[3] in _PNG16_COLOUR:
        mode, ch = _PNG16_COLOUR[png[3]]
        return ImageInfo(png[0], png[1], 1 if ch <= 2 else 3, 16, mode, ch in (2, 4))
    if head.startswith(_TIFF_SIGNATURES):
        meta = _tiff_page(p)
        if _tiff_direct(meta):
            s = meta["samples"]
            mode = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[s]
            return ImageInfo(meta["width"], meta["height"], 1 if s <= 2 else 3, 16, mode, s in (2, 4))
    with _open_pil(p) as im:
        if im.mode not in _PIL_GRAY + _PIL_COLOUR:
            raise ImageError(f"'{p}' has the pixel mode {im.mode!r}, which dipkit does not "
                             f"support; convert it to 8- or 16-bit gray or RGB")
        w, h, alpha = _pil_size_mode(im)
        deep = im.mode.startswith("I") or im.mode == "F"
        return ImageInfo(w, h, 1 if im.mode in _PIL_GRAY else 3, 16 if deep else 8, im.mode, alpha)


def _pil_array(p: Path):
    """Decode with Pillow: (array (H, W) or (H, W, C), scale to divide by)."""
    from PIL import ImageOps
    with _open_pil(p) as im:
        mode = im.mode
        if mode not in _PIL_GRAY + _PIL_COLOUR:
            raise ImageError(f"'{p}' has the pixel mode {mode!r}, which dipkit does not support; "
                             f"convert it to 8- or 16-bit gray or RGB")
        reduced = False
        try:
            for t in im.tile:
                raw = t.args[0] if isinstance(t.args, tuple) else t.args
                reduced |= "16" in str(raw) and mode in ("RGB", "RGBA", "LA")
        except Exception:  # noqa: BLE001 - tile layout is Pillow-internal; only used for a warning
            pass
        try:
            im.load()
            im = ImageOps.exif_transpose(im) or im
            if mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("La",):
                im = im.convert("LA")
            elif mode in ("PA", "RGBa"):
                im = im.convert("RGBA")
            elif mode in ("RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            a = np.asarray(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise ImageError(f"cannot decode '{p}' ({e}): the file is truncated or corrupt; "
                             f"export it again") from None
    if reduced:
        warnings.warn(f"'{p}' has 16 bits per channel but could only be read at 8 bits; save it "
                      f"as an uncompressed 16-bit TIFF or a non-interlaced 16-bit PNG to keep "
                      f"the precision", stacklevel=4)
    if a.dtype == np.bool_:
        return a, 1.0
    if a.dtype == np.uint8:
        return a, 255.0
    if mode == "F":
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError(f"'{p}' holds 32-bit float pixels outside [0, 1] (range "
                             f"[{np.nanmin(a):.4g}, {np.nanmax(a):.4g}]); scale it to [0, 1] "
                             f"or convert it to 16-bit")
        return a, 1.0
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() > 65535:
        raise ImageError(f"'{p}' holds 32-bit integer pixels outside 0..65535 (range "
                         f"[{a.min()}, {a.max()}]); convert it to 8- or 16-bit")
    return a.astype(np.uint16), 65535.0


def _decode(p: Path):
    """(array (H, W) or (H, W, C) of a dtype, scale) of any supported file."""
    head = _head(p)
    png = _png_header(head)
    if png is not None and png[2] == 16 and png[3] in _PNG16_COLOUR:
        if png[4] == 0:
            return _read_png16(p), 65535.0
        # interlaced: Pillow reads it at 8 bits and _pil_array warns
    if head.startswith(_TIFF_SIGNATURES):
        meta = _tiff_page(p)
        if _tiff_direct(meta):
            return _read_tiff16(p, meta), 65535.0
    return _pil_array(p)


def load(path: PathLike, mode: Optional[str] = None) -> torch.Tensor:
    """Load an image file as a float32 tensor (1, C, H, W) in [0, 1].

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG, TIFF or BMP file (anything Pillow reads), 8 or 16 bits per channel.
    mode : {None, 'gray', 'rgb'}
        None keeps the file's channels (gray → C = 1, colour → C = 3); 'gray' converts colour
        with the paper's weights (:func:`rgb_to_gray`); 'rgb' repeats a gray channel 3 times.

    Returns
    -------
    Tensor, shape (1, C, H, W), float32, values in [0, 1]
        8-bit values are divided by 255, 16-bit values by 65535, 1-bit values map to {0, 1}.

    Raises
    ------
    ImageError
        The file is missing, a directory, empty, not an image, corrupt, or in an unsupported
        pixel mode; the message names the file.

    Warns
    -----
    UserWarning
        When an alpha channel was dropped (transparent pixels keep their colour values).

    Notes
    -----
    Palette images become RGB. The EXIF orientation (photos from phones) is applied. 16-bit
    colour PNG and TIFF files, which Pillow reduces to 8 bits, are decoded by dipkit itself
    (PNG) or with tifffile (TIFF), so no precision is lost.

    Examples
    --------
    >>> x = load("photo.png", mode="gray")    # doctest: +SKIP
    >>> x.shape                               # doctest: +SKIP
    torch.Size([1, 1, 512, 512])
    """
    if mode not in _MODES:
        raise DipkitError(f"mode must be 'gray', 'rgb' or None (keep the file's channels), "
                          f"got {mode!r}")
    p = _check_file(path)
    a, scale = _decode(p)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] in (2, 4):
        warnings.warn(f"'{p}': the alpha channel was dropped (dipkit images have no "
                      f"transparency); composite the image onto a background first if the "
                      f"transparent pixels matter", stacklevel=2)
        a = a[:, :, :-1]
    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.float32) / np.float32(scale))
    return _convert_mode(x[None].clamp_(0, 1), mode)


# ---------------------------------------------------------------------------------------------
# Writing files, NumPy conversion
# ---------------------------------------------------------------------------------------------

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}


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


def save(image: torch.Tensor, path: PathLike, bit_depth: int = 8, *, quality: int = 95) -> None:
    """Write one image to a PNG, JPEG, TIFF or BMP file (format from the extension).

    Parameters
    ----------
    image : Tensor, shape (1, C, H, W) or (C, H, W)
        C = 1 (gray) or 3 (RGB), values in [0, 1]; values outside are clipped, NaN is an error.
        Any device; bool tensors (masks) are written as 0 and the maximum value.
    path : str or Path
        Ends in .png, .jpg, .jpeg, .tif, .tiff or .bmp. The folder must exist (none is created).
    bit_depth : {8, 16}
        Bits per channel. 16 is available for PNG and TIFF (keep it with
        ``image_info(input).bit_depth``).
    quality : int
        JPEG quality 1..100 (default 95; Pillow's own default is 75). Ignored for other formats.

    Raises
    ------
    ShapeError
        Not one image of 1 or 3 channels, e.g. a batch of several images.
    ImageError
        NaN values, unknown extension, 16 bits for JPEG/BMP, missing folder, or a write error.

    Notes
    -----
    Values are rounded: ``round(clip(x, 0, 1) · (2**bit_depth − 1))``, so 8-bit images loaded
    with :func:`load` are saved back bit for bit.

    Examples
    --------
    >>> save(sample("camera", size=64), "camera.png")                 # doctest: +SKIP
    >>> save(x, "result.tif", bit_depth=16)                           # doctest: +SKIP
    """
    x = _single_image(image)
    p = _as_path(path)
    if x.shape[0] not in (1, 3):
        raise ShapeError(f"can save 1 (gray) or 3 (RGB) channels, got {x.shape[0]} (shape "
                         f"{tuple(image.shape)}); drop an alpha channel with image[:, :3]")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ShapeError(f"cannot save an empty image of shape {tuple(image.shape)}")
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise ImageError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    fmt = _SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the format of '{p}' from its extension {p.suffix!r}; use "
                         f"one of {', '.join(sorted(_SAVE_FORMATS))}")
    if bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        raise ImageError(f"{fmt} files have 8 bits per channel; save 16-bit images as .png or "
                         f".tif, or pass bit_depth=8")
    if fmt == "JPEG" and (not isinstance(quality, (int, np.integer)) or isinstance(quality, bool)
                          or not 1 <= quality <= 100):
        raise ImageError(f"JPEG quality must be an integer in 1..100, got {quality!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ImageError(f"cannot save '{p}': the folder '{parent}' does not exist; create it "
                         f"first, e.g. Path('{parent}').mkdir(parents=True)")
    if p.is_dir():
        raise ImageError(f"cannot save to '{p}': it is a directory; give a file name")
    if x.dtype == torch.bool:
        x = x.float()
    elif not x.is_floating_point():
        raise ImageError(f"image must be a float tensor in [0, 1], got dtype {x.dtype}; divide "
                         f"8-bit values by 255 (dipkit.images.to_tensor does it)")
    x = x.float()
    if torch.isnan(x).any():
        raise ImageError(f"cannot save '{p}': the image contains {int(torch.isnan(x).sum())} NaN "
                         f"values; check the computation that produced it (a diverged fit?)")
    top = 65535 if bit_depth == 16 else 255
    a = np.rint(x.clamp(0, 1).numpy().astype(np.float64) * top).astype(
        np.uint16 if bit_depth == 16 else np.uint8).transpose(1, 2, 0)
    a = np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)
    try:
        if bit_depth == 16 and fmt == "TIFF":
            import tifffile
            tifffile.imwrite(p, a, photometric="minisblack" if a.ndim == 2 else "rgb")
        elif bit_depth == 16 and a.ndim == 3:
            _write_png16(a, p)
        else:
            from PIL import Image
            kwargs = {"quality": int(quality)} if fmt == "JPEG" else {}
            Image.fromarray(a).save(p, format=fmt, **kwargs)
    except OSError as e:
        raise ImageError(f"cannot write '{p}': {e}") from None


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
    if a.dtype == np.bool_:
        x = a.astype(np.float32)
    elif a.dtype == np.uint8:
        x = a.astype(np.float32) / np.float32(255)
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / np.float32(65535)
    elif np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise ImageError("the array contains NaN or infinite values; fix them before "
                             "converting")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ImageError(f"float images must be in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                             f"scale them first (e.g. divide 0..255 values by 255, or pass the "
                             f"uint8 array itself)")
    elif np.issubdtype(a.dtype, np.integer):
        raise ImageError(f"integer images must be uint8 or uint16, got {a.dtype}; convert with "
                         f"array.astype(np.uint8) if the values are 0..255 (np.uint16 if "
                         f"0..65535)")
    else:
        raise ImageError(f"cannot convert an array of dtype {a.dtype} to an image; use uint8, "
                         f"uint16, bool or float in [0, 1]")
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


# ---------------------------------------------------------------------------------------------
# Padding and cropping to a multiple
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Sample images and benchmark folders
# ---------------------------------------------------------------------------------------------

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
    if mode not in _MODES:
        raise DipkitError(f"mode must be 'gray', 'rgb' or None, got {mode!r}")
    a = _sample_array(name, None if size is None else _size_pair(size))
    return _convert_mode(to_tensor(a), mode)


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


def load_folder(path: PathLike, mode: Optional[str] = None) -> list:
    """Load every image of a folder, pairing ``NAME_mask.png`` files with ``NAME.png``.

    Parameters
    ----------
    path : str or Path
        A folder of PNG/JPEG/TIFF/BMP files (other files and sub-folders are ignored), e.g.
        ``../shared/data/bernoulli11``.
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
    >>> items = load_folder("../shared/data/bernoulli11")   # doctest: +SKIP
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
