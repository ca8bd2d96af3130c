"""Spectral probes: the paper's frequency-band correspondence (FBC), radial spectra, a low-pass filter.

All functions take images as tensors (N, C, H, W) (or one image (C, H, W)), work batched on the
images' device and dtype, and never move data to the host. RGB images are reduced to gray with the
paper's weights (:func:`dipkit.images.rgb_to_gray`); any other channel count uses channel 0.

References
----------
Shi, Mettes, Maji, Snoek, "On Measuring and Controlling the Spectral Bias of the Deep Image
Prior", IJCV 2022, section 3 (frequency-band correspondence).
"""

from __future__ import annotations

import functools
import operator
from typing import Optional, Tuple, Union

import torch

from .errors import DipkitError, ImageError, ShapeError
from .images import GRAY_WEIGHTS

__all__ = ["band_correspondence", "BandCorrespondence", "spectrum_ratio", "band_masks", "radial_spectrum",
           "lowpass"]

Device = Union[str, torch.device, None]


def _batch(img: torch.Tensor, name: str = "img") -> torch.Tensor:
    """Check an image tensor and return it as (N, C, H, W)."""
    if not isinstance(img, torch.Tensor):
        raise ImageError(
            f"{name} must be a torch tensor (N, C, H, W), got {type(img).__name__}; "
            "convert a NumPy HWC array with torch.from_numpy(a).permute(2, 0, 1)[None]"
        )
    if img.ndim == 3:
        img = img.unsqueeze(0)
    if img.ndim != 4 or img.shape[1] < 1:
        raise ShapeError(
            f"{name} must have shape (N, C, H, W) or (C, H, W), got {tuple(img.shape)}; "
            "add a channel axis to a gray (H, W) image with img[None, None]"
        )
    if not img.is_floating_point():
        raise ImageError(
            f"{name} has dtype {img.dtype}; convert it to float in [0, 1] first, e.g. img.float() / 255"
        )
    return img


def _gray(img: torch.Tensor, name: str = "img") -> torch.Tensor:
    """Gray images (N, H, W) of images (N, C, H, W) or (C, H, W), as the paper's code makes them.

    Three channels: ``clip(0.2989 R + 0.5870 G + 0.1140 B, 0, 1)``; any other count: channel 0.
    """
    img = _batch(img, name)
    if img.shape[1] == 3:
        # rgb_to_gray's formula as one small matrix product: half the time of multiply-then-sum
        return torch.einsum("nchw,c->nhw", img, _gray_weights(img.dtype, img.device)).clamp_(0, 1)
    return img[:, 0]


