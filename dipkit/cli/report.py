"""``dipkit restore``'s estimates and report: the time of a CPU fit, the curves, the files.

The timing model says how long a fit on the CPU will take before it starts (the command warns
above :data:`LONG_RUN` seconds); :func:`write` puts the curves, the history and the settings of
a finished (or interrupted) fit in the --report folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import images
from ..fit import Run

__all__ = ["STEP_LINEAR", "STEP_CONV", "LONG_RUN", "fit_seconds", "plot", "write"]

#: CPU-seconds of one step of the decoder of width w on p pixels: p · (STEP_LINEAR · w +
#: STEP_CONV · w²) on one thread; the estimate divides by torch's threads. Measured with
#: process_time on a 2-core machine (widths 32, 64, 128; 128² and 256²; probes every 10 steps).
STEP_LINEAR, STEP_CONV = 3.6e-8, 6.9e-10
#: Warn (and ask) before a CPU run estimated to take longer than this many seconds.
LONG_RUN = 300


def fit_seconds(height: int, width: int, channels: int, steps: int) -> float:
    """Estimated wall time (s) of ``steps`` steps of the decoder with ``channels`` channels on a
    ``height`` × ``width`` image (pixels) on the CPU, with torch's threads."""
    per_step = height * width * (STEP_LINEAR * channels + STEP_CONV * channels ** 2)
    return per_step * steps / torch.get_num_threads()


def plot(run: Run, path: Path, interrupted: bool) -> None:
    """PSNR (with a reference), ratio and band curves over the steps, the stop marked; a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .. import plots

    h = run.history
    panels = [p for p, v in ((plots.psnr_curve, h.psnr), (plots.ratio_curve, h.ratio),
                             (plots.band_curves, h.bands)) if v is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for panel, ax in zip(panels, axes[0]):
        panel(run, ax=ax)
        if interrupted:
            ax.axvline(run.steps_run, color="crimson", ls=":", lw=1.5, label=f"Ctrl-C (step {run.steps_run})")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(folder: Path, run: Run, interrupted: bool, settings: dict, observation=None) -> list:
    """Write curves.png, history.csv, settings.json (and observation.png, the simulated
    observation, when given) to ``folder``, created if missing; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "curves.png", folder / "history.csv", folder / "settings.json"]
    plot(run, files[0], interrupted)
    run.history.to_csv(files[1])
    files[2].write_text(json.dumps(settings, indent=2, default=str) + "\n")
    if observation is not None:
        files.append(folder / "observation.png")
        images.save(observation, files[-1])
    return files
