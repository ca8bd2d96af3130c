"""Stopping rules: when to end a DIP fit without knowing the clean image.

Every rule has one small interface, fed by :func:`dipkit.fit` at each probe (every
``probe_every`` steps). A rule's parameters are in optimizer steps, whatever the probe interval:

``bind(probe_every)``
    Called by the fit before it starts: the rule converts its parameters to probes, and a
    setting that the interval cannot honour (a window of 25 steps with probes every 10) is a
    clear :class:`~dipkit.errors.DipkitError`. Unbound, a rule counts one probe per step.
``reset()``
    Forget everything (called at the start of a fit).
``update(step, output, readings) -> bool``
    ``step`` is the 1-based optimizer step, ``output`` the network output (1, C, H, W) on the
    device, ``readings`` the probe values of this step (0-d tensors: ``'ratio'``, ``'loss'``,
    ``'psnr'`` when a clean image is known, ...). Returns True to stop.
``selected_step``
    The step whose output the rule recommends (the stop step for most rules; the
    minimum-variance step for ES-WMV). :func:`dipkit.fit` keeps that output.

Rules decide; they do not record (that is what callbacks do: :mod:`dipkit.callbacks`).

References
----------
Shi et al., IJCV 2022, section 4.3 (the blurriness/sharpness ratio rule).
Wang, Li, Zhuang, Chen, Liang, Sun, "Early Stopping for Deep Image Prior", TMLR 2023 (ES-WMV).
Morozov, "On the solution of functional equations by the method of regularization", 1966
(the discrepancy principle).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Optional

import torch

from .errors import DipkitError

__all__ = ["StoppingRule", "RatioRule", "ESWMV", "Patience", "Discrepancy", "HeldOutRule",
           "make_rule", "scaled_eswmv"]


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DipkitError(f"{name} must be a positive integer, got {value!r}")
    return value


def _in_probes(name: str, steps: int, probe_every: int) -> int:
    """``steps`` as a number of probes; an error when the probe interval cannot honour it."""
    if steps % probe_every:
        raise DipkitError(f"the rule's {name} of {steps} steps is not a multiple of the fit's probe "
                          f"interval (probe_every={probe_every}); choose a {name} that is, or probe "
                          f"more often")
    return steps // probe_every


class StoppingRule:
    """Base class of the stopping rules (see the module docstring for the interface)."""

    #: readings the rule needs from the probes ('ratio' needs the blur/sharpness probe).
    needs: tuple = ()
    #: steps between probes, set by :meth:`bind` (1 until then).
    probe_every: int = 1

    def __init__(self):
        self.reset()

    def bind(self, probe_every: int) -> None:
        """Take the fit's probe interval and convert the parameters (steps) to probes."""
        self.probe_every = _positive_int("probe_every", probe_every)

    def reset(self) -> None:
        self.selected_step: Optional[int] = None
        self.stopped_at: Optional[int] = None

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:  # pragma: no cover
        raise NotImplementedError

    def _stop(self, step: int, selected: Optional[int] = None) -> bool:
        self.stopped_at = step
        self.selected_step = step if selected is None else selected
        return True


class RatioRule(StoppingRule):
    """The paper's rule: stop when the blurriness/sharpness ratio ρ stops changing.

    Once more than ``2n`` steps have passed, stop at step t when
    ``|mean(ρ over (t−2n, t−n]) − mean(ρ over (t−n, t])| < eps``.

    Parameters
    ----------
    n : int
        Window length in optimizer steps (paper: 100). With probes every k steps each window
        holds n/k readings, so ``n`` must be a multiple of the fit's ``probe_every``.
    eps : float
        Threshold on the difference of the window means (paper: 0.01).
    faithful : bool
        The paper's code takes the newer window one reading short (n and n−1 readings);
        ``True`` (default) reproduces that, ``False`` uses equal windows.
    probe_every : int, optional
        Bind the rule to this probe interval now (else the fit binds it to its own).

    Notes
    -----
    The readings are kept in a deque of at most 2n/k values; the check costs O(n/k) per
    probe. It needs the ``'ratio'`` reading, so the fit must compute the ratio probe.
    """

    needs = ("ratio",)

    def __init__(self, n: int = 100, eps: float = 0.01, *, faithful: bool = True,
                 probe_every: Optional[int] = None):
        self.n = _positive_int("n", n)
        self.eps = float(eps)
        self.faithful = bool(faithful)
        self._made_for = probe_every
        if probe_every is not None:
            self.bind(probe_every)
        super().__init__()

    def bind(self, probe_every: int) -> None:
        if self._made_for is not None and probe_every != self._made_for:
            raise DipkitError(f"the ratio rule was made for probe_every={self._made_for}, the fit "
                              f"probes every {probe_every}; build it with probe_every={probe_every} "
                              f"or without probe_every (the fit then binds it)")
        super().bind(probe_every)
        _in_probes("window n", self.n, probe_every)
        self.reset()

    def reset(self) -> None:
        super().reset()
        w = self.n // self.probe_every
        self._window = w
        self._values: deque = deque(maxlen=2 * w)
        self._last_step = 0

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:
        if step % self.probe_every:
            return False
        self._values.append(float(readings["ratio"]))
        self._last_step = step
        w = self._window
        if step <= 2 * self.n or len(self._values) < 2 * w:
            return False
        values = list(self._values)
        older = values[:w]
        newer = values[w + 1:] if self.faithful and w > 1 else values[w:]
        if abs(sum(older) / len(older) - sum(newer) / len(newer)) < self.eps:
            return self._stop(step)
        return False

    def __repr__(self) -> str:
        return f"RatioRule(n={self.n}, eps={self.eps}, faithful={self.faithful}, probe_every={self.probe_every})"


