"""Reading and writing image files: PNG, JPEG, TIFF and BMP at 8 or 16 bits per channel.

:func:`load` turns a file into a float32 tensor (1, C, H, W) in [0, 1], :func:`save` writes one
back, :func:`image_info` reads size, channels and bit depth from the header. Pillow decodes and
encodes most files; the 16-bit colour files that Pillow would reduce to 8 bits are handled by
pypng (PNG: RGB, gray + alpha, RGBA, interlaced or not) and tifffile (TIFF).
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Union

import numpy as np
import torch

from ..errors import DipkitError, ImageError, ShapeError
from .convert import _check_mode, _convert_mode, _single_image

__all__ = ["load", "save", "image_info", "ImageInfo", "IMAGE_EXTENSIONS"]

PathLike = Union[str, os.PathLike]

#: File extensions that :func:`load_folder` treats as images (and :func:`save` can write).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Samples per pixel of the 16-bit PNG colour types that Pillow reduces to 8 bits (read by pypng):
# 2 = RGB, 4 = gray + alpha, 6 = RGBA.
_PNG16_SAMPLES = {2: 3, 4: 2, 6: 4}
# ImageInfo.mode of the 16-bit files that dipkit reads without Pillow, by samples per pixel.
_DEEP_MODES = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}

_PIL_GRAY = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
_PIL_COLOUR = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# Pillow modes converted before decoding (P is converted to RGB or RGBA, by its transparency).
_PIL_CONVERT = {"La": "LA", "PA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB",
                "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}


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
        or 'RGB;16', 'RGBA;16', 'LA;16' for 16-bit colour PNG/TIFF files that dipkit reads with
        pypng or tifffile because Pillow would reduce them to 8 bits.
    has_alpha : bool
        Whether the file has transparency (dropped by :func:`load`, with a warning).
    """

    width: int
    height: int
    channels: int
    bit_depth: int
    mode: str
    has_alpha: bool


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 16-bit colour files that Pillow would reduce to 8 bits: PNG with pypng, TIFF with tifffile
# ---------------------------------------------------------------------------------------------

def _pypng():
    """The ``png`` module of pypng, or a DipkitError that says how to install it."""
    try:
        import png
    except ImportError:
        raise DipkitError("16-bit colour PNG files need the pypng package: "
                          "pip install 'pypng>=0.20220715'") from None
    return png


def _png_header(head: bytes):
    """(width, height, bit_depth, colour_type, interlace) of a PNG, or None if not a PNG."""
    if not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 29:
        return None
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return w, h, depth, ctype, interlace


def _corrupt_png(p: Path, why) -> ImageError:
    return ImageError(f"'{p}' is a truncated or corrupt PNG file ({why}); export it again")


def _read_png16(p: Path) -> np.ndarray:
    """Decode a 16-bit PNG with pypng to uint16 (H, W, samples), keeping all 16 bits.

    Pillow decodes 16-bit RGB, gray + alpha and RGBA PNGs to 8 bits per channel. pypng reads
    every colour type, interlaced or not; its errors (``png.FormatError``, ``png.ChunkError``,
    a broken zlib stream) and missing rows become an :class:`ImageError` naming the file.
    """
    png = _pypng()
    try:
        width, height, rows, info = png.Reader(bytes=p.read_bytes()).read()
        rows = [np.frombuffer(row, dtype=np.uint16) for row in rows]   # native-endian array('H')
    except (png.Error, EOFError, zlib.error) as e:
        raise _corrupt_png(p, e) from None
    if len(rows) < height:
        raise _corrupt_png(p, f"image data holds {len(rows)} of the {height} rows that the "
                              f"header says")
    return np.stack(rows[:height]).reshape(height, width, info["planes"])


def _write_png16(array: np.ndarray, p: Path) -> None:
    """Write uint16 (H, W, C) as a 16-bit PNG with pypng: C = 3 (RGB) is what Pillow cannot
    write; C = 1, 2, 4 (gray, gray + alpha, RGBA) are accepted too.

    The file is encoded in memory first, so a failure leaves no partial file behind.
    """
    png = _pypng()
    h, w, ch = array.shape
    writer = png.Writer(w, h, greyscale=ch <= 2, alpha=ch in (2, 4), bitdepth=16, compression=6)
    buffer = io.BytesIO()
    try:
        writer.write(buffer, array.reshape(h, w * ch).tolist())
    except png.Error as e:
        raise ImageError(f"cannot encode '{p}' as a 16-bit PNG ({e})") from None
    p.write_bytes(buffer.getvalue())


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


class _DeepFile(NamedTuple):
    """A 16-bit file read without Pillow: its size, samples per pixel and its decoder."""

    width: int
    height: int
    samples: int
    read: Callable[[], np.ndarray]     # () -> uint16 (H, W) or (H, W, samples)


def _deep_file(p: Path) -> Optional[_DeepFile]:
    """The 16-bit colour PNG or 16-bit TIFF that ``p`` is (read with pypng or tifffile, as
    Pillow would lose bits), or None for the files that Pillow reads."""
    head = _head(p)
    png = _png_header(head)
    if png is not None and png[2] == 16 and png[3] in _PNG16_SAMPLES:
        return _DeepFile(png[0], png[1], _PNG16_SAMPLES[png[3]], lambda: _read_png16(p))
    if head.startswith(_TIFF_SIGNATURES):
        meta = _tiff_page(p)
        if _tiff_direct(meta):
            return _DeepFile(meta["width"], meta["height"], meta["samples"],
                             lambda: _read_tiff16(p, meta))
    return None


