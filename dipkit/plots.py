"""Figures for runs: PSNR and ratio curves with the peak and the stop marked, band curves,
image grids with the PSNR under each image, spectrum-ratio maps.

Every function draws on a Matplotlib ``Axes`` (made when not given) and returns it, so figures
compose: ``fig, axes = plt.subplots(1, 2); psnr_curve(run, ax=axes[0]); band_curves(run, ax=axes[1])``.
Ordered quantities (bands, layers) take perceptually ordered maps (viridis) that survive gray
printing; categories (methods, conditions) take a colour-blind-safe qualitative palette with a
line style each (:func:`categorical`).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .fit import Run
from .images import check_image, rgb_to_gray, to_numpy
from .metrics import psnr as psnr_metric
from .metrics import ssim as ssim_metric
from .spectral import spectrum_ratio

__all__ = ["psnr_curve", "band_curves", "ratio_curve", "image_grid", "spectrum_ratio_maps",
           "mark_steps", "band_colors", "spectral_norm_curves",
           "mark_detections", "log_spectra", "categorical", "crop_box", "OKABE_ITO", "LINE_STYLES", "MIN_ZOOM"]


def _axes(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 3.5))[1]


#: Okabe & Ito's colour-blind-safe qualitative palette (black first), for lines that are
#: categories (methods, conditions), not an ordered quantity.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442")
#: Line styles that stay distinct in grayscale, cycled with the palette.
LINE_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)))
#: The least width (pixels) of a zoomed crop in a figure: smaller ones show too little to judge.
MIN_ZOOM = 48


def categorical(n: int) -> list:
    """Styles for ``n`` categorical lines: dicts with ``color`` and ``ls`` for ``ax.plot(**style)``.

    Colours from :data:`OKABE_ITO` and line styles from :data:`LINE_STYLES`, both cycled, so that
    lines differ by hue for colour readers and by dash pattern in grayscale and for colour-blind
    readers. Use a sequential map (:func:`band_colors`) only for ordered quantities.

    >>> [s["ls"] for s in categorical(3)]
    ['-', '--', '-.']
    """
    if not (isinstance(n, int) and n >= 0):
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return [{"color": OKABE_ITO[i % len(OKABE_ITO)], "ls": LINE_STYLES[i % len(LINE_STYLES)]} for i in range(n)]


def crop_box(height: int, width: int, top: float, left: float, side: float) -> tuple:
    """A square crop ``(top, left, size, size)`` in pixels for :func:`image_grid`'s ``zoom``/``box``.

    ``top``, ``left`` and ``side`` are fractions of the image's height and width (so one crop
    fits every profile's size); the side is at least :data:`MIN_ZOOM` pixels and the crop is
    moved inside the image where it would stick out.

    >>> crop_box(64, 64, 0.11, 0.27, 0.375)     # 24 pixels would be too small: 48
    (7, 16, 48, 48)
    >>> crop_box(512, 512, 0.11, 0.27, 0.375)
    (56, 138, 192, 192)
    """
    size = min(max(MIN_ZOOM, int(round(side * min(height, width)))), height, width)
    t = min(max(0, int(round(top * height))), height - size)
    l = min(max(0, int(round(left * width))), width - size)
    return t, l, size, size


def band_colors(n_bands: int = 5):
    """One colour per band, dark (low frequency) to light (high frequency)."""
    return plt.get_cmap("viridis")(np.linspace(0.0, 0.9, n_bands))


def mark_steps(ax, run: Run, *, peak: bool = True, stop: bool = True) -> None:
    """Draw vertical lines at the oracle peak (dashed) and the rule's stop (dotted) of ``run``."""
    if peak and run.best_step is not None:
        ax.axvline(run.best_step, color="0.3", ls="--", lw=1, label=f"oracle peak (step {run.best_step})")
    if stop and run.stop_step is not None:
        ax.axvline(run.stop_step, color="crimson", ls=":", lw=1.5, label=f"stop (step {run.stop_step})")


