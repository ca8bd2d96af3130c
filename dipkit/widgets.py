"""Interactive explorers of runs (ipywidgets), with a static figure where nothing is live.

:func:`explore_run` scrubs through the outputs a fit kept (``fit(..., snapshot_every=...)``, plus
the oracle-best output): the output at the chosen step, its spectrum-ratio map and the band and
PSNR curves with the step marked. Where no front-end can drive a widget (a book build, nbconvert,
nbval, a script, or no ipywidgets) it returns a static figure of a few of those steps instead.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import torch

from .errors import DipkitError
from .fit import Run
from .metrics import psnr as psnr_metric
from .plots import _show, band_curves, psnr_curve
from .spectral import spectrum_ratio

__all__ = ["explore_run", "live_frontend"]


def live_frontend() -> bool:
    """Whether ipywidgets imports and a live front-end drives this IPython kernel.

    A front-end counts as live when the current request lets the kernel ask for input (JupyterLab,
    Notebook, VS Code) or in Colab; nbclient, nbconvert, nbval and Jupyter Book do not allow it.
    """
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    kernel = getattr(get_ipython(), "kernel", None)
    live = "google.colab" in sys.modules or bool(getattr(kernel, "_allow_stdin", False))
    return kernel is not None and live


def _frames(run: Run) -> dict:
    """The stored outputs by step: the snapshots, plus the oracle-best output at its step."""
    frames = dict(run.snapshots)
    if run.best is not None and frames:
        frames.setdefault(run.best_step, run.best)
    return frames


def _image_panels(ax_out, ax_ratio, run: Run, frames: dict, observation, clean, step: int):
    out = frames[step]
    title = f"output, step {step}" + (" (oracle peak)" if step == run.best_step else "")
    if clean is not None:
        title += f"\n{float(psnr_metric(out, clean)[0]):.2f} dB"
    _show(ax_out, out, title)
    r = spectrum_ratio(out, observation)[0].cpu().numpy()
    im = ax_ratio.imshow(r, cmap="viridis", vmin=0, vmax=1, extent=(-0.5, 0.5, 0.5, -0.5))
    n_bands, w = run.history.bands.shape[1], r.shape[1]
    for k in range(1, n_bands + 1):  # the band rings, radius floor(W/2) k / n pixels
        ax_ratio.add_patch(plt.Circle((0, 0), (w // 2) * k / n_bands / w, fill=False, color="white", lw=0.5))
    ax_ratio.set_title(f"min(1, |f̂| / |ŷ|), step {step}", fontsize=9)
    ax_ratio.set_xlabel("frequency (cycles/pixel)", fontsize=8)
    ax_ratio.set_ylabel("frequency (cycles/pixel)", fontsize=8)
    ax_ratio.tick_params(labelsize=7)
    return im


def _curves(ax_bands, ax_psnr, run: Run, steps: Sequence[int]):
    band_curves(run, ax=ax_bands)
    if run.history.psnr is not None:
        psnr_curve(run, ax=ax_psnr)
    else:  # no clean image: how closely the output fits the observation
        ax_psnr.plot(run.history.step, run.history.psnr_observation, color="0.2", lw=1.3)
        ax_psnr.set(xlabel="optimizer step", ylabel="PSNR vs observation (dB)")
    for ax in (ax_bands, ax_psnr):
        for i, s in enumerate(steps):
            ax.axvline(s, color="tab:orange", lw=1.2, alpha=0.8, label="shown step" if i == 0 else None)
        ax.legend(fontsize=7, ncol=2)


def _default_steps(run: Run, snaps: list) -> list:
    """The first snapshot after step 1, the oracle peak (when known), the middle snapshot, the last."""
    chosen = {next((s for s in snaps if s > 1), snaps[0]), snaps[len(snaps) // 2], snaps[-1]}
    return sorted(chosen | ({run.best_step} if run.best_step is not None else set()))


def explore_run(run: Run, observation: torch.Tensor, clean: Optional[torch.Tensor] = None, *,
                static: Optional[bool] = None, steps: Optional[Sequence[int]] = None):
    """Scrub through the stored outputs of ``run``: output, spectrum-ratio map, band and PSNR curves.

    Parameters
    ----------
    run : Run
        A fit with snapshots (``snapshot_every``) and the band probe (the default probes).
    observation : Tensor (1, C, H, W)
        The observation the run was fitted to: the reference of the spectrum ratio.
    clean : Tensor (1, C, H, W), optional
        The clean image, for the PSNR (dB) under each output.
    static : bool or None
        True: a static figure; False: an ipywidgets explorer (needs ipywidgets); None (default):
        the explorer when :func:`live_frontend`, else the figure.
    steps : sequence of int, optional
        Steps of the static figure, among the snapshot steps and the oracle peak (default: the
        first snapshot after step 1, the oracle peak, the middle snapshot and the last).

    Returns
    -------
    matplotlib.figure.Figure or ipywidgets.VBox
        The figure (closed in pyplot, so a notebook shows it once as the cell's value; save it with
        ``fig.savefig``): per step an output and its ratio map, then the band and PSNR curves with
        the steps marked. Or a slider over the snapshot steps (and the oracle peak's step, where
        ``run.best`` is kept) above those four panels at its step; it starts at the peak.
    """
    frames = _frames(run)
    snaps = sorted(frames)
    if not run.snapshots or run.history.bands is None:
        raise DipkitError("explore_run needs a run with snapshots and band history: fit it with "
                          "snapshot_every=... and the default probes")
    if static is None:
        static = not live_frontend()
    if static:
        steps = list(steps) if steps is not None else _default_steps(run, snaps)
        if not steps or set(steps) - set(snaps):
            raise DipkitError(f"steps must be snapshot steps of the run (or its oracle peak), "
                              f"some of {snaps}; got {steps}")
        k = len(steps)
        fig = plt.figure(figsize=(max(2.6 * k, 8.0) + 0.8, 9.0), layout="constrained")
        grid = fig.add_gridspec(3, 2 * k, height_ratios=[1, 1, 1.1])
        ratio_axes = [fig.add_subplot(grid[1, 2 * i:2 * i + 2]) for i in range(k)]
        for i, (s, ax_ratio) in enumerate(zip(steps, ratio_axes)):
            ax_out = fig.add_subplot(grid[0, 2 * i:2 * i + 2])
            im = _image_panels(ax_out, ax_ratio, run, frames, observation, clean, s)
            ax_ratio.set_ylabel(ax_ratio.get_ylabel() if i == 0 else "")
        fig.colorbar(im, ax=ratio_axes, shrink=0.9, label="min(1, |f̂| / |ŷ|)")
        _curves(fig.add_subplot(grid[2, :k]), fig.add_subplot(grid[2, k:]), run, steps)
        plt.close(fig)
        return fig
    try:
        import ipywidgets
        from IPython.display import display
    except ImportError:
        raise DipkitError("static=False needs ipywidgets: pip install ipywidgets (or dipkit[book]); "
                          "static=None falls back to a figure") from None
    start = run.best_step if run.best_step is not None else snaps[0]
    slider = ipywidgets.SelectionSlider(options=snaps, value=start, description="step",
                                        continuous_update=False, layout=ipywidgets.Layout(width="70%"))
    out = ipywidgets.Output()

    def draw(change=None):
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
            _image_panels(axes[0], axes[1], run, frames, observation, clean, slider.value)
            _curves(axes[2], axes[3], run, [slider.value])
            display(fig)
            plt.close(fig)

    slider.observe(draw, names="value")
    draw()
    return ipywidgets.VBox([slider, out])