# ---------------------------------------------------------------------------------------------
# Everything else: Pillow
# ---------------------------------------------------------------------------------------------

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


def _check_pil_mode(im, p: Path) -> None:
    if im.mode not in _PIL_GRAY + _PIL_COLOUR:
        raise ImageError(f"'{p}' has the pixel mode {im.mode!r}, which dipkit does not support; "
                         f"convert it to 8- or 16-bit gray or RGB")


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


def _pil_reduces_16_bits(im) -> bool:
    """Whether Pillow decodes this file, 16 bits per channel in colour, at 8 bits."""
    if im.mode not in ("RGB", "RGBA", "LA"):
        return False
    try:
        return any("16" in str(t.args[0] if isinstance(t.args, tuple) else t.args)
                   for t in im.tile)
    except Exception:  # noqa: BLE001 - tile layout is Pillow-internal; only used for a warning
        return False


def _pil_pixels(im, p: Path) -> np.ndarray:
    """Decode an open Pillow image to (H, W) or (H, W, C): EXIF orientation applied, palettes
    and other modes converted to gray (+ alpha) or RGB(A)."""
    from PIL import ImageOps
    mode = im.mode
    try:
        im.load()
        im = ImageOps.exif_transpose(im) or im
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in _PIL_CONVERT:
            im = im.convert(_PIL_CONVERT[mode])
        return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"cannot decode '{p}' ({e}): the file is truncated or corrupt; "
                         f"export it again") from None


def _pil_scale(a: np.ndarray, mode: str, p: Path):
    """(array, scale to divide by for [0, 1]) of Pillow's pixels; 32-bit pixels are checked."""
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


def _pil_array(p: Path):
    """Decode with Pillow: (array (H, W) or (H, W, C), scale to divide by)."""
    with _open_pil(p) as im:
        _check_pil_mode(im, p)
        mode, reduced = im.mode, _pil_reduces_16_bits(im)
        a = _pil_pixels(im, p)
    if reduced:
        warnings.warn(f"'{p}' has 16 bits per channel but could only be read at 8 bits; save it "
                      f"as an uncompressed 16-bit TIFF or a 16-bit PNG to keep the precision",
                      stacklevel=4)
    return _pil_scale(a, mode, p)


# ---------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------

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
    deep = _deep_file(p)
    if deep is not None:
        s = deep.samples
        return ImageInfo(deep.width, deep.height, 1 if s <= 2 else 3, 16, _DEEP_MODES[s],
                         s in (2, 4))
    with _open_pil(p) as im:
        _check_pil_mode(im, p)
        w, h, alpha = _pil_size_mode(im)
        deep_mode = im.mode.startswith("I") or im.mode == "F"
        return ImageInfo(w, h, 1 if im.mode in _PIL_GRAY else 3, 16 if deep_mode else 8, im.mode,
                         alpha)


def _decode(p: Path):
    """(array (H, W) or (H, W, C) of a dtype, scale) of any supported file."""
    deep = _deep_file(p)
    if deep is not None:
        return deep.read(), 65535.0
    return _pil_array(p)


def load(path: PathLike, mode: Optional[str] = None) -> torch.Tensor:
    """Load an image file as a float32 tensor (1, C, H, W) in [0, 1].

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG, TIFF or BMP file (anything Pillow reads), 8 or 16 bits per channel.
    mode : {None, 'gray', 'rgb'}
        None keeps the file's channels (gray → C = 1, colour → C = 3); 'gray' converts colour
        with the paper's weights (:func:`~dipkit.images.rgb_to_gray`); 'rgb' repeats a gray
        channel 3 times.

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
    colour PNG and TIFF files, which Pillow reduces to 8 bits, are decoded with pypng (PNG,
    interlaced or not) or tifffile (TIFF), so no precision is lost.

    Examples
    --------
    >>> x = load("photo.png", mode="gray")    # doctest: +SKIP
    >>> x.shape                               # doctest: +SKIP
    torch.Size([1, 1, 512, 512])
    """
    _check_mode(mode)
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
# Writing files
# ---------------------------------------------------------------------------------------------

def _save_format(p: Path, bit_depth, quality) -> str:
    """Check the arguments of :func:`save`; returns Pillow's format name for ``p``."""
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
    return fmt


def _quantise(x: torch.Tensor, bit_depth: int, p: Path) -> np.ndarray:
    """(C, H, W) float or bool tensor → uint8/uint16 (H, W) or (H, W, C) array,
    ``round(clip(x, 0, 1) · (2**bit_depth − 1))``."""
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
    return np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)


def _write(a: np.ndarray, p: Path, fmt: str, quality: int) -> None:
    """Write a uint8/uint16 (H, W) or (H, W, C) array: 16-bit TIFF with tifffile, 16-bit colour
    PNG with pypng, everything else with Pillow."""
    try:
        if a.dtype == np.uint16 and fmt == "TIFF":
            import tifffile
            tifffile.imwrite(p, a, photometric="minisblack" if a.ndim == 2 else "rgb")
        elif a.dtype == np.uint16 and a.ndim == 3:
            _write_png16(a, p)
        else:
            from PIL import Image
            kwargs = {"quality": int(quality)} if fmt == "JPEG" else {}
            Image.fromarray(a).save(p, format=fmt, **kwargs)
    except OSError as e:
        raise ImageError(f"cannot write '{p}': {e}") from None


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
    with :func:`load` are saved back bit for bit. 16-bit RGB PNGs are written with pypng.

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
    fmt = _save_format(p, bit_depth, quality)
    _write(_quantise(x, bit_depth, p), p, fmt, quality)