class ESWMV(StoppingRule):
    """ES-WMV: early stopping by the windowed moving variance of the outputs (Wang et al.).

    ``VAR_t = (1/W) Σ_{w<W} mean((x_{t−w} − x̄_t)²)`` over the last W outputs (one per probe),
    ``x̄_t`` their mean. Stop when ``VAR`` has not reached a new minimum for ``patience``
    steps; the selected output is the one at the minimum.

    Parameters
    ----------
    window : int
        The window, in steps (ES-WMV: 100 for denoising, with an output every step). With probes
        every k steps it holds window/k outputs, so it must be a multiple of k.
    patience : int
        Steps without a new minimum before stopping (ES-WMV: 1000 for denoising), a multiple of
        the probe interval too. See :func:`scaled_patience` for budgets shorter than 10 000.

    Notes
    -----
    The window lives in one preallocated ring buffer on the device, with running sums of the
    outputs and of their squared norms, so each update costs O(pixels), not O(W · pixels).
    Sums are kept in float64 where the device supports it.
    """

    def __init__(self, window: int = 100, patience: int = 1000):
        self.window = _positive_int("window", window)
        self.patience = _positive_int("patience", patience)
        super().__init__()

    def bind(self, probe_every: int) -> None:
        super().bind(probe_every)
        _in_probes("window", self.window, probe_every)
        _in_probes("patience", self.patience, probe_every)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._size = self.window // self.probe_every          # outputs in the window
        self._patience = self.patience // self.probe_every    # probes without a new minimum
        self._buffer = None
        self._count = 0
        self.best_variance = math.inf
        self.variances: list = []

    def _start(self, output: torch.Tensor) -> None:
        acc = torch.float32 if output.device.type == "mps" else torch.float64
        self._buffer = torch.zeros((self._size,) + tuple(output.shape), dtype=acc, device=output.device)
        self._sum = torch.zeros(output.shape, dtype=acc, device=output.device)
        self._sq = torch.zeros((), dtype=acc, device=output.device)

    def push(self, output: torch.Tensor) -> Optional[torch.Tensor]:
        """Add one output to the window; return VAR (0-d tensor) once the window is full."""
        if self._buffer is None:
            self._start(output)
        x = output.detach().to(self._buffer.dtype)
        slot = self._count % self._size
        if self._count >= self._size:
            old = self._buffer[slot]
            self._sum -= old
            self._sq -= (old * old).sum()
        self._buffer[slot] = x
        self._sum += x
        self._sq += (x * x).sum()
        self._count += 1
        if self._count < self._size:
            return None
        n_pix = x.numel()
        mean = self._sum / self._size
        return (self._sq / self._size - (mean * mean).sum()) / n_pix

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:
        var = self.push(output)
        if var is None:
            return False
        v = float(var)
        self.variances.append((step, v))
        if v < self.best_variance:
            self.best_variance = v
            self.selected_step = step
            self._since_best = 0
            return False
        self._since_best += 1
        if self._since_best >= self._patience:
            return self._stop(step, self.selected_step)
        return False

    def __repr__(self) -> str:
        return f"ESWMV(window={self.window}, patience={self.patience})"


