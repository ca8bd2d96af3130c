"""Classical restorations with dipkit's tensor conventions: the baselines the chapters compare with.

Thin wrappers around scikit-image (and the optional ``bm3d`` package) that take and return
images as dipkit does everywhere: tensors (N, C, H, W) or (C, H, W), float32 in [0, 1], C = 1
(gray) or 3 (RGB). Each image of a batch is restored on its own, on the CPU; the result has the
input's shape, dtype and device and is clipped to [0, 1].

==========================  ==================================================================
function                    what it does
==========================  ==================================================================
:func:`denoise`             ``'tv'`` (Chambolle), ``'nlm'`` (non-local means), ``'wavelet'``
                            (BayesShrink), ``'bm3d'`` (optional extra), at a noise level σ
:func:`estimate_noise`      σ of each image from its finest wavelet coefficients (Donoho)
:func:`tune`                the strength of a method that is best against a clean image (an
                            *oracle*: only for comparisons)
:func:`inpaint_biharmonic`  fill the unknown pixels of a mask with a biharmonic interpolant
==========================  ==================================================================

Every noise level is a standard deviation in intensity units of [0, 1] images (25/255 ≈ 0.098
for the paper's σ = 25), as in :class:`dipkit.degradations.GaussianNoise`.

References
----------
A. Chambolle, "An algorithm for total variation minimization and applications", J. Math.
Imaging Vis. 20, 2004. A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image
denoising", CVPR 2005. S. G. Chang, B. Yu, M. Vetterli, "Adaptive wavelet thresholding for
image denoising and compression", IEEE TIP 9(9), 2000. D. L. Donoho, I. M. Johnstone, "Ideal
spatial adaptation by wavelet shrinkage", Biometrika 81(3), 1994. K. Dabov, A. Foi,
V. Katkovnik, K. Egiazarian, "Image denoising by sparse 3-D transform-domain collaborative
filtering", IEEE TIP 16(8), 2007.

Examples
--------
>>> import dipkit
>>> from dipkit import baselines
>>> clean = dipkit.images.sample("camera", size=64)
>>> noisy = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
>>> out = baselines.denoise("tv", noisy, sigma=25 / 255)
>>> out.shape, out.dtype
(torch.Size([1, 1, 64, 64]), torch.float32)
>>> bool(dipkit.metrics.psnr(out, clean) > dipkit.metrics.psnr(noisy, clean))
True
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from .errors import DipkitError, ShapeError
from .images import check_image

__all__ = ["METHODS", "TV_WEIGHT", "NLM_H", "denoise", "estimate_noise", "tune", "inpaint_biharmonic",
           "bm3d_available"]

#: The denoisers of :func:`denoise`, with what each one is.
METHODS = {
    "tv": "total-variation denoising, Chambolle's projection algorithm "
          "(skimage.restoration.denoise_tv_chambolle)",
    "nlm": "non-local means, fast mode, 5x5 patches searched within 6 pixels "
           "(skimage.restoration.denoise_nl_means)",
    "wavelet": "wavelet shrinkage, BayesShrink soft thresholds of Haar coefficients, YCbCr for colour "
               "(skimage.restoration.denoise_wavelet)",
    "bm3d": "block-matching and 3-D filtering (the bm3d package: pip install dipkit[bm3d])",
}

#: TV weight per unit of σ: ``weight = TV_WEIGHT · σ``. The best factor of {0.5, 0.75, 1, 1.25,
#: 1.5, 2} on average over five sample images (camera, coffee, chelsea, rocket,
#: immunohistochemistry; not astronaut, the image of the denoising chapter) at 64² and 128² and
#: σ ∈ {15, 25, 50}/255.
TV_WEIGHT = 0.75

#: Non-local means filter strength per unit of σ, with σ passed to the filter as well:
#: ``h = NLM_H · σ``, scikit-image's recommendation for its fast mode with a known σ (its gallery
#: example "Non-local means denoising for preserving textures"); also the best of {0.6, 0.8, 1,
#: 1.2} on the images of :data:`TV_WEIGHT`.
NLM_H = 0.6

_Sigma = Union[None, float, Sequence[float], torch.Tensor]


def _batch(y, what: str) -> tuple:
    """(float64 NumPy batch (N, H, W, C), was_3d) of a checked image tensor."""
    y = check_image(y, what, values=True)
    was_3d = y.ndim == 3
    b = y[None] if was_3d else y
    if b.shape[1] not in (1, 3):
        raise ShapeError(f"{what} must have 1 (gray) or 3 (RGB) channels, got {b.shape[1]} "
                         f"(shape {tuple(y.shape)})")
    return b.detach().cpu().double().numpy().transpose(0, 2, 3, 1), was_3d


def _back(arrays: list, like: torch.Tensor, was_3d: bool) -> torch.Tensor:
    """Stack (H, W, C) or (H, W) arrays into a tensor shaped, typed and placed like ``like``."""
    out = np.stack([a if a.ndim == 3 else a[..., None] for a in arrays]).transpose(0, 3, 1, 2)
    t = torch.from_numpy(np.clip(out, 0, 1).astype(np.float32)).to(device=like.device, dtype=like.dtype)
    return t[0] if was_3d else t


def _image(a: np.ndarray) -> tuple:
    """(image for skimage, channel_axis): gray as (H, W), colour as (H, W, 3)."""
    return (a[..., 0], None) if a.shape[-1] == 1 else (a, -1)


def estimate_noise(y: torch.Tensor) -> torch.Tensor:
    """The noise level σ of each image, estimated from the image alone.

    Parameters
    ----------
    y : Tensor (N, C, H, W) or (C, H, W), float in [0, 1], C = 1 or 3

    Returns
    -------
    Tensor (N,), float32, on the CPU
        σ in intensity units of [0, 1] (multiply by 255 for the 0..255 scale), the mean over the
        channels of a colour image.

    Notes
    -----
    ``skimage.restoration.estimate_sigma(average_sigmas=True)``: Donoho's robust estimate
    ``σ = median(|d|) / 0.6745`` over the finest diagonal wavelet coefficients ``d``
    (Donoho and Johnstone 1994). Image texture adds to ``d``, so textured images read a little high,
    and clipping to [0, 1] makes strong noise read low.

    References
    ----------
    D. L. Donoho, I. M. Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
    Biometrika 81(3), 1994.

    Examples
    --------
    >>> import dipkit
    >>> y = dipkit.degradations.GaussianNoise(25 / 255).observe(torch.full((1, 1, 64, 64), 0.5))
    >>> print(f"{255 * float(estimate_noise(y)[0]):.1f}")    # the truth: 25
    24.0
    """
    from skimage.restoration import estimate_sigma

    _require_pywt("estimate_noise")
    batch, _ = _batch(y, "image")
    values = []
    for a in batch:
        img, axis = _image(a)
        values.append(float(estimate_sigma(img, average_sigmas=True, channel_axis=axis)))
    return torch.tensor(values, dtype=torch.float32)


def _sigmas(sigma: _Sigma, y: torch.Tensor, n: int) -> list:
    if sigma is None:
        return estimate_noise(y).tolist()
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.detach().cpu().reshape(-1).tolist()
    values = list(sigma) if isinstance(sigma, (list, tuple)) else [sigma] * n
    if len(values) != n:
        raise DipkitError(f"give one sigma for all images or one per image: {n} image(s), "
                          f"{len(values)} sigma(s)")
    out = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)) \
                or not np.isfinite(s) or s < 0:
            raise DipkitError(f"sigma must be a non-negative number in intensity units of [0, 1] "
                              f"images (25/255 for the paper's σ = 25), got {s!r}")
        if s > 1:
            raise DipkitError(f"sigma = {s} is larger than the whole [0, 1] intensity range; give it "
                              f"on that scale: {s / 255:.5g} if you meant {s:g} on 0..255")
        out.append(float(s))
    return out


def _require_pywt(what: str) -> None:
    try:
        import pywt  # noqa: F401
    except ModuleNotFoundError:
        raise DipkitError(f"{what} needs PyWavelets, a dependency of dipkit: "
                          f"pip install PyWavelets") from None


def bm3d_available() -> bool:
    """Whether the optional ``bm3d`` package can be imported (``pip install dipkit[bm3d]``)."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def _import_bm3d():
    try:
        import bm3d
    except ImportError:
        raise DipkitError("method 'bm3d' needs the optional bm3d package (free for non-commercial "
                          "use only): pip install dipkit[bm3d]") from None
    return bm3d