def psnr_curve(runs, ax=None, *, marks: bool = True, baseline: Optional[float] = None):
    """PSNR (dB) against the clean image over the steps of one run or a dict ``{label: run}``.

    ``baseline`` draws a horizontal line (e.g. the PSNR of the noisy observation).
    """
    ax = _axes(ax)
    runs = runs if isinstance(runs, Mapping) else {"DIP": runs}
    for style, (label, run) in zip(categorical(len(runs)), runs.items()):
        if run.history.psnr is None:
            raise ValueError(f"run {label!r} has no PSNR history: fit it with clean=")
        color = style["color"]
        ax.plot(run.history.step, run.history.psnr, **style, lw=1.3, label=label)
        if marks and len(runs) == 1:
            mark_steps(ax, run)
        elif marks and run.best_step is not None:
            ax.plot(run.best_step, run.best_psnr, "o", color=color, ms=4)
    if baseline is not None:
        ax.axhline(baseline, color="0.5", lw=1, ls="-.", label=f"observation ({baseline:.2f} dB)")
    ax.set(xlabel="optimizer step", ylabel="PSNR vs clean (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def band_curves(run: Run, ax=None, *, marks: bool = True, title: Optional[str] = None):
    """The frequency-band correspondence of each band (low → high) over the steps."""
    ax = _axes(ax)
    bands = run.history.bands
    if bands is None:
        raise ValueError("this run has no band history: fit it with probes=('bands', ...)")
    for k, color in enumerate(band_colors(bands.shape[1])):
        ax.plot(run.history.step, bands[:, k], color=color, lw=1.3,
                label=f"band {k + 1}" + (" (lowest)" if k == 0 else " (highest)" if k == bands.shape[1] - 1 else ""))
    if marks:
        mark_steps(ax, run)
    ax.set(xlabel="optimizer step", ylabel="FBC (fraction of |ŷ| matched)", ylim=(0, 1.02))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return ax


def ratio_curve(run: Run, ax=None, *, marks: bool = True):
    """The blurriness / sharpness ratio ρ (dimensionless) over the steps."""
    ax = _axes(ax)
    if run.history.ratio is None:
        raise ValueError("this run has no ratio history: fit it with probes=('ratio', ...)")
    ax.plot(run.history.step, run.history.ratio, color="0.2", lw=1.3, label="ρ = blur / sharpness")
    if marks:
        mark_steps(ax, run)
    ax.set(xlabel="optimizer step", ylabel="ρ (dimensionless)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def _show(ax, image: torch.Tensor, title: str = "") -> None:
    arr = np.clip(to_numpy(image), 0, 1)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _grid_title(label: str, image: torch.Tensor, clean: Optional[torch.Tensor], ssim: bool) -> str:
    """``label``, with the PSNR (and SSIM) against ``clean``; the clean image itself is 'the reference'."""
    if clean is None:
        return label
    value = float(psnr_metric(image, clean)[0])
    if not np.isfinite(value):
        return f"{label}\n(the reference)"
    title = f"{label}\n{value:.2f} dB"
    return title + (f", SSIM {float(ssim_metric(image, clean)[0]):.3f}" if ssim else "")


def image_grid(images: Mapping[str, torch.Tensor], clean: Optional[torch.Tensor] = None, *,
               ncols: Optional[int] = None, zoom: Optional[Sequence[int]] = None, size: float = 2.6,
               ssim: bool = False, box: Optional[Sequence[int]] = None):
    """Show images side by side, each titled with its PSNR against ``clean`` when given.

    ``zoom = (top, left, height, width)`` shows that crop of every image instead (pixels); the
    PSNR (and SSIM) in the titles stay those of the whole image. ``ssim=True`` adds the SSIM to
    the titles (needs ``clean``). ``box = (top, left, height, width)`` outlines that region on
    every image (e.g. the crop of a zoomed grid that follows). Returns the figure.
    """
    if ssim and clean is None:
        raise ValueError("ssim=True needs the clean image: pass clean=")
    if zoom is not None and min(zoom[2], zoom[3]) < MIN_ZOOM:
        raise ValueError(f"a zoom of {zoom[3]}×{zoom[2]} pixels shows too little to judge; use at least "
                         f"{MIN_ZOOM}×{MIN_ZOOM} (zoom = (top, left, height, width))")
    n = len(images)
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax, (label, image) in zip(axes.flat, images.items()):
        title = _grid_title(label, image, clean, ssim)
        if zoom is not None:
            t, l, h, w = zoom
            image = image[..., t:t + h, l:l + w]
        _show(ax, image, title)
        if box is not None:
            t, l, h, w = box
            ax.add_patch(plt.Rectangle((l - 0.5, t - 0.5), w, h, fill=False, color="crimson", lw=1.2))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def spectrum_ratio_maps(outputs: Mapping[str, torch.Tensor], observation: torch.Tensor, *,
                        size: float = 2.6, n_bands: int = 5):
    """The clipped ratio ``min(1, |f̂| / |ŷ|)`` of each output, centred (DC in the middle), with
    the band rings drawn. Returns the figure."""
    n = len(outputs)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.8, size + 0.4), squeeze=False)
    im = None
    for ax, (label, out) in zip(axes.flat, outputs.items()):
        r = spectrum_ratio(out, observation)[0].cpu().numpy()
        h, w = r.shape
        im = ax.imshow(r, cmap="viridis", vmin=0, vmax=1, extent=(-0.5, 0.5, 0.5, -0.5))
        for k in range(1, n_bands + 1):
            radius = 0.5 * k / n_bands * (2 * (w // 2) / w)
            ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="white", lw=0.6, alpha=0.7))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("frequency (cycles/pixel)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("frequency (cycles/pixel)", fontsize=8)
    fig.colorbar(im, ax=list(axes.flat), shrink=0.8, label="min(1, |f̂| / |ŷ|)")
    return fig


def spectral_norm_curves(recorder, ax=None, *, lipschitz: Optional[float] = None, raw: bool = True,
                         title: Optional[str] = None):
    """Spectral norm of each Lipschitz-controlled layer over the steps of a fit.

    ``recorder`` is a :class:`dipkit.recorders.SpectralNormRecorder` that watched the fit. Solid
    lines: the effective norms ``min(‖W‖₂, λ)`` that the forward pass uses; dashed (``raw=True``):
    the norms ``‖W‖₂`` of the parameters that Adam updates. Layers are coloured from the first
    (dark) to the last (light). ``lipschitz`` draws the bound λ as a horizontal line.
    """
    ax = _axes(ax)
    steps, names, eff = recorder.array(effective=True)
    colors = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, len(names)))
    for i, (color, name) in enumerate(zip(colors, names)):
        label = "first layer" if i == 0 else "last layer" if i == len(names) - 1 else None
        ax.plot(steps, eff[:, i], color=color, lw=1.2, label=label)
    if raw:
        _, _, raw_values = recorder.array(effective=False)
        for i, color in enumerate(colors):
            ax.plot(steps, raw_values[:, i], color=color, lw=0.8, ls="--",
                    label="raw ‖W‖₂ (dashed)" if i == 0 else None)
    if lipschitz is not None:
        ax.axhline(lipschitz, color="crimson", lw=1, ls=":", label=f"λ = {lipschitz:g}")
    ax.set(xlabel="optimizer step", ylabel="spectral norm (largest singular value)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


#: Line styles of :func:`mark_detections`, one per monitored rule (distinct in gray print too).
_DETECTION_STYLES = [("crimson", ":"), ("tab:blue", "-."), ("darkorange", (0, (5, 2))), ("0.45", (0, (1, 3)))]


def mark_detections(ax, run: Run, names: Optional[Sequence[str]] = None):
    """Draw a vertical line at the step each monitored stopping rule selected.

    ``run.detections`` holds, for every rule passed to :func:`dipkit.fit` as ``monitor=``, the step
    whose output the rule selected (the step it fired at for the paper's rule, the
    minimum-variance step for ES-WMV). ``names`` picks and orders the rules (default: all); rules
    that never fired are skipped. Each line is labelled ``"name (step s)"``, and the legend is
    redrawn. Returns ``ax``.
    """
    names = list(run.detections) if names is None else list(names)
    for (color, ls), name in zip(_DETECTION_STYLES * (len(names) // len(_DETECTION_STYLES) + 1), names):
        d = run.detections[name]
        if d.step is None:
            continue
        ax.axvline(d.step, color=color, ls=ls, lw=1.5, label=f"{name} (step {d.step})")
    ax.legend(fontsize=8)
    return ax


def log_spectra(images: Mapping[str, torch.Tensor], *, size: float = 2.6, vmin: Optional[float] = None,
                vmax: Optional[float] = None):
    """The centred log-magnitude spectrum ``log10 |F(gray image)|`` of each image, side by side.

    Images (1, C, H, W) in [0, 1] are reduced to gray with the paper's weights; the spectrum is
    the orthonormal 2-D FFT (white noise of standard deviation ``s`` has magnitudes near
    ``0.89 s`` everywhere), zero frequency in the middle, axes in cycles/pixel from −0.5 to 0.5. One
    colour scale for all panels (``vmin``/``vmax`` in log10 units; default: the 1st and 99.9th
    percentiles of all of them). Periodic patterns show as peaks: an 8-pixel block grid at
    multiples of 1/8 cycles/pixel along both axes. Returns the figure.
    """
    logs = {}
    for label, image in images.items():
        image = check_image(image, f"image {label!r}")
        g = rgb_to_gray(image if image.ndim == 4 else image[None])[0, 0].double().cpu()
        mag = torch.fft.fftshift(torch.fft.fft2(g, norm="ortho")).abs()
        logs[label] = torch.log10(mag + 1e-8).numpy()
    values = np.concatenate([a.ravel() for a in logs.values()])
    lo = float(np.percentile(values, 1)) if vmin is None else vmin
    hi = float(np.percentile(values, 99.9)) if vmax is None else vmax
    n = len(logs)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 1.0, size + 0.6), squeeze=False, layout="constrained")
    im = None
    for ax, (label, a) in zip(axes.flat, logs.items()):
        h, w = a.shape
        # pixel k of the shifted spectrum is frequency (k - N//2)/N cycles/pixel
        extent = (-(w // 2 + 0.5) / w, (w - w // 2 - 0.5) / w, (h - h // 2 - 0.5) / h, -(h // 2 + 0.5) / h)
        im = ax.imshow(a, cmap="magma", vmin=lo, vmax=hi, extent=extent, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("horizontal frequency (cycles/pixel)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes.flat[0].set_ylabel("vertical frequency (cycles/pixel)", fontsize=7)
    fig.colorbar(im, ax=list(axes.flat), shrink=0.8, label="log10 |FFT| (orthonormal)")
    return fig
