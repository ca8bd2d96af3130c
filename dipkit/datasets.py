"""The paper's benchmark sets by name: ``set9``, ``classic5`` and ``bernoulli11``.

The images are the ones the public code release of the paper (Shi et al., IJCV 2022;
github.com/shizenglin/Measure-and-Control-Spectral-Bias, commit :data:`COMMIT`) distributes.
:func:`path` fetches them on first use with pooch, checks each file's SHA-256 against
:data:`REGISTRY`, converts them and keeps the result in the user's cache folder
(:func:`cache_dir`), laid out as :func:`dipkit.images.load_folder` reads it:

* ``set9``: 9 RGB PNGs (denoising); byte-identical copies of the upstream files.
* ``classic5``: 5 gray 512x512 PNGs (JPEG deblocking); the upstream 8-bit gray BMPs with the
  same pixels, written as PNG (:func:`gray_png`).
* ``bernoulli11``: 11 gray PNGs (inpainting), re-encoded with the same pixels, each with
  ``NAME_mask.png`` beside it (white = known pixel), regenerated from the paper's seed recipe
  (:func:`paper_mask`) instead of read from the upstream HDF5 files.

They are third-party images without a stated licence: they are fetched by the user, never
shipped with dipkit. With the environment variable ``DIPKIT_DATA`` set, :func:`path` reads a
local copy ``$DIPKIT_DATA/<name>/`` instead and never touches the network.

Examples
--------
>>> from dipkit import datasets
>>> items = datasets.load("bernoulli11")                  # doctest: +SKIP
>>> items[0].name, items[0].image.shape, items[0].mask.shape  # doctest: +SKIP
('Cameraman256', torch.Size([1, 1, 256, 256]), torch.Size([1, 1, 256, 256]))
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Optional, Union

import numpy as np
import pooch
from PIL import Image

from .errors import DipkitError
from .images import load_folder

__all__ = ["SETS", "COMMIT", "BASE_URL", "FILES", "REGISTRY", "ENV", "path", "load", "resolve", "cache_dir",
           "gray_png", "paper_mask"]

#: The names of the benchmark sets.
SETS = ("set9", "classic5", "bernoulli11")

#: The commit of the paper's code release that the images are fetched from.
COMMIT = "ed2d37185dc94a7cd78656d19fed28b29ba0b1b8"

#: The raw-file URL of that commit; a file's URL is ``BASE_URL + <upstream path>``.
BASE_URL = f"https://raw.githubusercontent.com/shizenglin/Measure-and-Control-Spectral-Bias/{COMMIT}/"

#: The environment variable naming a local copy: a folder holding ``set9/``, ``classic5/``, ...
ENV = "DIPKIT_DATA"

_DENOISING = "dataset/denoising/"
_CLASSIC5 = "dataset/deblocking/classic5/"
_BERNOULLI = "dataset/inpainting/Dataset_Bernoulli/img/"

#: {set name: {upstream path: SHA-256}} of the files fetched (the masks' .h5 files are not:
#: :func:`paper_mask` regenerates them).
FILES = {
    "set9": {
        _DENOISING + "image_Baboon512rgb.png": "3714ba077446c372241027cc672f4c32749f95089ffbc0188398e39246e1a440",
        _DENOISING + "image_F16_512rgb.png": "406a056d01b374aa7bf92f5e3de02e9740aabb91c7399b5bf5dbcd5696875659",
        _DENOISING + "image_House256rgb.png": "292578e2309791b54652350ca79a06b2c6fa2290121389719b3af69b041dc150",
        _DENOISING + "image_Lena512rgb.png": "ab0642b305fe54290a0db041b2c007e78bb94584e367520b98eec0799f45c975",
        _DENOISING + "image_Peppers512rgb.png": "d7b926dff30cdbe2760f0f72d0850aac7d9b4bf2ad83a77370cef1e1ded52f9f",
        _DENOISING + "kodim01.png": "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd",
        _DENOISING + "kodim02.png": "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd",
        _DENOISING + "kodim03.png": "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db",
        _DENOISING + "kodim12.png": "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980",
    },
    "classic5": {
        _CLASSIC5 + "baboon.bmp": "3a425029590fcb175ca9300107826da5175f884452514cc31a8d023bb029e828",
        _CLASSIC5 + "barbara.bmp": "409a4b07775ab1b34e88545e3b0b9b5af492062cff27ffa4cffffda8ffe64633",
        _CLASSIC5 + "boats.bmp": "4d600302c6a7b30a63b0b585da59698f05dcc2b6e0dc41ae0cfcc9b5d4cb3f67",
        _CLASSIC5 + "lena.bmp": "ae9a378c2640beceb372cbd3593e12b8c58bd0ec366fbd392dd4334660bc0bec",
        _CLASSIC5 + "peppers.bmp": "cee2991e92c19e4dc53c1ff2a8f163fe08a335435a12fd41cf4ba452512ae1b5",
    },
    "bernoulli11": {
        _BERNOULLI + "Cameraman256.png": "0da05a64c5090d4f49a021e884451788a5ae0b7ecf3b565be8afd5bf1cc1c2e2",
        _BERNOULLI + "Lena512.png": "614176830c78cf7ef2c6119f9750877abe96736358492d6d299e2589feac2524",
        _BERNOULLI + "barbara.png": "764b8a2748cc7ad381cccc047c5e512cb528c197ba86adb83aa339e8932e66c0",
        _BERNOULLI + "boat.png": "18bea4de1634456f5791d16301863fc974401d144cd6afb86f09a6be4620fe54",
        _BERNOULLI + "couple.png": "f6acd12953db8c1f5a0dda53fef4233be37a61702cd22d5be742cf7c039021f2",
        _BERNOULLI + "fingerprint.png": "da7daa343256aa187cf36161e3113b382eb7bb37f3ba23d3dfc99e15697619ab",
        _BERNOULLI + "hill.png": "f181874584ca31e209ee4e78ed836f742bd6692fb268fa3de1b3c861ed56c3b3",
        _BERNOULLI + "house.png": "576b2b3b6ff4d7e6c8ddccb0df645774f9b986c81219c28e16ba1935990a0b29",
        _BERNOULLI + "man.png": "a8791afbd2af4f977f30c3a9a72a50204264440c27b1f4bb282a085eb680abe1",
        _BERNOULLI + "montage.png": "9315f18ec482a6678586f795be04beda3e3680e9facbcaadd6e547d83c65218e",
        _BERNOULLI + "peppers256.png": "92de94d7b8ef9e645546821150eff5c765d0d29666f9bc7d20b61063f35c3305",
    },
}

#: {upstream path: SHA-256} of every file fetched, all sets together (UPSTREAM.md of the data).
REGISTRY = {upstream: sha for files in FILES.values() for upstream, sha in files.items()}

#: What each set's folder holds, for the messages.
_CONTENTS = {
    "set9": "the paper's 9 RGB denoising PNGs: image_Baboon512rgb.png ... kodim12.png",
    "classic5": "the 5 gray 512x512 PNGs of Classic5: baboon.png, barbara.png, boats.png, lena.png, "
                "peppers.png",
    "bernoulli11": "the 11 gray inpainting PNGs, each with its NAME_mask.png (white = known pixel)",
}

PathLike = Union[str, os.PathLike]


def cache_dir() -> Path:
    """The folder where fetched files and converted sets are kept.

    Returns
    -------
    Path
        ``pooch.os_cache("dipkit")``: the user's cache folder, e.g. ``~/.cache/dipkit`` on Linux
        (``$XDG_CACHE_HOME/dipkit`` when that is set). The upstream files go to
        ``upstream/<upstream path>`` in it, the converted sets to ``<name>/``.
    """
    return Path(pooch.os_cache("dipkit"))


def _check_name(name: str) -> None:
    if name not in SETS:
        raise DipkitError(f"unknown benchmark set {name!r}; the sets are {', '.join(SETS)}")


def _outputs(name: str) -> list:
    """The file names of set ``name``'s folder, in :data:`FILES` order."""
    stems = [PurePosixPath(upstream).stem for upstream in FILES[name]]
    if name == "set9":
        return [PurePosixPath(upstream).name for upstream in FILES[name]]
    if name == "classic5":
        return [f"{stem}.png" for stem in stems]
    return [f for stem in stems for f in (f"{stem}.png", f"{stem}_mask.png")]