def _bm3d(img: np.ndarray, axis, sigma: float) -> np.ndarray:
    bm3d = _import_bm3d()
    if axis is None:
        return np.asarray(bm3d.bm3d(img, sigma_psd=sigma)).reshape(img.shape)
    return np.asarray(bm3d.bm3d_rgb(img, sigma_psd=sigma))


def _denoise_one(method: str, img: np.ndarray, axis, sigma: float, options: dict) -> np.ndarray:
    from skimage import restoration

    if method == "tv":
        kwargs = dict(weight=TV_WEIGHT * sigma)
        kwargs.update(options)
        if kwargs["weight"] == 0:
            return img.copy()
        return restoration.denoise_tv_chambolle(img, channel_axis=axis, **kwargs)
    if method == "nlm":
        kwargs = dict(h=NLM_H * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
        kwargs.update(options)
        return restoration.denoise_nl_means(img, channel_axis=axis, **kwargs)
    if method == "wavelet":
        kwargs = dict(method="BayesShrink", mode="soft", wavelet="db1", rescale_sigma=True,
                      convert2ycbcr=axis is not None)
        kwargs.update(options)
        return restoration.denoise_wavelet(img, sigma=sigma, channel_axis=axis, **kwargs)
    if options:
        raise DipkitError(f"method 'bm3d' takes no options, got {sorted(options)}")
    return _bm3d(img, axis, sigma)


def denoise(method: str, y: torch.Tensor, sigma: _Sigma = None, **options) -> torch.Tensor:
    """Denoise images with a classical method.

    Parameters
    ----------
    method : {'tv', 'nlm', 'wavelet', 'bm3d'}
        See :data:`METHODS`. ``'bm3d'`` needs the optional ``bm3d`` package
        (``pip install dipkit[bm3d]``; free for non-commercial use only).
    y : Tensor (N, C, H, W) or (C, H, W), float in [0, 1], C = 1 or 3
        The noisy images.
    sigma : float, sequence of floats (one per image), Tensor (N,), or None
        Noise standard deviation in intensity units of [0, 1] (25/255 for the paper's σ = 25);
        None estimates it per image with :func:`estimate_noise` (a blind denoiser).
    **options
        Passed on to the scikit-image function, overriding the defaults below (e.g.
        ``weight=0.1`` for ``'tv'``, ``h=0.05`` for ``'nlm'``).

    Returns
    -------
    Tensor, same shape, dtype and device as ``y``, in [0, 1]

    Raises
    ------
    DipkitError
        Unknown method (the message lists them), a bad sigma, or ``'bm3d'`` without the
        ``bm3d`` package (the message says ``pip install dipkit[bm3d]``).
    ShapeError
        Not (N, C, H, W) or (C, H, W) with C = 1 or 3.

    Notes
    -----
    How σ sets each method's strength:

    - ``'tv'``: :func:`skimage.restoration.denoise_tv_chambolle` (Chambolle 2004) with
      ``weight = TV_WEIGHT · σ`` (0.75 σ): the Rudin–Osher–Fatemi problem
      ``min_u TV(u) + ‖u − y‖² / (2 · weight)``, so a larger weight smooths more (colour: one TV
      over all channels).
    - ``'nlm'``: :func:`skimage.restoration.denoise_nl_means` (Buades et al. 2005), fast mode,
      5×5 patches searched within 6 pixels, ``h = NLM_H · σ`` (0.6 σ) and ``sigma = σ``.
    - ``'wavelet'``: :func:`skimage.restoration.denoise_wavelet`, BayesShrink soft thresholds
      (Chang et al. 2000) of Haar coefficients at every level (wavelet shrinkage, Donoho and
      Johnstone 1994), with ``sigma = σ``; colour images are denoised in YCbCr (scikit-image
      converts σ to that colour space).
    - ``'bm3d'``: ``bm3d.bm3d`` (gray) or ``bm3d.bm3d_rgb`` (colour, opponent colour space)
      (Dabov et al. 2007) with ``sigma_psd = σ``.

    Each image is processed on its own, on the CPU, in float64.

    References: see the module docstring.

    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("astronaut", size=32)
    >>> noisy = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
    >>> denoise("nlm", noisy).shape           # σ estimated from the image
    torch.Size([1, 3, 32, 32])
    """
    if method not in METHODS:
        raise DipkitError(f"unknown denoising method {method!r}; choose one of "
                          f"{', '.join(repr(m) for m in METHODS)}")
    if method == "bm3d":
        _import_bm3d()  # fail before any work, with the install hint
    if method == "wavelet" or sigma is None:
        _require_pywt(f"denoise({method!r})" if sigma is not None else "estimating sigma")
    y_checked = check_image(y, "noisy image", values=True)
    batch, was_3d = _batch(y_checked, "noisy image")
    sigmas = _sigmas(sigma, y_checked, batch.shape[0])
    outputs = []
    for a, s in zip(batch, sigmas):
        img, axis = _image(a)
        outputs.append(np.asarray(_denoise_one(method, img, axis, s, dict(options)), dtype=np.float64))
    return _back(outputs, y_checked, was_3d)


def tune(method: str, y: torch.Tensor, clean: torch.Tensor, sigmas: Sequence[float]) -> tuple:
    """The strength of ``method`` that restores ``y`` best, judged against the clean image.

    An **oracle**: it needs the clean image, which a real restoration does not have. Use it to
    give a classical method its best case in a comparison (e.g. as a JPEG deblocker, where no
    noise level is given), and say so.

    Parameters
    ----------
    method : str
        A method of :func:`denoise`.
    y, clean : Tensor (1, C, H, W) or (C, H, W), float in [0, 1], same shape
        One degraded image and its clean version.
    sigmas : sequence of float
        The strengths σ to try (intensity units of [0, 1]), passed to :func:`denoise`.

    Returns
    -------
    (output, sigma, psnr) : (Tensor shaped like ``y``, float, float)
        The best output by PSNR (dB) against ``clean``, its σ, and that PSNR.

    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("camera", size=32)
    >>> y = dipkit.degradations.JPEG(10).observe(clean)
    >>> out, s, p = tune("tv", y, clean, [0.0, 0.05, 0.1])
    >>> s in (0.0, 0.05, 0.1) and p >= float(dipkit.metrics.psnr(y, clean)[0])
    True
    """
    from .metrics import psnr

    y = check_image(y, "degraded image", values=True)
    clean = check_image(clean, "clean image", values=True)
    if y.shape != clean.shape:
        raise ShapeError(f"the degraded image {tuple(y.shape)} and the clean image "
                         f"{tuple(clean.shape)} differ in shape")
    if (y[None] if y.ndim == 3 else y).shape[0] != 1:
        raise ShapeError(f"tune takes one image (1, C, H, W), got {tuple(y.shape)}")
    sigmas = list(sigmas)
    if not sigmas:
        raise DipkitError("give at least one strength to try in sigmas")
    best = None
    for s in sigmas:
        out = denoise(method, y, sigma=s)
        p = float(psnr(out[None] if out.ndim == 3 else out, clean[None] if clean.ndim == 3 else clean)[0])
        if best is None or p > best[2]:
            best = (out, float(s), p)
    return best


def inpaint_biharmonic(y: torch.Tensor, mask) -> torch.Tensor:
    """Fill the unknown pixels with the biharmonic interpolant of the known ones.

    Parameters
    ----------
    y : Tensor (N, C, H, W) or (C, H, W), float in [0, 1], C = 1 or 3
        The observations; their values at unknown pixels are ignored.
    mask : Tensor or ndarray (H, W), (1, H, W) or (1, 1, H, W), bool or 0/1
        True = known pixel, as in :class:`dipkit.degradations.Inpainting` (and the mask makers
        there); the same mask for every image and channel.

    Returns
    -------
    Tensor, same shape, dtype and device as ``y``, in [0, 1]
        Known pixels keep their values; unknown ones are filled.

    Raises
    ------
    ShapeError
        The mask's size differs from the images'.
    DipkitError
        The mask has no known pixel.

    Notes
    -----
    :func:`skimage.restoration.inpaint_biharmonic` (Hoang and Damelin 2017): the unknown
    pixels ``u`` solve ``Δ²u = 0`` (the discrete bi-Laplacian) with the known pixels as
    boundary values, per channel. scikit-image's mask marks the pixels *to fill*, the inverse
    of dipkit's.

    References
    ----------
    N. S. Hoang, S. B. Damelin, "On surface completion and image inpainting by biharmonic
    functions: numerical aspects", arXiv:1707.06567, 2017.

    Examples
    --------
    >>> import dipkit
    >>> from dipkit.degradations import Inpainting, bernoulli_mask
    >>> clean = dipkit.images.sample("camera", size=32)
    >>> m = bernoulli_mask(32, 32)
    >>> out = inpaint_biharmonic(Inpainting(m).observe(clean), m)
    >>> bool(torch.equal(out[m.expand_as(out)], clean[m.expand_as(clean)]))
    True
    """
    from skimage.restoration import inpaint_biharmonic as biharmonic

    from .degradations import Inpainting

    known = Inpainting(mask).mask[0, 0].cpu().numpy()  # checks the mask, (H, W) bool
    y_checked = check_image(y, "observation", values=True)
    batch, was_3d = _batch(y_checked, "observation")
    if batch.shape[1:3] != known.shape:
        raise ShapeError(f"the mask is {known.shape[0]}x{known.shape[1]} (H x W) but the image is "
                         f"{batch.shape[1]}x{batch.shape[2]}; make the mask for the image's size")
    outputs = []
    for a in batch:
        img, axis = _image(a)
        out = biharmonic(img, ~known, channel_axis=axis)
        keep = known if axis is None else known[..., None]
        outputs.append(np.where(keep, img, out))  # known pixels exactly as observed
    return _back(outputs, y_checked, was_3d)