@functools.lru_cache(maxsize=16)
def _gray_weights(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(GRAY_WEIGHTS, dtype=dtype, device=device)


def _check_n(n: int, name: str) -> int:
    """``n`` as a positive int, or a DipkitError naming the argument."""
    try:
        n = operator.index(n)
    except TypeError:
        raise DipkitError(f"{name} must be an integer, got {n!r}") from None
    if n < 1:
        hint = "; the paper uses n_bands=5" if name == "n_bands" else ""
        raise DipkitError(f"{name} must be at least 1, got {n}{hint}")
    return n


@functools.lru_cache(maxsize=32)
def _band_masks(height: int, width: int, n_bands: int, device: torch.device) -> torch.Tensor:
    rows = torch.arange(height).view(-1, 1) - height // 2
    cols = torch.arange(width).view(1, -1) - width // 2
    dist2 = rows**2 + cols**2
    # d <= floor(W/2) k / n  <=>  n^2 d^2 <= (floor(W/2) k)^2, exactly, in integers
    limits = (torch.arange(n_bands + 1) * (width // 2)) ** 2
    disks = n_bands**2 * dist2 <= limits.view(-1, 1, 1)
    disks[0] = False  # nothing inside r_0, so ring 1 keeps the DC term
    return (disks[1:] & ~disks[:-1]).to(device)


def band_masks(height: int, width: int, n_bands: int = 5, device: Device = None) -> torch.Tensor:
    """The rings of the paper's FBC on an fftshifted H x W spectrum.

    Parameters
    ----------
    height, width : int
        Size of the spectrum (the image), in pixels.
    n_bands : int, default 5
        Number of rings.
    device : str or torch.device, optional
        Where the masks live; default CPU.

    Returns
    -------
    Tensor of bool, shape (n_bands, height, width)
        ``masks[k - 1]`` is ring ``k``: ``r_{k-1} < d <= r_k`` with ``r_k = floor(W/2) k / n_bands``
        and ``d`` the distance to the centre (row ``H // 2``, column ``W // 2``). Ring 1 holds
        the DC term; the corners (``d > floor(W/2)``) are in no ring. The result is cached per
        (height, width, n_bands, device): the same tensor comes back on every call, so do not
        modify it in place.

    Notes
    -----
    Ring membership is decided in exact integer arithmetic (``n² d² <= (floor(W/2) k)²``), so a
    pixel exactly on a radius always belongs to the inner ring, as with the paper's ``d <= r``.
    A ring with no pixel (``n_bands`` large for a tiny image) is all False.
    """
    height, width = _check_n(height, "height"), _check_n(width, "width")
    return _band_masks(height, width, _check_n(n_bands, "n_bands"), torch.device(device or "cpu"))


@functools.lru_cache(maxsize=16)
def _band_weights(height: int, width: int, n_bands: int, device: torch.device, dtype: torch.dtype):
    """(n_bands, H (W // 2 + 1)) matrix: row k averages over ring k + 1 of the full spectrum, given
    the unshifted ``rfft2`` half of a point-symmetric map (NaN if the ring is empty)."""
    masks = torch.fft.ifftshift(band_masks(height, width, n_bands, device).to(dtype), dim=(-2, -1))
    counts = masks.sum(dim=(-2, -1), keepdim=True)
    half = masks[..., : width // 2 + 1].clone()
    half[..., 1 : (width + 1) // 2] *= 2  # columns whose mirror (-ky, -kx) is not in the half
    return (half / counts).flatten(1)


def _ratio(output: torch.Tensor, observation: torch.Tensor, half: bool) -> torch.Tensor:
    """The clipped spectrum ratio: centred (N, H, W), or the unshifted ``rfft2`` half (N, H, W//2+1)."""
    f = _gray(output, "output")
    y0 = _gray(observation, "observation").to(f.dtype)
    if f.shape[-2:] != y0.shape[-2:]:
        raise ShapeError(
            f"output is {f.shape[-2]}x{f.shape[-1]} but observation is {y0.shape[-2]}x{y0.shape[-1]} "
            "(H x W); pass the observation the output was fitted to, at the same size"
        )
    if y0.shape[0] not in (1, f.shape[0]):
        raise ShapeError(
            f"observation has a batch of {y0.shape[0]} for {f.shape[0]} outputs; pass one observation "
            "(broadcast to all outputs) or one per output"
        )

    def magnitude(x):
        if half:
            return torch.fft.rfft2(x).abs()
        return torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1)).abs()

    return (magnitude(f) / (magnitude(y0) + 1e-8)).clamp(0, 1)


def spectrum_ratio(output: torch.Tensor, observation: torch.Tensor) -> torch.Tensor:
    """Clipped ratio of the output's to the observation's magnitude spectrum, centred, for plots.

    Parameters
    ----------
    output : Tensor, shape (N, C, H, W) or (C, H, W)
        Images (e.g. network outputs) in [0, 1], float32 or float64.
    observation : Tensor, shape (1, C', H, W), (N, C', H, W) or (C', H, W)
        The degraded observation the output was fitted to; a batch of one is broadcast to N.

    Returns
    -------
    Tensor, shape (N, H, W)
        ``R = clip(A / (A0 + 1e-8), 0, 1)`` in [0, 1], zero frequency at (row ``H // 2``,
        column ``W // 2``); the output's dtype and device.

    Notes
    -----
    ``A = |fftshift(fft2(f))|`` and ``A0 = |fftshift(fft2(y0))|`` with ``f`` and ``y0`` the gray
    output and observation (RGB -> 0.2989 R + 0.5870 G + 0.1140 B, clipped; else channel 0).
    ``y0`` is the degraded observation (noisy, JPEG or masked), not the clean image.
    """
    return _ratio(output, observation, half=False)


def band_correspondence(output: torch.Tensor, observation: torch.Tensor, n_bands: int = 5) -> torch.Tensor:
    """Frequency-band correspondence (FBC) of outputs with the observation, as the paper's code.

    Parameters
    ----------
    output : Tensor, shape (N, C, H, W) or (C, H, W)
        Images (e.g. network outputs) in [0, 1], float32 or float64, on any device.
    observation : Tensor, shape (1, C', H, W), (N, C', H, W) or (C', H, W)
        The degraded observation the output was fitted to; a batch of one is broadcast to N.
    n_bands : int, default 5
        Number of frequency rings.

    Returns
    -------
    Tensor, shape (N, n_bands)
        Mean of the clipped spectrum ratio over each ring, lowest frequency first, in [0, 1]
        (1: the output has at least the observation's magnitude at those frequencies). Output's
        dtype and device. An empty ring (tiny image, many bands) gives NaN.

    Notes
    -----
    With the gray output ``f`` and observation ``y0`` (see :func:`spectrum_ratio`),

    .. math:: R = \\mathrm{clip}\\left(\\frac{|\\mathcal{F} f|}{|\\mathcal{F} y_0| + 10^{-8}}, 0, 1\\right),
              \\qquad \\mathrm{FBC}_k = \\operatorname{mean}_{r_{k-1} < d \\le r_k} R

    with ``d`` the distance to the spectrum's centre and ``r_k = floor(W/2) k / n_bands``
    (``r_0 = -1``, so band 1 holds DC); the corners beyond ``floor(W/2)`` are left out
    (:func:`band_masks`). As ``R`` and the rings are point-symmetric (``|F(-k)| = |F(k)|`` for a
    real image), the means are taken on the ``rfft2`` half-spectrum with the mirrored columns
    counted twice: the full spectrum's result at half the cost. They are one matrix product,
    accumulated in float64, with a ring-averaging matrix cached per (H, W, n_bands, device).

    References
    ----------
    Shi, Mettes, Maji, Snoek, "On Measuring and Controlling the Spectral Bias of the Deep Image
    Prior", IJCV 2022.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 64, 64)
    >>> band_correspondence(y, y).shape
    torch.Size([1, 5])
    >>> bool(torch.allclose(band_correspondence(y, y), torch.ones(1, 5)))
    True
    """
    return BandCorrespondence(observation, n_bands)(output)


class BandCorrespondence:
    """The FBC probe against one fixed observation, whose spectrum is computed once.

    ``BandCorrespondence(observation, n_bands)(output)`` equals
    :func:`band_correspondence(output, observation, n_bands) <band_correspondence>` exactly; a fit
    probes many outputs against the same observation, so the observation's gray image, its
    spectrum magnitude ``|F y0| + 1e-8`` (per dtype and device) and the ring-averaging matrix are
    made once. A probe then costs one gray conversion, one ``rfft2``, an elementwise ratio and one
    small matrix product, batched over N, all on the output's device.

    Parameters
    ----------
    observation : Tensor, shape (1, C', H, W), (N, C', H, W) or (C', H, W)
        The degraded observation (noisy, JPEG or masked); a batch of one is broadcast. It is read
        once, here: later in-place changes to it are not seen (make a new probe).
    n_bands : int, default 5
        Number of frequency rings.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 3, 64, 64)
    >>> probe = BandCorrespondence(y)
    >>> bool(torch.equal(probe(y), band_correspondence(y, y)))
    True
    """

    def __init__(self, observation: torch.Tensor, n_bands: int = 5):
        self.n_bands = _check_n(n_bands, "n_bands")
        self._gray0 = _gray(observation, "observation").detach()
        self.height, self.width = self._gray0.shape[-2:]
        self._denominators: dict = {}

    def _denominator(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (dtype, device)
        if key not in self._denominators:
            y0 = self._gray0.to(device=device, dtype=dtype)
            self._denominators[key] = torch.fft.rfft2(y0).abs() + 1e-8
        return self._denominators[key]

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        """FBC of outputs (N, C, H, W) or (C, H, W) against the observation: (N, n_bands)."""
        f = _gray(output, "output")
        n, h, w = f.shape
        if (h, w) != (self.height, self.width):
            raise ShapeError(
                f"output is {h}x{w} but observation is {self.height}x{self.width} (H x W); pass the "
                "observation the output was fitted to, at the same size"
            )
        if self._gray0.shape[0] not in (1, n):
            raise ShapeError(
                f"observation has a batch of {self._gray0.shape[0]} for {n} outputs; pass one "
                "observation (broadcast to all outputs) or one per output"
            )
        ratio = (torch.fft.rfft2(f).abs() / self._denominator(f.dtype, f.device)).clamp_(0, 1)
        # Accumulate in float64: a float32 BLAS sum over 10^5 pixels is off by up to 1e-3.
        acc = torch.float32 if ratio.device.type == "mps" else torch.float64  # MPS has no float64
        weights = _band_weights(h, w, self.n_bands, ratio.device, acc)
        return (ratio.reshape(n, -1).to(acc) @ weights.T).to(ratio.dtype)

    def __repr__(self) -> str:
        return f"BandCorrespondence({self.height}x{self.width}, n_bands={self.n_bands})"


@functools.lru_cache(maxsize=16)
def _radial_bins(height: int, width: int, n_bins: int, device: torch.device):
    """Bin index of every unshifted FFT pixel (n_bins for beyond 0.5 cycles/pixel) and bin counts."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64).view(1, -1)
    freq = (fy**2 + fx**2).sqrt().flatten()
    labels = (freq * (2 * n_bins)).floor().long().clamp_max(n_bins - 1)
    labels[freq > 0.5] = n_bins
    counts = torch.bincount(labels, minlength=n_bins + 1)[:n_bins]
    return labels.to(device), counts.to(device)


def radial_spectrum(img: torch.Tensor, n_bins: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged magnitude spectrum of gray images.

    Parameters
    ----------
    img : Tensor, shape (N, C, H, W) or (C, H, W)
        Images in [0, 1] (RGB reduced to gray as in :func:`spectrum_ratio`).
    n_bins : int, optional
        Number of radial bins from 0 to 0.5 cycles/pixel; default ``min(H, W) // 2`` (one bin
        per frequency step of the shorter side).

    Returns
    -------
    radii : Tensor, shape (n_bins,)
        Bin centres, in cycles per pixel, in (0, 0.5).
    magnitude : Tensor, shape (N, n_bins)
        Mean of ``|fft2(gray)| / sqrt(H W)`` over each bin (orthonormal FFT: white noise of
        standard deviation ``s`` gives a flat spectrum near ``0.89 s``), in intensity units; NaN
        for an empty bin. Image's dtype and device.

    Notes
    -----
    Pixel ``(ky, kx)`` of the FFT has radial frequency ``sqrt((ky/H)² + (kx/W)²)`` cycles/pixel
    (signed ``ky, kx`` as :func:`torch.fft.fftfreq`); bin ``b`` holds ``[b, b + 1) * 0.5 / n_bins``,
    the last bin also 0.5 itself, and the corners beyond 0.5 are left out.
    """
    g = _gray(img)
    n, h, w = g.shape
    n_bins = _check_n(n_bins if n_bins is not None else max(1, min(h, w) // 2), "n_bins")
    labels, counts = _radial_bins(h, w, n_bins, g.device)
    magnitude = torch.fft.fft2(g, norm="ortho").abs().reshape(n, h * w)
    sums = magnitude.new_zeros(n, n_bins + 1).index_add_(1, labels, magnitude)
    radii = (torch.arange(n_bins, device=g.device, dtype=g.dtype) + 0.5) * (0.5 / n_bins)
    return radii, sums[:, :n_bins] / counts.to(g.dtype)


def lowpass(img: torch.Tensor, cutoff: float, kind: str = "gaussian") -> torch.Tensor:
    """Low-pass filter images in the Fourier domain, every channel alike.

    Parameters
    ----------
    img : Tensor, shape (..., H, W)
        Real images, float32 or float64, on any device.
    cutoff : float
        Cut-off frequency as a fraction of Nyquist (0.5 cycles/pixel), > 0.
    kind : {'gaussian', 'ideal'}, default 'gaussian'
        ``'ideal'``: gain 1 up to the cut-off, 0 beyond (ringing near edges);
        ``'gaussian'``: gain ``exp(-(f / cutoff)² / 2)``, 0.61 at the cut-off, smooth.

    Returns
    -------
    Tensor, same shape, dtype and device as ``img``
        The filtered images; not clipped, so they may leave [0, 1] slightly.

    Notes
    -----
    ``f = sqrt((ky/H)² + (kx/W)²) / 0.5`` is the radial frequency in units of Nyquist. A
    Gaussian-filtered image has an FBC against the original that falls with the band index.
    """
    if not cutoff > 0:
        raise DipkitError(f"cutoff must be a positive fraction of Nyquist, got {cutoff}")
    if kind not in ("gaussian", "ideal"):
        raise DipkitError(f"kind must be 'gaussian' or 'ideal', got {kind!r}")
    h, w = img.shape[-2:]
    opts = dict(device=img.device, dtype=img.dtype)
    fy = torch.fft.fftfreq(h, **opts).view(-1, 1)
    fx = torch.fft.rfftfreq(w, **opts).view(1, -1)
    f = (fy**2 + fx**2).sqrt() / 0.5
    gain = (f <= cutoff).to(img.dtype) if kind == "ideal" else torch.exp(-0.5 * (f / cutoff) ** 2)
    return torch.fft.irfft2(torch.fft.rfft2(img) * gain, s=(h, w))