def _local_copy(name: str, root: str) -> Path:
    """``$DIPKIT_DATA/<name>``, which must be a folder."""
    folder = Path(root).expanduser() / name
    if not folder.is_dir():
        raise DipkitError(f"{ENV} is set to '{root}', but '{folder}' is not a folder; it should hold "
                          f"{name}/ with {_CONTENTS[name]} (a copy of the paper's benchmark images), "
                          f"or unset {ENV} to download them")
    return folder


def path(name: str) -> Path:
    """The folder of benchmark set ``name``, fetched and converted on first use.

    Parameters
    ----------
    name : {'set9', 'classic5', 'bernoulli11'}

    Returns
    -------
    Path
        ``$DIPKIT_DATA/<name>`` when the environment variable ``DIPKIT_DATA`` is set (no network);
        else ``<cache_dir()>/<name>``, made on first use: the upstream files are downloaded
        (a few MB per set), their SHA-256 checked against :data:`REGISTRY` and converted as the
        module docstring says. The folder is read by :func:`dipkit.images.load_folder`.

    Raises
    ------
    DipkitError
        An unknown name; ``DIPKIT_DATA`` set but without the set's folder; or a set that is not in
        the cache and could not be downloaded (no network, or a file with another SHA-256).
    """
    _check_name(name)
    root = os.environ.get(ENV)
    if root:
        return _local_copy(name, root)
    folder = cache_dir() / name
    if not _complete(name, folder):
        _build(name, folder)
    return folder


