"""Noise levels for the discrepancy principle: the σ of an observation's error, per task.

:class:`dipkit.stopping.Discrepancy` stops a fit once the residual per observed value,
``mean((A f − y)²)``, falls to ``τ·σ²``. It needs σ, the standard deviation of the error of the
observation y about the clean image x, in intensity units of [0, 1] images:

========================  =========================================================================
degradation               σ (:func:`noise_sigma`)
========================  =========================================================================
GaussianNoise             its known ``sigma``; or estimated from y (``estimate=True``: Donoho's
                          wavelet MAD, :func:`dipkit.baselines.estimate_noise`)
JPEG                      the RMS of the quantisation error y − x, derived from y and the quality
                          (:func:`jpeg_error_sigma`)
Inpainting, Identity      none: a noise-free observation has no noise level; use the held-out rule
========================  =========================================================================

The JPEG error is not noise that was added: it is what the encoder's quantisation of the 8×8
block DCT coefficients threw away. :func:`jpeg_error_sigma` estimates its RMS from the decoded
image alone, from which coefficients survived quantisation and a model of the coefficients of
natural images (its docstring has the derivation); :func:`jpeg_quant_tables` gives the IJG
(libjpeg) quantisation tables that Pillow writes at a quality.

Examples
--------
>>> import dipkit
>>> clean = dipkit.images.sample("camera", size=128)
>>> jpeg = dipkit.degradations.JPEG(10)
>>> y = jpeg.observe(clean)
>>> sigma = noise_sigma(jpeg, y)                       # from y and the quality alone
>>> true = float(((y - clean) ** 2).mean().sqrt())     # needs the clean image
>>> 0.8 < sigma / true < 1.25
True
>>> rule = dipkit.stopping.Discrepancy(sigma)
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from .errors import DipkitError, ShapeError
from .images import check_image

__all__ = ["jpeg_quant_tables", "jpeg_error_sigma", "noise_sigma",
           "laplace_zero_bin_moment", "laplace_bin_moment"]

# The example tables of the JPEG standard (ITU-T T.81, Annex K, tables K.1 and K.2), natural
# (row-major) order; libjpeg scales them with the quality (jcparam.c, jpeg_set_quality).
_LUMINANCE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.int64)
_CHROMINANCE = np.array([
    [17, 18, 24, 47, 99, 99, 99, 99],
    [18, 21, 26, 66, 99, 99, 99, 99],
    [24, 26, 56, 99, 99, 99, 99, 99],
    [47, 66, 99, 99, 99, 99, 99, 99]] + [[99] * 8] * 4, dtype=np.int64)

# JFIF's YCbCr -> RGB: R = Y + 1.402 Cr', G = Y − 0.344136 Cb' − 0.714136 Cr', B = Y + 1.772 Cb'
# (Cb' = Cb − 128). Independent errors of variance vY, vCb, vCr give an RGB error of mean
# variance (over the 3 channels) vY + _W_CB·vCb + _W_CR·vCr.
_W_CB = (0.344136 ** 2 + 1.772 ** 2) / 3
_W_CR = (1.402 ** 2 + 0.714136 ** 2) / 3

_SLOPE = -1.5          # decay of the coefficient scale with the frequency radius, when not fitted
_MIN_SEEN = 10         # frequencies seen (some block kept them) needed to fit that decay
_CONFIDENCE = math.log(2)   # expected survivors of an unseen frequency: Poisson median bound
_SCALES = np.exp(np.linspace(math.log(1e-2), math.log(1e3), 25))   # grid of block scales s_j


def _check_quality(quality) -> int:
    if not (isinstance(quality, (int, np.integer)) and not isinstance(quality, bool)
            and 1 <= quality <= 100):
        raise DipkitError(f"JPEG quality must be an integer in 1..100 (the paper uses 10), "
                          f"got {quality!r}")
    return int(quality)


def jpeg_quant_tables(quality: int) -> tuple:
    """The quantisation tables that libjpeg (and so Pillow) uses at a JPEG quality.

    Parameters
    ----------
    quality : int
        1..100, as in ``PIL.Image.save(..., quality=quality)`` and
        :class:`dipkit.degradations.JPEG`.

    Returns
    -------
    (luminance, chrominance) : two int64 arrays (8, 8), natural (row-major) order
        Entry ``[u, v]`` is the step Q of the DCT coefficient of vertical frequency u and
        horizontal frequency v, in 0..255 pixel units of the orthonormal 8×8 DCT.

    Notes
    -----
    The example tables of the JPEG standard (ITU-T T.81, Annex K) scaled as libjpeg's
    ``jpeg_set_quality`` does: ``scale = 5000 // q`` for q < 50, else ``200 − 2q``; each entry
    is ``clip((base·scale + 50) // 100, 1, 255)`` (baseline, 8-bit tables). Pillow writes
    exactly these for ``quality=q`` (``Image.open(jpeg).quantization`` returns them in natural
    order, the same as here).

    Examples
    --------
    >>> lum, chrom = jpeg_quant_tables(50)
    >>> int(lum[0, 0]), int(chrom[7, 7])
    (16, 99)
    >>> int(jpeg_quant_tables(10)[0][0, 0])
    80
    """
    q = _check_quality(quality)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return tuple(np.clip((base * scale + 50) // 100, 1, 255) for base in (_LUMINANCE, _CHROMINANCE))


# ---------------------------------------------------------------------------------------------
# Moments of a quantised Laplacian coefficient
# ---------------------------------------------------------------------------------------------

def laplace_zero_bin_moment(half_width, scale):
    """E[c² | |c| < a] for a Laplacian coefficient c of scale b (density ∝ exp(−|c|/b)).

    The mean square of a coefficient that quantisation set to zero: with a step Q the zero bin
    is |c| < a = Q/2.

    Parameters
    ----------
    half_width : float or array
        a > 0 (the same units as the coefficient).
    scale : float or array
        b > 0; broadcast with ``half_width``.

    Returns
    -------
    float or ndarray
        ``∫₀ᵃ c² e^{−c/b} dc / ∫₀ᵃ e^{−c/b} dc = b²·[2 − e^{−t}(t² + 2t + 2)] / (1 − e^{−t})``
        with t = a/b. It rises from 2b² (t → ∞: the bin holds the whole Laplacian) to a²/3
        (t → 0: flat within the bin, the uniform Q²/12).

    Notes
    -----
    The numerator ``∫₀ᵗ s² e^{−s} ds = 2 − e^{−t}(t² + 2t + 2)`` is 2·P(3, t), the regularised
    lower incomplete gamma function, which is computed without cancellation for small t.

    Examples
    --------
    >>> round(float(laplace_zero_bin_moment(1.0, 1e6)), 6)      # flat: a²/3
    0.333333
    >>> round(float(laplace_zero_bin_moment(1e6, 1.0)), 6)      # untruncated: 2b²
    2.0
    """
    from scipy.special import gammainc

    a, b = np.broadcast_arrays(np.asarray(half_width, float), np.asarray(scale, float))
    t = np.maximum(a / b, 1e-12)
    out = a * a * 2 * gammainc(3, t) / (t * t * -np.expm1(-t))
    return out if out.ndim else float(out)


def laplace_bin_moment(half_width, scale):
    """E[(c − c₀)²] over a bin c₀ ± a of a Laplacian coefficient outside the zero bin.

    The mean square quantisation error of a coefficient that survived: within a bin away from 0
    the density is ∝ exp(−u/b) (u = c − c₀, the same for every bin: the exponential forgets),
    so ``E = b²·(t² + 2 − 2t·coth t)`` with t = a/b: a²/3 (the uniform Q²/12) when the bin is
    flat (t → 0), rising to a² as the density piles up at the bin's inner edge (t → ∞).

    Parameters
    ----------
    half_width, scale : float or array
        a = Q/2 and b, both > 0, broadcast.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> round(float(laplace_bin_moment(1.0, 1e6)), 6)
    0.333333
    """
    a, b = np.broadcast_arrays(np.asarray(half_width, float), np.asarray(scale, float))
    t = a / b
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        exact = a * a * (1 + 2 / (t * t) - 2 / (t * np.tanh(t)))
    out = np.where(t < 1e-2, a * a * (1 / 3 + 2 * t * t / 45), exact)
    return out if out.ndim else float(out)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for the small products here, without BLAS: its threads, on a busy machine, made
    them 25× slower than this single-threaded loop."""
    return np.einsum("ij,jk->ik", a, b, optimize=False)


def _log1mexp(x):
    """log(1 − e^{−x}) for x > 0."""
    return np.log(-np.expm1(-x))


# ---------------------------------------------------------------------------------------------
# The error of one quantised plane
# ---------------------------------------------------------------------------------------------

def _block_dct(plane: np.ndarray) -> np.ndarray:
    """Orthonormal 8×8 DCT of the level-shifted plane's complete blocks: (N, 64)."""
    from scipy.fft import dctn

    h, w = plane.shape[0] // 8 * 8, plane.shape[1] // 8 * 8
    blocks = (plane[:h, :w] - 128.0).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    return dctn(blocks.reshape(-1, 8, 8), axes=(1, 2), norm="ortho").reshape(-1, 64)


def _laplace_frequency(p: float, step: float) -> float:
    """E[e²] of one frequency under a single Laplacian whose survival probability is p."""
    if p <= 0:
        return 0.0
    a = step / 2
    if p >= 1:
        return step * step / 12
    b = -a / math.log(p)
    return p * laplace_bin_moment(a, b) + (1 - p) * laplace_zero_bin_moment(a, b)


_RADIUS = np.hypot(*np.meshgrid(np.arange(8), np.arange(8), indexing="ij")).ravel()[1:]


def _fit_mixture(levels: np.ndarray, steps: np.ndarray, iterations: int = 40):
    """Fit the scale mixture to the quantised AC levels by EM.

    ``levels`` (N, K) holds |round(c/Q)| per block and frequency, ``steps`` (K,) the Q's. The
    model: c_jk ~ Laplace(s_j·g_k), the block scale s_j from a grid with weights w. Returns the
    posterior over the grid per block (N, L) and g (K,).
    """
    from scipy.sparse import csr_matrix

    n, k = levels.shape
    nz = csr_matrix((levels > 0).astype(float))             # sparse: most levels are 0
    mh = csr_matrix((levels - 0.5) * (levels > 0))          # (m − ½) of the survivors
    seen = np.asarray(nz.sum(axis=0)).ravel() > 0
    scales = _SCALES
    w = np.full(len(scales), 1 / len(scales))
    p = np.asarray(nz.mean(axis=0)).ravel()
    log_g = np.log(np.where(seen, -steps / (2 * np.log(np.clip(p, 1e-12, 1 - 1e-9))),
                            steps / (2 * math.log(n + 1))))
    searches = (np.linspace(-4, 4, 17), np.linspace(-0.5, 0.5, 17))
    def posterior(log_g, w):
        b = scales[:, None] * np.exp(log_g)[None, :]                      # (L, K)
        zero = _log1mexp(steps / (2 * b))                                  # log P(level 0)
        # log P(level m ≥ 1) = −(m − ½)·Q/b + log(1 − e^{−Q/b}) (the sign's ½ dropped)
        loglik = zero.sum(axis=1)[None, :] + nz @ (_log1mexp(steps / b) - zero).T - mh @ (steps / b).T
        logpost = loglik + np.log(w + 1e-300)
        top = logpost.max(axis=1, keepdims=True)
        post = np.exp(logpost - top)
        total = post.sum(axis=1, keepdims=True)
        return post / total, float((top[:, 0] + np.log(total[:, 0])).sum())

    previous = None
    for _ in range(iterations):
        post, value = posterior(log_g, w)
        if previous is not None and abs(value - previous) <= 1e-5 * abs(previous):
            break
        previous = value
        w = post.mean(axis=0)
        # M-step for g_k: maximise the expected log-likelihood, a 1-D search per frequency
        w1 = (nz.T @ post).T
        w0 = post.sum(axis=0)[:, None] - w1
        s = (mh.T @ post).T
        for grid in searches:
            cand = log_g[None, :] + grid[:, None]                                    # (G, K)
            bc = scales[None, :, None] * np.exp(cand)[:, None, :]                    # (G, L, K)
            objective = (w0 * _log1mexp(steps / (2 * bc)) + w1 * _log1mexp(steps / bc)
                         - s * steps / bc).sum(axis=1)
            best = cand[objective.argmax(axis=0), np.arange(k)]
            # unseen frequency: the largest g that expects at most ln 2 survivors in n blocks
            expected = n * (w[None, :, None] * np.exp(-steps / (2 * bc))).sum(axis=1)
            cap = cand[np.clip((expected <= _CONFIDENCE).sum(axis=0) - 1, 0, len(grid) - 1),
                       np.arange(k)]
            log_g = np.where(seen, best, cap)
        log_g = np.where(seen, log_g, np.minimum(log_g, _power_law(log_g, seen)))
    else:
        post, _ = posterior(log_g, w)
    return post, np.exp(log_g)


def _power_law(log_g: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """log g over all AC frequencies from a power law in the radius fitted to the seen ones.

    The slope is fitted when at least ``_MIN_SEEN`` frequencies were seen (clipped to
    [−4, −0.5]: a spectrum that decays), else it is ``_SLOPE``; the intercept always comes from
    the seen frequencies.
    """
    x, y = np.log(_RADIUS[seen]), log_g[seen]
    slope = _SLOPE
    if seen.sum() >= _MIN_SEEN and np.ptp(x) > 0:
        slope = float(np.clip(np.polyfit(x, y, 1)[0], -4.0, -0.5))
    return float(np.mean(y - slope * x)) + slope * np.log(_RADIUS)


def _plane_error(plane: np.ndarray, table: np.ndarray, model: str) -> float:
    """Mean square quantisation error per sample of one plane (0..255 units²)."""
    coef = _block_dct(plane)
    steps = table.astype(float).ravel()
    levels = np.abs(np.rint(coef / steps))
    n = levels.shape[0]
    p = (levels >= 1).mean(axis=0)
    energy = _laplace_frequency(float(p[0]), steps[0])                    # DC: one Laplacian
    ac, ac_steps = levels[:, 1:], steps[1:]
    if model == "laplace":
        for pk, qk in zip(p[1:], ac_steps):
            energy += _laplace_frequency(float(pk) if pk > 0 else 1 / n, qk)
    elif ac.any():
        post, g = _fit_mixture(ac, ac_steps)
        b = _SCALES[:, None] * g[None, :]
        a = ac_steps[None, :] / 2
        zero = _dot(post, laplace_zero_bin_moment(a, b))                       # (N, K)
        kept = _dot(post, laplace_bin_moment(a, b))
        energy += float(np.where(ac > 0, kept, zero).sum()) / n
    return energy / 64


# ---------------------------------------------------------------------------------------------
# Public estimators
# ---------------------------------------------------------------------------------------------

def jpeg_error_sigma(observation: torch.Tensor, quality: Optional[int] = None, *,
                     tables: Optional[Sequence] = None, model: str = "mixture") -> torch.Tensor:
    """The RMS of a JPEG image's compression error, estimated from the decoded image alone.

    Parameters
    ----------
    observation : Tensor (N, C, H, W) or (C, H, W), float in [0, 1], C = 1 or 3
        Decoded JPEG images (e.g. :meth:`dipkit.degradations.JPEG.observe`, or a JPEG file
        loaded with :func:`dipkit.images.load`), 8-bit values /255, the block grid starting at
        the top-left pixel. C = 1: a gray JPEG; C = 3: a YCbCr JPEG with 4:2:0 chroma
        subsampling (Pillow's default), decoded to RGB.
    quality : int, optional
        The IJG quality 1..100 it was saved at (:func:`jpeg_quant_tables`).
    tables : (luminance, chrominance), optional
        The quantisation tables instead of ``quality`` (8×8 natural order, e.g.
        ``PIL.Image.open(path).quantization[0]`` and ``[1]`` reshaped to (8, 8)): for files
        from other encoders.
    model : {'mixture', 'laplace'}
        'mixture' (the estimate) or 'laplace' (one Laplacian per frequency: an upper bound; see
        Notes).

    Returns
    -------
    Tensor (N,), float32, on the CPU
        σ per image in intensity units of [0, 1] (×255 for 0..255), the RMS over all pixels
        and channels: ``σ² ≈ mean((y − x)²)`` for the clean image x, what the residual of
        :class:`dipkit.stopping.Discrepancy` compares with. The same convention as
        :func:`dipkit.baselines.estimate_noise`.

    Raises
    ------
    DipkitError
        Neither or both of ``quality`` and ``tables``; a bad quality or model.
    ShapeError
        Not 1 or 3 channels, or no complete 8×8 block (16×16 for colour).

    Notes
    -----
    **Parseval.** JPEG quantises the orthonormal 8×8 DCT coefficients c_k (k = 0..63, of the
    pixel values ×255 − 128) of each block to ``Q_k·round(c_k/Q_k)``. The DCT is orthonormal,
    so a block's pixel error energy equals its coefficient error energy and, per pixel,
    ``σ² = (1/64) Σ_k E[e_k²] + 1/12``, the last term the decoder's rounding to 8 bits.

    **The two kinds of coefficient.** A coefficient that survived (decoded level ≠ 0) has an
    error within its bin, of mean square Q_k²/12 if c is flat over the bin. One quantised to
    zero had |c_k| < Q_k/2 and its error is c_k itself. The levels are read from the
    observation: ``round(DCT(block)/Q_k)`` recovers the encoder's levels (the decoder's 8-bit
    rounding moves a coefficient by ~0.3, far below Q_k/2 at the qualities of interest; on
    the test images the survivor counts per frequency agree to 0.4 %).

    **One Laplacian per frequency** (``model='laplace'``). Model c_k as Laplacian of scale
    b_k (density ∝ e^{−|c|/b_k}); the fraction p_k of blocks where frequency k survived
    estimates ``P(|c| ≥ Q_k/2) = exp(−Q_k/(2 b_k))``, so ``b_k = −Q_k/(2 ln p_k)``, and
    ``E[e_k²] = p_k·B(Q_k/2, b_k) + (1 − p_k)·Z(Q_k/2, b_k)`` with the zero-bin moment
    ``Z(a, b) = E[c² | |c| < a] = b²[2 − e^{−t}(t² + 2t + 2)]/(1 − e^{−t})``, t = a/b
    (:func:`laplace_zero_bin_moment`: ∫₀ᵃ c² e^{−c/b} dc / ∫₀ᵃ e^{−c/b} dc) and the bin
    moment B (:func:`laplace_bin_moment`, → Q²/12 for a flat bin). A frequency no block kept
    (p_k = 0) takes the bound p_k ≤ 1/N (N blocks), b_k ≤ Q_k/(2 ln N). The DC coefficient is
    always treated this way (its distribution is broad: B → Q²/12).

    This overestimates: Z as a function of p is concave, so for coefficients that are a
    *mixture* of Laplacians of different scales (busy and flat blocks: natural images are
    such mixtures, heavy-tailed) one Laplacian fitted to the mixture's p gives more than the
    mixture (Jensen): an upper bound, 1.1–3× the true σ on the gray test images (1.5–5× on
    colour), much of it from the bound at the frequencies no block kept.

    **Scale mixture** (``model='mixture'``, the default). Let block j have its own scale:
    c_jk ~ Laplace(s_j·g_k), s_j drawn from a distribution w on a log grid (the scale-mixture
    view of natural images' coefficients), g_k a spectral envelope. Fit w and g to the levels
    of all blocks by expectation-maximisation (the likelihood of a level m: 1 − e^{−a/b} for
    m = 0, e^{−(m−½)Q/b}(1 − e^{−Q/b}) for m ≥ 1, sign aside), then add up each block's
    posterior expected error: Z(Q_k/2, s·g_k) where its level is 0, B(Q_k/2, s·g_k) where not,
    averaged over its posterior of s. A flat block (no AC survivors) so gets small errors, a
    busy one large. An AC frequency no block kept gets g_k from a power law in the radius
    √(u² + v²) fitted to log g_k of the frequencies seen (natural images' spectra decay so),
    capped so that the blocks expect at most ln 2 survivors (the median bound of a Poisson
    count observed to be 0). The slope is fitted when at least 10 frequencies were seen
    (clipped to [−4, −0.5]; −0.6 to −1.6 on the test images' luminance), else taken as −1.5:
    slopes fitted to a few frequencies (chroma at low quality) scattered from −0.25 to −2.1
    and overshot. A plane without any AC survivor contributes no AC error (a lower bound:
    e.g. the chroma of a gray image).

    **Colour.** The RGB observation is converted to YCbCr (JFIF); Y gets the luminance table,
    Cb and Cr are averaged over 2×2 pixels (4:2:0) and get the chrominance table. Errors of
    variance vY, vCb, vCr, independent, give the RGB channels an error of mean variance
    ``vY + 1.086·vCb + 0.825·vCr`` (the squared entries of JFIF's YCbCr→RGB matrix, averaged
    over R, G, B). The approximation: the chroma error at full resolution is taken as the
    quantisation error of the subsampled chroma; the chroma detail finer than the 2×2 grid,
    lost to the subsampling itself, is not seen in the observation and is left out, so the
    colour σ reads low on images with fine colour detail (set9's Baboon and Peppers: 0.80–0.96
    of the truth at q = 10–30; the Kodak images lose under 2 % this way).

    Only complete blocks enter the statistics (complete 16×16 macroblocks for colour): the
    partial blocks at the right and bottom edges, which the encoder pads, are assumed to share
    the image's error level.

    **Accuracy** (``tests/test_noiselevel.py``). At q = 10, 20, 30 the mixture estimate was
    0.83–1.40× the true RMS error on 31 gray images (classic5, bernoulli11, set9 and
    scikit-image's samples in gray; mean 1.07) and 0.80–1.12× on 14 colour images (set9,
    samples; mean 0.98); from q = 1 to 95 on six gray images, 0.83–1.22×. The uniform model
    (every coefficient's error Q_k²/12, σ² = mean Q_k²/12) gives 2.6–8.4×. It reads high on
    strongly oriented texture (Barbara's stripes: 1.3–1.4×; one spectral envelope serves all
    blocks), and is rough on images under about 64×64 pixels (64 blocks).

    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("camera", size=128)
    >>> y = dipkit.degradations.JPEG(20).observe(clean)
    >>> sigma = jpeg_error_sigma(y, 20)
    >>> sigma.shape
    torch.Size([1])
    """
    if (quality is None) == (tables is None):
        raise DipkitError("give the JPEG quality (1..100) or its quantisation tables, one of them")
    if model not in ("mixture", "laplace"):
        raise DipkitError(f"model must be 'mixture' (the estimate) or 'laplace' (an upper bound), "
                          f"got {model!r}")
    if tables is None:
        lum, chrom = jpeg_quant_tables(quality)
    else:
        try:
            lum, chrom = (np.asarray(t, dtype=float).reshape(8, 8) for t in tables)
        except (TypeError, ValueError):
            raise DipkitError("tables must be a pair (luminance, chrominance) of 64 quantisation "
                              "steps each, in natural order") from None
        if not (np.all(lum >= 1) and np.all(chrom >= 1)):
            raise DipkitError("quantisation steps must be >= 1")
    x = check_image(observation, "observation", values=True)
    batch = x if x.ndim == 4 else x[None]
    c, h, w = batch.shape[1:]
    if c not in (1, 3):
        raise ShapeError(f"JPEG images are gray (1 channel) or RGB (3 channels), got {c} channels "
                         f"(shape {tuple(x.shape)})")
    side = 8 if c == 1 else 16
    if h < side or w < side:
        raise ShapeError(f"the observation {h}x{w} holds no complete {side}x{side} JPEG "
                         f"{'block' if c == 1 else 'macroblock'}; the error level cannot be read")
    pixels = np.rint(batch.detach().double().cpu().numpy() * 255)
    sigmas = []
    for img in pixels:
        if c == 1:
            var = _plane_error(img[0], lum, model)
        else:
            img = img[:, : h // 16 * 16, : w // 16 * 16]
            r, g, b = img
            luma = 0.299 * r + 0.587 * g + 0.114 * b
            cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128
            cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128
            var = _plane_error(luma, lum, model)
            for plane, weight in ((cb, _W_CB), (cr, _W_CR)):
                half = plane.reshape(plane.shape[0] // 2, 2, plane.shape[1] // 2, 2).mean(axis=(1, 3))
                var += weight * _plane_error(half, chrom, model)
        sigmas.append(math.sqrt(var + 1 / 12) / 255)
    return torch.tensor(sigmas, dtype=torch.float32)


def _pooled(sigmas: torch.Tensor) -> float:
    """One σ for a batch: the RMS of the per-image σ (the residual averages over all values)."""
    return float(sigmas.double().pow(2).mean().sqrt())


def noise_sigma(degradation, observation: torch.Tensor, *, estimate: bool = False) -> float:
    """The noise level σ of an observation, for :class:`dipkit.stopping.Discrepancy`.

    Parameters
    ----------
    degradation : Degradation
        How the observation was made: :class:`~dipkit.degradations.GaussianNoise`,
        :class:`~dipkit.degradations.JPEG`, or one of them inside
        :class:`~dipkit.degradations.HeldOut`.
    observation : Tensor (N, C, H, W) or (C, H, W), float in [0, 1]
    estimate : bool
        For Gaussian noise, estimate σ from the observation (Donoho's wavelet MAD,
        :func:`dipkit.baselines.estimate_noise`; needs PyWavelets) instead of taking the
        degradation's ``sigma``: for an already-noisy photo whose level is unknown. JPEG's σ is
        always estimated from the observation (:func:`jpeg_error_sigma` with the degradation's
        quality).

    Returns
    -------
    float
        σ in intensity units of [0, 1], > 0. For a batch, the RMS of the per-image values (the
        discrepancy residual averages over all of the batch's values).

    Raises
    ------
    DipkitError
        A noise-free degradation (inpainting, the identity): the residual can fall to 0 and
        the discrepancy principle says nothing; an unknown degradation; a Gaussian sigma of 0.

    Notes
    -----
    A known Gaussian sigma describes the noise before clipping to [0, 1]; clipping makes the
    error of nearly black or white pixels smaller, so on images with large such areas the
    residual may not reach σ² (use τ < 1 there, or ``estimate=True``).

    Examples
    --------
    >>> import dipkit
    >>> from dipkit.degradations import GaussianNoise, Inpainting, bernoulli_mask
    >>> clean = dipkit.images.sample("camera", size=64)
    >>> noise_sigma(GaussianNoise(25 / 255), GaussianNoise(25 / 255).observe(clean)) * 255
    25.0
    >>> noise_sigma(Inpainting(bernoulli_mask(64, 64)), clean)
    Traceback (most recent call last):
    ...
    dipkit.errors.DipkitError: the discrepancy principle needs noise, ...
    """
    from .degradations import JPEG, Degradation, GaussianNoise, HeldOut, Identity, Inpainting

    base = degradation.base if isinstance(degradation, HeldOut) else degradation
    if isinstance(base, Inpainting) or type(base) is Identity:
        what = "inpainting's known pixels are exact" if isinstance(base, Inpainting) else \
            "the identity observes the image exactly"
        raise DipkitError(f"the discrepancy principle needs noise, and {base!r} has none "
                          f"({what}): the residual can fall to 0 and its level says nothing "
                          f"about when to stop. Hold pixels out and stop on their error "
                          f"instead: degradation=dipkit.degradations.HeldOut({base!r}, "
                          f"fraction=0.05) with rule dipkit.stopping.HeldOutRule()")
    if isinstance(base, GaussianNoise):
        if estimate:
            from .baselines import estimate_noise
            sigma = _pooled(estimate_noise(check_image(observation, "observation", values=True)))
        else:
            sigma = float(base.sigma)
        if sigma <= 0:
            raise DipkitError(f"the noise level of {base!r} is 0: a noise-free observation has no "
                              f"discrepancy level; use dipkit.stopping.HeldOutRule with "
                              f"dipkit.degradations.HeldOut")
        return sigma
    if isinstance(base, JPEG):
        return _pooled(jpeg_error_sigma(observation, base.quality))
    known = "GaussianNoise, JPEG (optionally inside HeldOut)"
    if isinstance(base, Degradation):
        raise DipkitError(f"no noise model for {base!r}: noise_sigma knows {known}; give "
                          f"dipkit.stopping.Discrepancy the noise std of your degradation "
                          f"yourself, or use dipkit.stopping.HeldOutRule")
    raise DipkitError(f"degradation must be a dipkit Degradation ({known}), got "
                      f"{type(degradation).__name__}")
