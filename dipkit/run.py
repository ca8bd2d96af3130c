"""What a fit returns: the :class:`Run` (outputs, history, detections) and its parts.

A :class:`Run` holds images as (1, C, H, W) float32 CPU tensors in [0, 1]; its :class:`History`
holds what the probes measured, one row per probe, as NumPy arrays; a :class:`Detection` says
where a monitored stopping rule would have stopped the fit.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

__all__ = ["Run", "History", "Detection"]


@dataclass
class History:
    """What the probes measured, one row per probe (NumPy arrays on the host).

    Attributes
    ----------
    step : ndarray (P,) int
        Optimizer step of each probe (1-based: the output before the step-th update).
    loss : ndarray (P,)
        Training loss at each probe step.
    psnr : ndarray (P,) or None
        PSNR (dB) of the output against the clean image, when one was given.
    psnr_observation : ndarray (P,)
        PSNR (dB) of ``A(output)`` against the observation (what backtracking watches).
    bands : ndarray (P, n_bands) or None
        Frequency-band correspondence of the output against the observation, low → high.
    ratio : ndarray (P,) or None
        Blurriness / sharpness ratio ρ of the output.
    time : ndarray (P,)
        Seconds since the start of the fit (host clock; on CUDA, dispatch time unless probes sync).
    loss_every_step : ndarray (steps_run,)
        The loss at every optimizer step.
    """

    step: np.ndarray
    loss: np.ndarray
    psnr: Optional[np.ndarray]
    psnr_observation: np.ndarray
    bands: Optional[np.ndarray]
    ratio: Optional[np.ndarray]
    time: np.ndarray
    loss_every_step: np.ndarray

    def columns(self) -> dict:
        """The per-probe columns as a dict of 1-D arrays (bands split into band1..bandK)."""
        cols = {"step": self.step, "loss": self.loss}
        if self.psnr is not None:
            cols["psnr"] = self.psnr
        cols["psnr_observation"] = self.psnr_observation
        if self.bands is not None:
            for k in range(self.bands.shape[1]):
                cols[f"band{k + 1}"] = self.bands[:, k]
        if self.ratio is not None:
            cols["ratio"] = self.ratio
        cols["time"] = self.time
        return cols

    def to_csv(self, path) -> None:
        """Write one row per probe to a CSV file."""
        cols = self.columns()
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(cols))
            writer.writerows(zip(*[c.tolist() for c in cols.values()]))

    def at(self, step: int) -> dict:
        """The readings of the probe at (or closest before) ``step``."""
        i = int(np.searchsorted(self.step, step, side="right")) - 1
        return {k: v[max(i, 0)] for k, v in self.columns().items()}


@dataclass
class Detection:
    """Where a monitored stopping rule would have stopped a fit that went on.

    Attributes
    ----------
    fired_at : int or None
        The step at which the rule fired (None: it never did within the fit).
    step : int or None
        The step whose output the rule selected (equal to ``fired_at`` for most rules).
    output : Tensor (1, C, H, W) or None
        That output, on the CPU.
    """

    fired_at: Optional[int]
    step: Optional[int]
    output: Optional[torch.Tensor]


@dataclass
class Run:
    """The result of :func:`fit`. Images are (1, C, H, W) float32 CPU tensors in [0, 1].

    Attributes
    ----------
    final : Tensor
        The output at the last step run.
    stopped : Tensor
        The output the stopping rule selected (``final`` when there was no rule or it never fired).
    stop_step : int or None
        The step the rule selected, None if it never fired.
    best, best_step, best_psnr
        The oracle-best output by PSNR against ``clean`` over the probes (None without clean).
    history : History
    snapshots : dict[int, Tensor]
        Outputs kept at the steps asked for with ``snapshot_every``.
    steps_run : int
        Optimizer steps taken (fewer than asked when the rule stopped the fit).
    seconds : float
        Wall time of the fit.
    backtracks : list[int]
        Probe steps at which the parameters were restored after a divergence.
    config : dict
        The settings of the fit and the model, for records.
    code : Tensor
        The fixed input code.
    detections : dict[str, Detection]
        For each rule given in ``monitor``: where it would have stopped.
    interrupted : bool
        True when the fit was interrupted (Ctrl-C): the Run holds what was done until then.
    """

    final: torch.Tensor
    stopped: torch.Tensor
    stop_step: Optional[int]
    best: Optional[torch.Tensor]
    best_step: Optional[int]
    best_psnr: Optional[float]
    history: History
    snapshots: dict = field(default_factory=dict)
    steps_run: int = 0
    seconds: float = 0.0
    backtracks: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    code: Optional[torch.Tensor] = None
    detections: dict = field(default_factory=dict)
    interrupted: bool = False

    @property
    def psnr_final(self) -> Optional[float]:
        """PSNR (dB) of the last probe, when a clean image was given."""
        return None if self.history.psnr is None else float(self.history.psnr[-1])

    @property
    def psnr_stopped(self) -> Optional[float]:
        """PSNR (dB) at the selected stop step, when a clean image was given."""
        if self.history.psnr is None:
            return None
        step = self.stop_step if self.stop_step is not None else int(self.history.step[-1])
        return float(self.history.at(step)["psnr"])
