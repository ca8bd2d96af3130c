"""How long a fit will take: a few timed steps of the network, extrapolated to the budget.

A DIP fit's time is its steps times the cost of one step (forward, backward, Adam), plus the
probes; the cost of a step depends on the network, the image size and the machine far more than
on anything a formula knows (AVX2 against AVX-512, a T4 against an H100). So the cost model is
measured: :func:`seconds_per_step` times a few steps of a copy of the network on the device (the
fit's own network, weights and random state are untouched), and :func:`estimate` multiplies by
the budget and adds the probes' share. The chapters and the experiment runner print it before a
long fit.

Examples
--------
>>> import dipkit
>>> from dipkit import cost
>>> e = cost.estimate(dipkit.decoder(channels=16, depth=3), 32, 32, steps=100)
>>> e.seconds > 0 and "100 steps" in e.describe()
True
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
import torch

from .errors import DipkitError

__all__ = ["Estimate", "seconds_per_step", "estimate", "PROBE_SHARE"]

#: The probes' cost relative to one step, per probe (the band correspondence, the ratio and the
#: PSNRs of one output: an FFT and a few reductions; about a fifth of a step on a 2-core CPU at
#: 128², a smaller share on a GPU).
PROBE_SHARE = 0.2


@dataclass(frozen=True)
class Estimate:
    """A fit's predicted wall time.

    Attributes
    ----------
    seconds : float
        Predicted wall time of the whole fit (s).
    step_seconds : float
        Measured seconds of one optimizer step.
    steps : int
        The budget the estimate is for.
    device : str
        Where it was measured (``'cpu'``, ``'cuda'``).
    """

    seconds: float
    step_seconds: float
    steps: int
    device: str

    def describe(self) -> str:
        """One line, e.g. ``'about 7 min (0.14 s a step × 3000 steps, measured on cpu)'``."""
        return (f"about {_duration(self.seconds)} ({self.step_seconds * 1e3:.3g} ms a step × "
                f"{self.steps} steps, measured on {self.device})")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def seconds_per_step(model: torch.nn.Module, height: int, width: int, *, device=None,
                     repeats: int = 3) -> float:
    """Median wall time (s) of one step (forward, MSE loss, backward, Adam) of a copy of ``model``.

    Parameters
    ----------
    model : DIPNetwork
        The network (copied: its weights and the global random state are not touched).
    height, width : int
        The output size in pixels.
    device : str or torch.device, optional
        Default: the model's.
    repeats : int
        Timed steps after one untimed warm-up step.
    """
    if not (isinstance(repeats, int) and repeats >= 1):
        raise DipkitError(f"repeats must be a positive integer, got {repeats!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    net = copy.deepcopy(model).to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        z = net.make_code(height, width).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        times = []
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            out = net(z)
            torch.nn.functional.mse_loss(out, torch.zeros_like(out)).backward()
            optimizer.step()
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def estimate(model: torch.nn.Module, height: int, width: int, *, steps: int, probe_every: int = 10,
             device=None) -> Estimate:
    """The predicted wall time of a fit of ``model`` at ``height`` × ``width`` for ``steps`` steps,
    probed every ``probe_every`` steps (see :func:`seconds_per_step` and :data:`PROBE_SHARE`)."""
    if not (isinstance(steps, int) and steps >= 1):
        raise DipkitError(f"steps must be a positive integer, got {steps!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    step = seconds_per_step(model, height, width, device=device)
    probes = steps / max(1, probe_every)
    return Estimate(seconds=step * (steps + PROBE_SHARE * probes), step_seconds=step, steps=steps,
                    device=device.type)
