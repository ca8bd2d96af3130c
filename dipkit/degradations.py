"""Degradations: how an observation is made from a clean image, and the operator of the loss.

As in deepinv, the *physics* is kept apart from the model and the solver. A
:class:`Degradation` has two jobs:

``observe(clean, seed)``
    Simulate the measurement y from a clean image x (add noise, compress, mask). Only needed
    for experiments that start from a clean image.
``forward(output)`` and ``loss(output, observation)``
    The operator A applied to the network output f, and the fitting loss
    ``mean((A f − y)²)`` that :func:`dipkit.fit` minimises. This is all a fit needs.

**Direct observations.** ``observe`` is optional. A user who only has an already-noisy photo or
an already-compressed JPEG loads it with :func:`dipkit.images.load` and uses it as the
observation as is: ``GaussianNoise`` and ``JPEG`` have the identity as operator, so their
``forward``/``loss`` do not depend on sigma or quality (those only describe how a simulated
observation is made); for inpainting, ``Inpainting(mask)`` with the user's mask ignores whatever
the file holds at the unknown pixels.

==================  =======================================  =========================
class               observe(x)                               forward(f) (operator A)
==================  =======================================  =========================
:class:`Identity`   x                                        f
:class:`GaussianNoise`  clip(x + σ·N(0, 1), 0, 1)            f
:class:`JPEG`       Pillow JPEG encode/decode at a quality   f
:class:`Inpainting` x ⊙ m                                    f ⊙ m
==================  =======================================  =========================

Mask makers for inpainting: :func:`bernoulli_mask` (the paper's), :func:`block_mask`,
:func:`text_mask`. All masks are bool tensors (1, 1, H, W), True = known pixel.

Examples
--------
>>> import dipkit
>>> clean = dipkit.images.sample("camera", size=64)
>>> noise = GaussianNoise(25 / 255)
>>> y = noise.observe(clean, seed=0)          # simulated; or y = dipkit.images.load("noisy.png")
>>> float(noise.loss(clean, y)) > 0
True
>>> hole = Inpainting(bernoulli_mask(64, 64))
>>> hole.observe(clean).shape
torch.Size([1, 1, 64, 64])
"""

from __future__ import annotations

import io
import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .errors import DipkitError, ShapeError
from .images import check_image

__all__ = ["Degradation", "Identity", "GaussianNoise", "JPEG", "Inpainting", "HeldOut",
           "bernoulli_mask", "block_mask", "text_mask"]

Seed = Union[int, torch.Generator]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _cpu_generator(seed: Seed) -> torch.Generator:
    """A torch.Generator from an int seed (on the CPU, so results are the same on every device),
    or the generator itself."""
    if isinstance(seed, torch.Generator):
        return seed
    if not _is_int(seed):
        raise DipkitError(f"seed must be an int or a torch.Generator, got {seed!r}; pass e.g. "
                          f"seed=0 (different seeds give different noise)")
    return torch.Generator(device="cpu").manual_seed(int(seed))