def load(name: str, mode: Optional[str] = None) -> list:
    """The images of benchmark set ``name`` (:func:`path`, then :func:`dipkit.images.load_folder`).

    Parameters
    ----------
    name : {'set9', 'classic5', 'bernoulli11'}
    mode : {None, 'gray', 'rgb'}
        Colour conversion of the images (None: as stored; set9 is RGB, the others gray).

    Returns
    -------
    list of NamedImage
        Sorted by name; ``image`` (1, C, H, W) float32 in [0, 1], ``mask`` (1, 1, H, W) bool
        (True = known pixel) for bernoulli11, else None.
    """
    return load_folder(path(name), mode=mode)


def resolve(folder_or_name: PathLike) -> Path:
    """A folder of images, or the folder of a benchmark set given by its name.

    Parameters
    ----------
    folder_or_name : str or Path
        A folder, or one of :data:`SETS`. An existing folder of that name (e.g. ``./set9``) wins
        over the set.

    Returns
    -------
    Path
        The folder (for a set name, :func:`path`).
    """
    if isinstance(folder_or_name, str) and folder_or_name in SETS and not Path(folder_or_name).is_dir():
        return path(folder_or_name)
    return Path(folder_or_name)


def _complete(name: str, folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in _outputs(name))


def _build(name: str, folder: Path) -> None:
    """Fetch, check and convert set ``name`` into ``folder`` (made in a temporary folder beside
    it and renamed when complete, so an interrupted build leaves no half folder)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        for upstream, sha256 in FILES[name].items():
            _CONVERT[name](_fetch(name, upstream, sha256), work)
        if folder.exists():  # an incomplete copy (a file deleted by hand)
            shutil.rmtree(folder)
        try:
            work.rename(folder)
        except OSError:
            if not _complete(name, folder):  # else another process made it meanwhile
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def _quiet_pooch():
    """pooch's INFO lines ('Downloading data from ...') off, so errors stay one line."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def _reason(error: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, without requests' ``with url: ...`` (the URL is known) and
    cut in the middle when long, so that both the start and the cause at the end stay."""
    text = re.sub(r" with url: \S+", "", " ".join(str(error).split()))
    if len(text) > limit:
        text = f"{text[:limit // 2]} ... {text[-limit // 2:]}"
    return f"{type(error).__name__}: {text}"


def _fetch(name: str, upstream: str, sha256: str) -> Path:
    """The upstream file, downloaded into ``<cache_dir()>/upstream`` unless already there with
    the right SHA-256; a :class:`DipkitError` that says how to get the set when it cannot be."""
    target = cache_dir() / "upstream" / PurePosixPath(upstream)
    hint = (f"connect to the internet once, or point {ENV} to a folder holding {name}/ "
            f"({_CONTENTS[name]}; a copy of the paper's benchmark images)")
    try:
        with _quiet_pooch():
            return Path(pooch.retrieve(BASE_URL + upstream, known_hash=f"sha256:{sha256}",
                                       fname=target.name, path=target.parent))
    except OSError as e:  # requests' and urllib's errors are OSErrors: no network, HTTP errors
        raise DipkitError(f"{name} is not in the cache and could not be downloaded ({_reason(e)}); "
                          f"{hint}") from e
    except ValueError as e:  # pooch: the download's hash differs from the registry's
        raise DipkitError(f"{name}: the download of '{BASE_URL + upstream}' does not have the known "
                          f"SHA-256 ({_reason(e)}); retry, or {hint}") from e


def gray_png(src: PathLike, dst: PathLike) -> None:
    """Write the 8-bit gray image ``src`` (e.g. a BMP) as a PNG ``dst`` with the same pixels.

    Parameters
    ----------
    src : str or Path
        An image file Pillow reads whose pixels are gray: mode L, or a palette or RGB image
        whose three channels are equal.
    dst : str or Path
        The PNG to write, mode L (8 bits, values 0..255 unchanged); no metadata is kept.

    Raises
    ------
    DipkitError
        ``src`` is not gray (its channels differ), so one gray channel would change pixels.
    """
    with Image.open(src) as im:
        if im.mode == "L":
            pixels = np.asarray(im)
        else:
            rgb = np.asarray(im.convert("RGB"))
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise DipkitError(f"'{src}' is not a gray image (mode {im.mode}, channels differ); "
                                  f"it cannot be written as gray with the same pixels")
            pixels = rgb[..., 0]
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(dst, format="PNG")


def paper_mask(height: int, width: int) -> np.ndarray:
    """The inpainting mask of the paper's Bernoulli set for an image of ``height`` x ``width``.

    It is the paper's recipe ``numpy.random.seed(100); numpy.random.random_sample((1, H, W)) > 0.5``
    (the same numbers, from a private generator: NumPy's global state is left alone).

    Parameters
    ----------
    height, width : int
        The image's size in pixels.

    Returns
    -------
    ndarray (height, width) bool
        True = known pixel (white in ``NAME_mask.png``), about half of them.
    """
    return np.random.RandomState(100).random_sample((1, height, width))[0] > 0.5


def _copy(src: Path, folder: Path) -> None:
    shutil.copyfile(src, folder / src.name)


def _classic5(src: Path, folder: Path) -> None:
    gray_png(src, folder / f"{src.stem}.png")


def _bernoulli11(src: Path, folder: Path) -> None:
    image = folder / f"{src.stem}.png"
    gray_png(src, image)
    with Image.open(image) as im:
        width, height = im.size
    Image.fromarray(paper_mask(height, width)).save(folder / f"{src.stem}_mask.png", format="PNG")


#: How each set's upstream files become its folder: ``convert(upstream file, folder)``.
_CONVERT = {"set9": _copy, "classic5": _classic5, "bernoulli11": _bernoulli11}
