"""Direct, slow NumPy/SciPy versions of the paper's probes: the test oracle and the benchmark baseline.

Each function follows PROTOCOL.md sections 4 and 5 step by step, the way the paper's public code
computes them (``numpy.fft``, ``scipy.signal.convolve2d``, nine zero-filled shifted copies, a full
sort), on one H x W gray float64 array. They are deliberately unoptimised and independent of
``dipkit``: the batched torch versions in ``dipkit.spectral`` and ``dipkit.sharpness`` are checked
against them.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import convolve2d

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def gray_reference(rgb_hwc):
    """Gray image (H, W) float64 of an (H, W, 3), (H, W, 1) or (H, W) image in [0, 1]."""
    x = np.asarray(rgb_hwc, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.shape[2] != 3:
        return x[:, :, 0]
    r, g, b = x[:, :, 0], x[:, :, 1], x[:, :, 2]
    return np.clip(GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b, 0, 1)


def fbc_reference(output_gray, observation_gray, n_bands=5):
    """Frequency-band correspondence of two (H, W) gray images: an array (n_bands,), low to high."""
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(np.asarray(output_gray, dtype=np.float64))))
    spectrum0 = np.abs(np.fft.fftshift(np.fft.fft2(np.asarray(observation_gray, dtype=np.float64))))
    ratio = np.clip(spectrum / (spectrum0 + 1e-8), 0, 1)
    h, w = ratio.shape
    rows, cols = np.ogrid[:h, :w]
    dist = np.sqrt((cols - w // 2) ** 2 + (rows - h // 2) ** 2)
    radius = w // 2
    inner = np.zeros((h, w), dtype=bool)
    bands = []
    for k in range(1, n_bands + 1):
        disk = dist <= radius * k / n_bands
        bands.append(ratio[disk & ~inner].mean())
        inner = disk
    return np.array(bands)


def _blur_direction(d_f, d_b):
    variation = np.maximum(0, d_f - d_b)
    return (d_f.sum() - variation.sum()) / d_f.sum()


def blur_reference(gray):
    """Crété-Roffet blur (filter size 9) of an (H, W) gray image, as the paper's code: a float."""
    img = np.asarray(gray, dtype=np.float64)
    h, w = img.shape
    box = np.ones((1, 9)) / 9
    blur_v = convolve2d(img, box, mode="same")  # along the width
    blur_h = convolve2d(img, box.T, mode="same")  # along the height

    def crop(a):
        return a[5 : h - 4, 5 : w - 4]

    def diff_w(a):
        return np.abs(convolve2d(a, [[1, -1]], mode="same"))[1:-1, 1:-1]

    def diff_h(a):
        return np.abs(convolve2d(a, [[1], [-1]], mode="same"))[1:-1, 1:-1]

    img, blur_v, blur_h = crop(img), crop(blur_v), crop(blur_h)
    b_v = _blur_direction(diff_w(img), diff_w(blur_v))
    b_h = _blur_direction(diff_h(img), diff_h(blur_h))
    return max(b_v, b_h)


def sharpness_reference(gray, sort="numpy"):
    """MLV sharpness (Bahrami & Kot 2014) of an (H, W) gray image, as the paper's code: a float.

    Maps with fewer than 1001 values use j = 2 .. (number of values - 1), as ``dipkit`` does (the
    paper's code fails there). ``sort="python"`` sorts with Python's ``sorted`` as the paper's
    code does (PROTOCOL section 5: the cost to beat); ``"numpy"`` with ``np.sort``. Same value.
    """
    img = np.asarray(gray, dtype=np.float64)
    h, w = img.shape
    centre = img[2 : h - 1, 2 : w - 1]
    shifted = []
    for r0, r1 in ((1, h - 2), (2, h - 1), (3, h)):
        for c0, c1 in ((1, w - 2), (2, w - 1), (3, w)):
            if (r0, c0) == (2, 2):
                continue
            canvas = np.zeros((h, w))
            canvas[r0:r1, c0:c1] = centre
            shifted.append(canvas[2 : h - 1, 2 : w - 1])
    mlv = np.max(np.stack(shifted) - centre, axis=0)
    if sort == "python":
        values = np.array(sorted(mlv.ravel().tolist(), reverse=True))
    else:
        values = np.sort(mlv.ravel())[::-1]
    j = np.arange(2, min(1001, values.size))
    weighted = values[j] * np.exp(-0.01 * j)
    return float(np.sqrt(np.mean(weighted**2)))


def ratio_reference(gray):
    """Blur / sharpness ratio of an (H, W) gray image: a float."""
    return blur_reference(gray) / sharpness_reference(gray)