class Degradation:
    """Base class: a measurement model y = observe(x) with operator A = :meth:`forward`.

    Subclasses override :meth:`observe` and, when the operator is not the identity,
    :meth:`forward`. ``degradation(x, seed)`` is the same as ``degradation.observe(x, seed)``.

    Attributes
    ----------
    name : str
        A short identifier ('identity', 'gaussian_noise', 'jpeg', 'inpainting').
    """

    name = "degradation"

    def observe(self, clean: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
        """Simulate the observation of clean images (optional: see the module docstring).

        Parameters
        ----------
        clean : Tensor (N, C, H, W) or (C, H, W), float in [0, 1]
        seed : int or torch.Generator
            Seeds the randomness of the degradation (ignored by deterministic ones).

        Returns
        -------
        Tensor, same shape, dtype and device as ``clean``
            The observation knows its operator: ``y.dipkit_degradation`` is this degradation,
            and :func:`dipkit.fit` uses it when no ``degradation=`` is given (an inpainting
            observation is never fitted without its mask).
        """
        y = self._observe(clean, seed)
        y.dipkit_degradation = self
        return y

    def _observe(self, clean: torch.Tensor, seed: Seed) -> torch.Tensor:
        """The subclass's simulation (see :meth:`observe`); here a copy of ``clean``."""
        return check_image(clean, "clean image", values=True).clone()

    def known_fraction(self, observation: torch.Tensor) -> float:
        """The fraction of the observation's values that the loss compares (1 but for masks)."""
        return 1.0

    def readings(self, output: torch.Tensor, observation: torch.Tensor) -> dict:
        """Extra probe readings this degradation offers a fit (none here; see :class:`HeldOut`)."""
        return {}

    def __call__(self, clean: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
        return self.observe(clean, seed)

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        """The operator A applied to network outputs (differentiable, batched over N).

        Parameters
        ----------
        output : Tensor (N, C, H, W)

        Returns
        -------
        Tensor (N, C, H, W): ``A(output)``; the identity here.
        """
        return output

    def A(self, output: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward` (deepinv's name for the operator)."""
        return self.forward(output)

    def loss(self, output: torch.Tensor, observation: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        """The fitting loss ``mean((A(output) − observation)²)`` over all pixels.

        Parameters
        ----------
        output : Tensor (N, C, H, W)
            Network outputs (differentiable).
        observation : Tensor (N, C, H, W) or (1, C, H, W)
            The observation y: simulated with :meth:`observe` or loaded from a file as is. One
            observation is broadcast over a batch of outputs.
        reduction : {'mean', 'none'}
            'mean': one scalar (mean over all images and pixels, the paper's MSE); 'none': one
            value per image, shape (N,).

        Returns
        -------
        Tensor, 0-d or (N,)

        Raises
        ------
        ShapeError
            ``A(output)`` and ``observation`` differ in shape (other than a batch of 1).
        """
        pred = self.forward(output)
        self._check_pair(pred, observation)
        return _reduce((pred - observation) ** 2, reduction)

    @staticmethod
    def _check_pair(pred: torch.Tensor, observation: torch.Tensor) -> None:
        if not isinstance(observation, torch.Tensor):
            raise DipkitError(f"observation must be a torch tensor, got {type(observation).__name__}")
        if pred.shape != observation.shape and not (
                pred.ndim == observation.ndim == 4 and observation.shape[0] == 1
                and pred.shape[1:] == observation.shape[1:]):
            raise ShapeError(f"the output {tuple(pred.shape)} and the observation "
                             f"{tuple(observation.shape)} differ in shape; build the model with "
                             f"the observation's channels and size")

    def to(self, device) -> "Degradation":
        """Move the degradation's tensors (e.g. a mask) to ``device``; returns ``self``."""
        return self

    def _args(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._args()})"


def _reduce(sq: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return sq.mean()
    if reduction == "none":
        return sq.flatten(1).mean(dim=1) if sq.ndim == 4 else sq.mean().reshape(1)
    raise DipkitError(f"reduction must be 'mean' or 'none', got {reduction!r}")


class Identity(Degradation):
    """No degradation: y = x and A = identity (plain fitting, detail enhancement).

    ``observe`` returns a copy of the clean image; a fit needs only ``forward``/``loss``, so any
    image loaded from a file can be the observation.

    Examples
    --------
    >>> Identity().observe(torch.zeros(1, 1, 2, 2)).shape
    torch.Size([1, 1, 2, 2])
    """

    name = "identity"


class GaussianNoise(Degradation):
    """Additive white Gaussian noise, clipped: y = clip(x + σ·n, 0, 1), n ~ N(0, 1) per pixel.

    Parameters
    ----------
    sigma : float
        Standard deviation in intensity units of [0, 1] images (the paper: 25/255 ≈ 0.098).
        Must be in [0, 1]; a value above 1 was probably meant on the 0..255 scale.
    clip : bool
        Clip the observation to [0, 1] (the paper's code does).

    Notes
    -----
    The operator is the identity: ``loss(f, y) = mean((f − y)²)``. ``observe`` is only for
    simulation; an already-noisy image loaded from a file is used as the observation as is
    (``sigma`` then only documents the noise level and plays no part in the loss).

    The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)`` and then moved to
    the image's device, so a seed gives the same observation on every device.

    Examples
    --------
    >>> x = torch.full((1, 1, 8, 8), 0.5)
    >>> y = GaussianNoise(25 / 255).observe(x, seed=0)
    >>> torch.equal(y, GaussianNoise(25 / 255).observe(x, seed=0))
    True
    """

    name = "gaussian_noise"

    def __init__(self, sigma: float = 25 / 255, clip: bool = True):
        if isinstance(sigma, torch.Tensor) and sigma.numel() == 1:
            sigma = float(sigma)
        if not isinstance(sigma, (int, float, np.floating, np.integer)) or isinstance(sigma, bool) \
                or not math.isfinite(float(sigma)):
            raise DipkitError(f"sigma must be a finite number in [0, 1], got {sigma!r}")
        sigma = float(sigma)
        if sigma < 0:
            raise DipkitError(f"sigma must be >= 0 (a standard deviation), got {sigma}")
        if sigma > 1:
            raise DipkitError(f"sigma = {sigma} is larger than the whole [0, 1] intensity range; "
                              f"dipkit images are in [0, 1], so give sigma on that scale: "
                              f"sigma/255 = {sigma / 255:.5g} if you meant {sigma:g} on 0..255 "
                              f"(the paper uses 25/255)")
        self.sigma = sigma
        self.clip = bool(clip)

    def _observe(self, clean: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
        """Noisy observation of ``clean`` (N, C, H, W) or (C, H, W) in [0, 1], seeded.

        Each image of a batch gets its own noise (one draw of the whole batch's shape).
        """
        x = check_image(clean, "clean image", values=True)
        gen = _cpu_generator(seed)
        noise = torch.randn(x.shape, generator=gen, dtype=torch.float32, device=gen.device)
        y = x + self.sigma * noise.to(device=x.device, dtype=x.dtype)
        return y.clamp(0, 1) if self.clip else y

    def _args(self) -> str:
        s = f"sigma={self.sigma:.6g} (= {self.sigma * 255:.4g}/255)"
        return s if self.clip else s + ", clip=False"


class JPEG(Degradation):
    """JPEG compression with Pillow, as in the paper's deblocking experiments.

    Parameters
    ----------
    quality : int
        JPEG quality 1..100 (the paper: 10, also 20 and 30).

    Notes
    -----
    ``observe`` rounds each image to 8 bits, encodes it with
    ``PIL.Image.save(format='JPEG', quality=quality, optimize=True, progressive=True)`` as mode
    'L' (1 channel) or 'RGB' (3 channels, Pillow's default 4:2:0 chroma subsampling) and decodes
    it again; the result is deterministic (``seed`` is ignored) and runs on the CPU.

    The operator is the identity, so a JPEG file loaded with :func:`dipkit.images.load` is used
    as the observation as is; ``quality`` then plays no part in the fit.

    Examples
    --------
    >>> x = torch.rand(1, 3, 16, 16)
    >>> y = JPEG(10).observe(x)
    >>> y.shape == x.shape and not torch.equal(x, y)
    True
    """

    name = "jpeg"

    def __init__(self, quality: int = 10):
        if not _is_int(quality) or not 1 <= quality <= 100:
            raise DipkitError(f"JPEG quality must be an integer in 1..100 (the paper uses 10), "
                              f"got {quality!r}")
        self.quality = int(quality)

    def _observe(self, clean: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
        """JPEG-compressed copy of ``clean`` (N, C, H, W) or (C, H, W), C = 1 or 3, in [0, 1]."""
        from PIL import Image

        x = check_image(clean, "clean image", values=True)
        batch = x if x.ndim == 4 else x[None]
        if batch.shape[1] not in (1, 3):
            raise ShapeError(f"JPEG compresses gray (1 channel) or RGB (3 channels) images, got "
                             f"{batch.shape[1]} channels (shape {tuple(x.shape)})")
        a = np.rint(batch.detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
        out = np.empty_like(a)
        for i, img in enumerate(a):
            pil = Image.fromarray(img[0]) if img.shape[0] == 1 else Image.fromarray(img.transpose(1, 2, 0))
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=self.quality, optimize=True, progressive=True)
            buf.seek(0)
            with Image.open(buf) as dec:
                d = np.asarray(dec.convert(pil.mode))
            out[i] = d[None] if d.ndim == 2 else d.transpose(2, 0, 1)
        y = torch.from_numpy(out.astype(np.float32) / np.float32(255)).to(device=x.device, dtype=x.dtype)
        return y if x.ndim == 4 else y[0]

    def _args(self) -> str:
        return f"quality={self.quality}"


def _as_mask(mask) -> torch.Tensor:
    """A bool (1, 1, H, W) tensor from (H, W), (1, H, W) or (1, 1, H, W) bool or 0/1 input."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise DipkitError(f"mask must be a torch tensor or NumPy array (H, W), got "
                          f"{type(mask).__name__}; make one with bernoulli_mask, block_mask or "
                          f"text_mask, or load one with dipkit.images.load(path) > 0.5")
    shape = tuple(mask.shape)
    if mask.ndim not in (2, 3, 4) or any(s != 1 for s in shape[:-2]):
        raise ShapeError(f"mask must have shape (H, W), (1, H, W) or (1, 1, H, W), got {shape}; "
                         f"use one mask for all channels")
    if mask.dtype != torch.bool:
        if not torch.isin(mask.detach().unique(), torch.tensor([0, 1], dtype=mask.dtype,
                                                                device=mask.device)).all():
            raise DipkitError(f"mask values must be 0/1 or bool, got values other than 0 and 1 "
                              f"(dtype {mask.dtype}); threshold it first, e.g. mask > 0.5")
        mask = mask != 0
    return mask.detach().reshape(1, 1, *shape[-2:])


class Inpainting(Degradation):
    """Missing pixels: y = x ⊙ m, operator A f = f ⊙ m, with m the mask (True = known).

    Parameters
    ----------
    mask : Tensor or ndarray, (H, W), (1, H, W) or (1, 1, H, W)
        bool, or 0/1 numbers; True/1 = known pixel. The same mask applies to every channel and
        every image of a batch. Make one with :func:`bernoulli_mask` (the paper's),
        :func:`block_mask` or :func:`text_mask`.

    Attributes
    ----------
    mask : Tensor (1, 1, H, W) bool
    p_known : float
        Fraction of known pixels.

    Notes
    -----
    The loss is the paper's ``mean((f ⊙ m − y ⊙ m)²)`` over **all** pixels (known or not), i.e.
    ``MSE(f ⊙ m, x ⊙ m)`` for y = x ⊙ m. Masking ``y`` as well means an observation loaded from
    a file (a damaged photo with the damage marked in the mask) is used as is: its values at
    unknown pixels are ignored. ``observe`` is only for simulation.

    Examples
    --------
    >>> op = Inpainting(block_mask(8, 8, block=4))
    >>> op.observe(torch.ones(1, 1, 8, 8)).sum().item()
    48.0
    """

    name = "inpainting"

    def __init__(self, mask):
        m = _as_mask(mask)
        known = int(m.sum())
        if known == 0:
            raise DipkitError("the mask has no known pixel (all False/0): nothing to fit; True (1, "
                              "white) marks the known pixels, so maybe invert it with ~mask")
        self.mask = m
        self.p_known = known / m.numel()
        self._weights = {}

    def _weight(self, like: torch.Tensor) -> torch.Tensor:
        h, w = self.mask.shape[-2:]
        if tuple(like.shape[-2:]) != (h, w):
            raise ShapeError(f"the mask is {h}x{w} (H x W) but the image is "
                             f"{like.shape[-2]}x{like.shape[-1]}; make the mask for the image's "
                             f"size (e.g. bernoulli_mask({like.shape[-2]}, {like.shape[-1]}))")
        key = (like.device, like.dtype)
        if key not in self._weights:
            self._weights[key] = self.mask.to(device=like.device, dtype=like.dtype)
        return self._weights[key]

    def _observe(self, clean: torch.Tensor, seed: Seed = 0) -> torch.Tensor:
        """``clean ⊙ mask``: zeros at the unknown pixels (deterministic; ``seed`` is ignored)."""
        x = check_image(clean, "clean image", values=True)
        return x * self._weight(x)

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        """``output ⊙ mask`` (N, C, H, W), differentiable."""
        return output * self._weight(output)

    def loss(self, output: torch.Tensor, observation: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        """``mean((output ⊙ m − observation ⊙ m)²)`` over all pixels (see the class Notes)."""
        pred = self.forward(output)
        self._check_pair(pred, observation)
        return _reduce((pred - observation * self._weight(observation)) ** 2, reduction)

    def known_fraction(self, observation: torch.Tensor) -> float:
        """The fraction of known pixels (the loss averages over all pixels, known or not)."""
        return self.p_known

    def same_mask(self, other: "Inpainting") -> bool:
        """True when ``other`` has the same mask."""
        return self.mask.shape == other.mask.shape and bool(torch.equal(self.mask.cpu(), other.mask.cpu()))

    def to(self, device) -> "Inpainting":
        self.mask = self.mask.to(device)
        self._weights = {}
        return self

    def _args(self) -> str:
        h, w = self.mask.shape[-2:]
        return f"mask={h}x{w}, known={100 * self.p_known:.1f}%"


class HeldOut(Degradation):
    """Hold a random few percent of the known pixels out of the loss, to watch the error there.

    The loss of ``base`` is computed over the pixels kept (the held-out ones weigh 0); at each
    probe the fit reads ``'heldout'``, the mean squared error ``mean((A f − y)²)`` over the
    held-out pixels, one value per output: data the network never fitted, so its minimum marks
    where the output predicts best (:class:`dipkit.stopping.HeldOutRule` stops there).

    Parameters
    ----------
    base : Degradation
        The task's degradation (its operator and, for inpainting, its mask).
    fraction : float
        Share of the known pixels held out, in (0, 0.5].
    seed : int
        Seeds the choice of pixels (one choice for all channels).

    Notes
    -----
    The pixels are chosen when the fit first sees the image size (uniformly among the pixels
    the base's loss compares). Holding pixels out costs the fit their information: measure
    what it costs at the peak against the same fit without it.
    """

    name = "held_out"

    def __init__(self, base: Degradation, fraction: float = 0.05, seed: int = 0):
        if not isinstance(base, Degradation) or isinstance(base, HeldOut):
            raise DipkitError(f"HeldOut wraps a task's degradation (GaussianNoise, JPEG, Inpainting, "
                              f"Identity), got {base!r}")
        if not (isinstance(fraction, (int, float)) and 0 < fraction <= 0.5):
            raise DipkitError(f"fraction must be in (0, 0.5], got {fraction!r}")
        self.base, self.fraction, self.seed = base, float(fraction), int(seed)
        self.held = None   # (1, 1, H, W) bool, True = held out

    def _held(self, like: torch.Tensor) -> torch.Tensor:
        h, w = like.shape[-2:]
        if self.held is None or tuple(self.held.shape[-2:]) != (h, w):
            known = self.base.forward(torch.ones(1, 1, h, w, device=like.device)) > 0
            draw = torch.rand(1, 1, h, w, generator=_cpu_generator(self.seed)).to(like.device)
            self.held = known & (draw < self.fraction)
        return self.held.to(like.device)

    def forward(self, output: torch.Tensor) -> torch.Tensor:
        return self.base.forward(output)

    def loss(self, output: torch.Tensor, observation: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
        """The base's ``mean((A f − y)²)`` with the held-out pixels weighing 0."""
        keep = (~self._held(output)).to(output.dtype)
        pred, target = self.forward(output), self.base.forward(observation)
        self._check_pair(pred, observation)
        return _reduce((pred - target) ** 2 * keep, reduction)

    def readings(self, output: torch.Tensor, observation: torch.Tensor) -> dict:
        held = self._held(output).to(output.dtype)
        sq = (self.forward(output) - self.base.forward(observation)) ** 2 * held
        per_image = sq.flatten(1).sum(dim=1) / (held.sum() * output.shape[1])
        return {"heldout": per_image}

    def known_fraction(self, observation: torch.Tensor) -> float:
        return self.base.known_fraction(observation) * (1 - self.fraction)

    def to(self, device) -> "HeldOut":
        self.base.to(device)
        return self

    def _args(self) -> str:
        return f"{self.base!r}, fraction={self.fraction}, seed={self.seed}"


# ---------------------------------------------------------------------------------------------
# Mask makers
# ---------------------------------------------------------------------------------------------

def _check_size(height, width) -> tuple:
    if not (_is_int(height) and _is_int(width) and height > 0 and width > 0):
        raise DipkitError(f"height and width must be positive integers, got {height!r}, {width!r}")
    return int(height), int(width)


def bernoulli_mask(height: int, width: int, p_known: float = 0.5, seed: Seed = 100) -> torch.Tensor:
    """Random mask with each pixel known with probability ``p_known`` (the paper's inpainting).

    Parameters
    ----------
    height, width : int
    p_known : float in [0, 1]
        Probability that a pixel is known (the paper: 0.5).
    seed : int or torch.Generator
        An int uses NumPy exactly as the paper's code does; with the default 100 and
        ``p_known=0.5`` this reproduces the masks of the ``bernoulli11`` benchmark. A
        torch.Generator draws ``torch.rand`` instead (other masks).

    Returns
    -------
    Tensor (1, 1, H, W) bool
        True = known.

    Notes
    -----
    ``numpy.random.RandomState(seed).random_sample((1, H, W)) > 1 − p_known``.

    Examples
    --------
    >>> m = bernoulli_mask(256, 256)
    >>> m.shape, m.dtype
    (torch.Size([1, 1, 256, 256]), torch.bool)
    """
    h, w = _check_size(height, width)
    if not isinstance(p_known, (int, float, np.floating)) or isinstance(p_known, bool) \
            or not 0 <= float(p_known) <= 1:
        raise DipkitError(f"p_known must be a probability in [0, 1], got {p_known!r}")
    if isinstance(seed, torch.Generator):
        u = torch.rand((1, h, w), generator=seed, dtype=torch.float64, device=seed.device).cpu()
        return (u > 1 - float(p_known))[None]
    if not _is_int(seed):
        raise DipkitError(f"seed must be an int or a torch.Generator, got {seed!r}")
    u = np.random.RandomState(int(seed)).random_sample((1, h, w))
    return torch.from_numpy(u > 1 - float(p_known))[None]


def _extent(value, side: int, what: str) -> int:
    if _is_int(value):
        if value < 0:
            raise DipkitError(f"{what} must be >= 0 pixels, got {value}")
        return min(int(value), side)
    if isinstance(value, (float, np.floating)) and 0 <= value <= 1:
        return int(round(float(value) * side))
    raise DipkitError(f"{what} must be a fraction of the side in [0, 1] (float) or a number of "
                      f"pixels (int), got {value!r}")


def block_mask(height: int, width: int, block: Union[float, int, Sequence] = 0.25,
               center: Optional[Sequence[float]] = None) -> torch.Tensor:
    """Mask with one missing rectangle (False) and everything else known (True).

    Parameters
    ----------
    height, width : int
    block : float, int, or (block_h, block_w)
        Size of the hole: a float is a fraction of each side (0.25 → a quarter of the height by
        a quarter of the width), an int a number of pixels.
    center : (row, col), optional
        Centre of the hole in pixels (default: the image centre). The hole is clipped to the
        image.

    Returns
    -------
    Tensor (1, 1, H, W) bool

    Raises
    ------
    DipkitError
        The hole covers the whole image (no known pixel).

    Examples
    --------
    >>> int((~block_mask(8, 8, block=0.5)).sum())
    16
    """
    h, w = _check_size(height, width)
    bh, bw = (block if isinstance(block, (tuple, list)) and len(block) == 2 else (block, block))
    bh, bw = _extent(bh, h, "block height"), _extent(bw, w, "block width")
    if center is None:
        cy, cx = h / 2, w / 2
    else:
        if not (isinstance(center, (tuple, list)) and len(center) == 2):
            raise DipkitError(f"center must be a pair (row, col) in pixels, got {center!r}")
        cy, cx = float(center[0]), float(center[1])
    y0, x0 = int(round(cy - bh / 2)), int(round(cx - bw / 2))
    m = torch.ones(1, 1, h, w, dtype=torch.bool)
    m[..., max(y0, 0):max(y0 + bh, 0), max(x0, 0):max(x0 + bw, 0)] = False
    if not m.any():
        raise DipkitError(f"a {bh}x{bw} block covers the whole {h}x{w} image, leaving no known "
                          f"pixel; use a smaller block")
    return m


def text_mask(height: int, width: int, text: str = "dipkit\nspectral bias",
              font_size: Optional[int] = None, seed: Optional[Seed] = None,
              stroke_width: int = 0) -> torch.Tensor:
    """Mask with text written over the image: the text strokes are missing (False).

    The text block is repeated in rows over the whole image (like the text masks of the Deep
    Image Prior paper), drawn with Pillow's built-in font (no font file is needed).

    Parameters
    ----------
    height, width : int
    text : str
        The text; may hold line breaks.
    font_size : int, optional
        Font size in pixels (default: about a tenth of the shorter side, at least 8).
    seed : int or torch.Generator, optional
        Shift the tiling at random (None: a fixed layout starting at the top-left).
    stroke_width : int
        Thicken the strokes by this many pixels.

    Returns
    -------
    Tensor (1, 1, H, W) bool
        True = known (outside the text).

    Examples
    --------
    >>> m = text_mask(64, 64)
    >>> 0.5 < m.float().mean().item() < 1
    True
    """
    from PIL import Image, ImageDraw, ImageFont

    h, w = _check_size(height, width)
    if not isinstance(text, str) or not text.strip():
        raise DipkitError(f"text must be a non-empty string, got {text!r}")
    if font_size is None:
        font_size = max(8, min(h, w) // 10)
    if not _is_int(font_size) or font_size < 1:
        raise DipkitError(f"font_size must be a positive integer (pixels), got {font_size!r}")
    if not _is_int(stroke_width) or stroke_width < 0:
        raise DipkitError(f"stroke_width must be a non-negative integer, got {stroke_width!r}")
    font = ImageFont.load_default(size=int(font_size))
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font, stroke_width=stroke_width)
    step_x = max(1, x1 - x0 + font_size)
    step_y = max(1, y1 - y0 + font_size // 2)
    if seed is None:
        off_y, shifts = 0, None
    else:
        gen = _cpu_generator(seed)
        n_rows = h // step_y + 2
        r = torch.rand(n_rows + 1, generator=gen, dtype=torch.float64, device=gen.device).cpu()
        off_y, shifts = int(r[0] * step_y), (r[1:] * step_x).long().tolist()
    for i, top in enumerate(range(off_y - step_y, h, step_y)):
        left0 = (i % 2) * (step_x // 2) if shifts is None else shifts[min(i, len(shifts) - 1)]
        for left in range(left0 - step_x, w, step_x):
            draw.multiline_text((left - x0, top - y0), text, fill=255, font=font,
                                stroke_width=stroke_width, stroke_fill=255)
    m = torch.from_numpy(np.asarray(canvas) == 0)[None, None]
    if not m.any():
        raise DipkitError("the text covers the whole image, leaving no known pixel; use a "
                          "smaller font_size")
    return m