class Patience(StoppingRule):
    """Stop when a reading has not improved for ``patience`` probes.

    Parameters
    ----------
    key : str
        The reading to watch: ``'loss'``, ``'ratio'``, ``'psnr'`` (needs a clean image; an
        oracle, for studies only), ``'psnr_observation'``.
    mode : {'min', 'max'}
        Whether smaller or larger is better.
    patience : int
        Steps without improvement (by more than ``min_delta``) before stopping, a multiple of
        the fit's probe interval.
    """

    def __init__(self, key: str = "loss", mode: str = "min", patience: int = 10, min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise DipkitError(f"mode must be 'min' or 'max', got {mode!r}")
        self.key, self.mode = key, mode
        self.patience = _positive_int("patience", patience)
        self.min_delta = float(min_delta)
        self.needs = (key,)
        super().__init__()

    def bind(self, probe_every: int) -> None:
        super().bind(probe_every)
        _in_probes("patience", self.patience, probe_every)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._best = math.inf
        self._waited = 0

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:
        if self.key not in readings:
            raise DipkitError(f"the patience rule watches {self.key!r}, which this fit does not "
                              f"measure (it has {sorted(readings)}); give clean= for 'psnr'")
        value = float(readings[self.key])
        value = value if self.mode == "min" else -value
        if value < self._best - self.min_delta:
            self._best, self._waited, self.selected_step = value, 0, step
            return False
        self._waited += 1
        if self._waited * self.probe_every >= self.patience:
            return self._stop(step, self.selected_step)
        return False

    def __repr__(self) -> str:
        return f"Patience(key={self.key!r}, mode={self.mode!r}, patience={self.patience})"


class Discrepancy(StoppingRule):
    """Morozov's discrepancy principle: stop once the fit explains the data down to the noise.

    Stop at the first probe where the data-fit residual per observed value,
    ``mean((A f − y)²)`` over the values the loss compares (the ``'residual'`` reading), falls
    to ``tau · sigma²``: fitting further could only fit the noise.

    Parameters
    ----------
    sigma : float
        Std of the noise of the observation, in [0, 1] intensity units (e.g. 25/255); estimate
        it from the observation with :func:`dipkit.noiselevel.noise_sigma` (``estimate=True``) when unknown.
    tau : float
        The safety factor τ (Morozov: slightly above 1 for a known σ).

    Raises
    ------
    DipkitError
        ``sigma`` is not positive: without noise (noise-free inpainting) the residual can reach
        0 and the principle says nothing; use the held-out rule there.
    """

    needs = ("residual",)

    def __init__(self, sigma: float, tau: float = 1.0):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise DipkitError(f"the discrepancy principle needs the noise level sigma > 0 (got {sigma!r}); "
                              f"for a noise-free observation (inpainting) use the held-out rule instead")
        if not (isinstance(tau, (int, float)) and tau > 0):
            raise DipkitError(f"tau must be a positive number, got {tau!r}")
        self.sigma, self.tau = float(sigma), float(tau)
        super().__init__()

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:
        if float(readings["residual"]) <= self.tau * self.sigma ** 2:
            return self._stop(step)
        return False

    def __repr__(self) -> str:
        return f"Discrepancy(sigma={self.sigma:.6g}, tau={self.tau})"


class HeldOutRule(Patience):
    """Stop at the minimum of the error on pixels held out of the loss, with patience (steps).

    The fit's degradation must hold pixels out (:class:`dipkit.degradations.HeldOut`), which
    gives the ``'heldout'`` reading: ``mean((A f − y)²)`` over the held-out pixels, an unbiased
    estimate of how well the output predicts data it never fitted. The selected output is the
    one at the minimum. It needs no noise model, so it serves every task.
    """

    def __init__(self, patience: int = 200, min_delta: float = 0.0):
        super().__init__(key="heldout", mode="min", patience=patience, min_delta=min_delta)

    def update(self, step: int, output: torch.Tensor, readings: dict) -> bool:
        if "heldout" not in readings:
            raise DipkitError("the held-out rule needs a fit that holds pixels out of the loss: pass "
                              "degradation=dipkit.degradations.HeldOut(degradation, fraction=0.05)")
        return super().update(step, output, readings)

    def __repr__(self) -> str:
        return f"HeldOutRule(patience={self.patience})"


def scaled_eswmv(budget: int, probe_every: int, floor: int = 100) -> ESWMV:
    """ES-WMV with its published settings scaled to a shorter budget, in steps.

    ES-WMV waits 1000 steps without a new minimum in a 10 000-step denoising fit: here the
    patience is that share of ``budget`` (at least ``floor`` steps), and the window 100 steps;
    both are rounded down to a multiple of ``probe_every`` (at least one probe).

    >>> scaled_eswmv(2000, 10)
    ESWMV(window=100, patience=200)
    """
    def multiple(steps):
        return max(1, steps // probe_every) * probe_every

    patience = max(floor, round(1000 * budget / 10000))
    return ESWMV(window=multiple(100), patience=multiple(patience))


def make_rule(name: Optional[str], probe_every: Optional[int] = None, **kwargs) -> Optional[StoppingRule]:
    """A rule by name: ``'paper'``/``'ratio'``, ``'eswmv'``, ``'patience'``, ``'discrepancy'``
    (needs ``sigma=``), ``'heldout'``, or None/``'none'``.

    The fit binds it to its probe interval (``probe_every`` binds a ratio rule now).
    """
    if name is None or name == "none":
        return None
    if name in ("paper", "ratio"):
        return RatioRule(probe_every=probe_every, **kwargs)
    if name == "eswmv":
        return ESWMV(**kwargs)
    if name == "patience":
        return Patience(**kwargs)
    if name == "discrepancy":
        if "sigma" not in kwargs:
            raise DipkitError("the discrepancy rule needs the noise level: make_rule('discrepancy', sigma=...)"
                              " or dipkit.stopping.Discrepancy(sigma)")
        return Discrepancy(**kwargs)
    if name == "heldout":
        return HeldOutRule(**kwargs)
    raise DipkitError(f"unknown stopping rule {name!r}: choose 'paper', 'eswmv', 'patience', "
                      f"'discrepancy', 'heldout' or 'none'")
