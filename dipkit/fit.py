"""Fit a Deep Image Prior network to one observation, probing it on a schedule.

:func:`fit` runs Adam on ``loss(A f_θ(z), y)``, measures the output every ``probe_every`` steps
(PSNR against the clean image when given, the frequency-band correspondence against the
observation, the blurriness/sharpness ratio), hands the readings to a stopping rule, and
returns a :class:`Run` with the outputs and the history.

Between probes the loop never waits for the device: losses are written into a tensor on the
device, the oracle-best output is kept with ``torch.where``, and the host reads numbers only at
probes that need them (a stopping rule, backtracking, the progress bar) or at the end.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

import numpy as np
import torch

from .degradations import Degradation, Identity
from .errors import DipkitError, DivergenceError, ShapeError
from .images import check_image
from .metrics import psnr as psnr_metric
from .models import DIPNetwork
from .sharpness import blur_sharpness_ratio
from .spectral import BandCorrespondence
from .stopping import RatioRule, StoppingRule, make_rule

__all__ = ["fit", "Run", "History", "Detection", "default_device", "as_observation"]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def as_observation(image, name: str = "observation") -> torch.Tensor:
    """Check and return an image as a float32 tensor (1, C, H, W) in [0, 1].

    Accepts (1, C, H, W) or (C, H, W) float tensors. Raises :class:`~dipkit.errors.ShapeError`
    or :class:`~dipkit.errors.DipkitError` with what to do for anything else.
    """
    image = check_image(image, name, values=True)
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.shape[0] != 1:
        raise ShapeError(f"{name} must hold one image (1, C, H, W), got {tuple(image.shape)}; "
                         f"fit one image at a time (or use dipkit.fit_many)")
    if image.shape[1] not in (1, 3):
        raise ShapeError(f"{name} must have 1 (gray) or 3 (RGB) channels, got {image.shape[1]}")
    return image.float()


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


def _snapshot_steps(snapshot_every, steps: int) -> set:
    if snapshot_every is None:
        return set()
    if isinstance(snapshot_every, int):
        return set(range(snapshot_every, steps + 1, snapshot_every)) | {1}
    return {int(s) for s in snapshot_every}


def fit(model: DIPNetwork, observation: torch.Tensor, *, steps: int, lr: float = 1e-3,
        degradation: Optional[Degradation] = None, probe_every: int = 10,
        stop: Union[None, str, StoppingRule] = None, clean: Optional[torch.Tensor] = None,
        seed: int = 0, device=None, ema: Optional[float] = None, backtrack: bool = False,
        input_noise: float = 0.0, probes: Iterable[str] = ("bands", "ratio"), n_bands: int = 5,
        snapshot_every: Union[None, int, Iterable[int]] = None, progress: bool = True,
        max_backtracks: int = 10, monitor: Optional[dict] = None, channels_last: bool = False,
        compile: bool = False, autocast=None) -> Run:
    """Fit ``model`` to ``observation`` with Adam; probe every ``probe_every`` steps.

    Parameters
    ----------
    model : DIPNetwork
        From :func:`dipkit.decoder`, :func:`dipkit.hourglass` or :func:`dipkit.convnet`. It is
        moved to ``device`` and trained in place.
    observation : Tensor (1, C, H, W) in [0, 1]
        The degraded image y: noisy, JPEG-compressed, or masked (zeros where unknown).
        C must equal the model's ``out_channels``; H, W must suit the model.
    steps : int
        Maximum number of optimizer steps.
    lr : float
        Adam's learning rate (paper: 1e-3; original DIP denoising: 1e-2).
    degradation : Degradation, optional
        The forward operator A of the loss ``mean((A f − y)²)`` (default: identity). For
        inpainting pass :class:`dipkit.degradations.Inpainting` with the mask.
    probe_every : int
        Probe (and check the stopping rule) every this many steps, and at the last step.
    stop : {'paper', 'eswmv', 'none'} or StoppingRule, optional
        The stopping rule; ``'paper'`` is :class:`~dipkit.stopping.RatioRule` (n=100, ε=0.01).
    clean : Tensor (1, C, H, W), optional
        The clean image, for the PSNR history and the oracle-best output. Never used for fitting.
    seed : int
        Seed of the input code and of the input perturbation. The weights are seeded when the
        model is built.
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    ema : float, optional
        Report the exponential moving average of the outputs (original DIP: 0.99) instead of
        the raw output, in the probes and the results.
    backtrack : bool
        At each probe, if PSNR(A f, y) dropped by more than 5 dB since the last probe or the loss
        became NaN/inf, restore the parameters (and Adam's moments) of the last probe (the paper's
        code does this every step, for the parameters only: NaN moments would poison the next steps).
    input_noise : float
        Std of Gaussian noise added to the code at each step (original DIP: 1/30; paper: 0).
    probes : iterable of {'bands', 'ratio'}
        Which probes to compute besides loss and PSNR. The paper's rule needs ``'ratio'``.
    n_bands : int
        Number of frequency bands of the band probe (paper: 5).
    snapshot_every : int or iterable of int, optional
        Keep the output (on the CPU) every this many steps, or at these steps.
    progress : bool
        Show a tqdm progress bar (it reads the loss at each probe).
    max_backtracks : int
        Give up with :class:`~dipkit.errors.DivergenceError` after this many restorations in a row.
    monitor : dict[str, StoppingRule or str], optional
        Rules that watch the fit without stopping it: ``Run.detections[name]`` says where each
        would have stopped, with its selected output. Lets one fit compare several rules.
    channels_last : bool
        Keep the network's weights and activations in channels-last memory format (off by
        default; see the benchmarks for when it pays).
    compile : bool
        Run the network through :func:`torch.compile` (off by default: minutes of warm-up on a
        CPU). The first step checks the compiled gradients against the plain network's; if
        compiling fails or they differ (as with torch 2.13 on the CPU for the paper's decoder),
        the fit warns and goes on uncompiled. ``Run.config['compile']`` records what happened.
    autocast : {None, 'bf16', 'fp16'} or torch.dtype
        Run the network under :func:`torch.autocast` in that dtype (probes, loss and Adam stay
        float32). Off by default; meant for CUDA.

    Returns
    -------
    Run

    Raises
    ------
    ShapeError
        Observation, clean image and model do not fit together.
    DivergenceError
        The loss became NaN/inf and backtracking is off or could not recover.

    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("astronaut", size=64)
    >>> noise = dipkit.degradations.GaussianNoise(25 / 255)
    >>> y = noise.observe(clean, seed=0)
    >>> run = dipkit.fit(dipkit.decoder(channels=16, depth=4), y, steps=20, clean=clean,
    ...                  progress=False)
    >>> run.history.psnr.shape
    (2,)
    """
    if not isinstance(model, DIPNetwork):
        raise DipkitError("model must be a DIPNetwork from dipkit.decoder, hourglass or convnet")
    probes = check_fit_arguments(steps, probe_every, lr, probes)
    if ema is not None and not 0 <= ema < 1:
        raise DipkitError(f"ema must be in [0, 1), got {ema!r}")

    y = as_observation(observation)
    _, c, h, w = y.shape
    if c != model.out_channels:
        raise ShapeError(f"the observation has {c} channel(s) but the model outputs "
                         f"{model.out_channels}; build the model with out_channels={c}")
    model.check_size(h, w)
    x = None
    if clean is not None:
        x = as_observation(clean, "clean")
        if x.shape != y.shape:
            raise ShapeError(f"clean image {tuple(x.shape)} and observation {tuple(y.shape)} differ in shape")
    degradation = degradation or Identity()
    rule = _as_rule(stop, probe_every)
    monitors = {name: _as_rule(r, probe_every) for name, r in (monitor or {}).items()}
    for r in [rule, *monitors.values()]:
        if r is not None:
            if "ratio" in r.needs and "ratio" not in probes:
                probes = probes + ("ratio",)
            r.reset()
    detections = {name: Detection(None, None, None) for name in monitors}

    device = torch.device(device) if device is not None else default_device()
    _memory_check(model, h, w, device, backtrack)
    model.to(device).train()
    runner = _Runner(model, device, channels_last, compile, autocast)
    y, x = y.to(device), (x.to(device) if x is not None else None)
    if hasattr(degradation, "to"):
        degradation = degradation.to(device)
    y_seen = degradation.forward(y)  # what the loss compares with (masked for inpainting)
    code = model.make_code(h, w, seed).to(device)
    if channels_last:
        code = code.contiguous(memory_format=torch.channels_last)
    fbc = BandCorrespondence(y, n_bands) if "bands" in probes else None
    gen = torch.Generator(device=device).manual_seed(int(seed)) if input_noise else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    losses = torch.empty(steps, device=device)
    readings_log: dict[str, list] = {k: [] for k in ("loss", "psnr", "psnr_observation", "bands", "ratio")}
    probe_steps, probe_times, backtracks, snapshots = [], [], [], {}
    wanted_snapshots = _snapshot_steps(snapshot_every, steps)
    best = best_psnr = best_step = None
    if x is not None:
        best = torch.zeros_like(y)
        best_psnr = torch.full((), -math.inf, device=device)
        best_step = torch.zeros((), dtype=torch.long, device=device)
    ema_out = None
    stopped_out, stop_step = None, None
    saved_state, saved_psnr, last_probe, restored_in_row = None, None, 0, 0

    from tqdm.auto import tqdm  # imported here: tqdm.auto probes for ipywidgets

    bar = tqdm(total=steps, disable=not progress, desc="fit", leave=False)
    start = time.perf_counter()
    step = 0
    for step in range(1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        z = code if gen is None else code + input_noise * torch.randn(code.shape, generator=gen, device=device)
        out, loss = runner.forward_backward(z, lambda f: degradation.loss(f, y))
        optimizer.step()
        losses[step - 1] = loss.detach()
        out = out.detach()
        if ema is not None:
            ema_out = out.clone() if ema_out is None else ema_out.mul_(ema).add_(out, alpha=1 - ema)
            out = ema_out
        if step in wanted_snapshots:
            snapshots[step] = out.to("cpu", copy=True)  # a copy: the EMA output changes in place
        if step % probe_every and step != steps:
            continue
        # ---- probe ----
        psnr_obs = psnr_metric(degradation.forward(out), y_seen)[0]
        if backtrack or rule is not None or monitors or progress:
            finite = bool(torch.isfinite(losses[last_probe:step]).all())
            if not finite or math.isnan(float(psnr_obs)):
                if not backtrack or saved_state is None:
                    raise DivergenceError(
                        f"the loss became NaN or infinite between steps {last_probe + 1} and {step}; "
                        f"lower the learning rate (lr={lr}) or pass backtrack=True")
            if backtrack:
                diverged = not finite or (saved_psnr is not None and float(psnr_obs) < saved_psnr - 5.0)
                if diverged:
                    restored_in_row += 1
                    if restored_in_row > max_backtracks:
                        raise DivergenceError(
                            f"the fit diverged {restored_in_row} times in a row (last at step {step}) "
                            f"and backtracking could not recover it; lower the learning rate (lr={lr})")
                    model.load_state_dict(saved_state[0])
                    optimizer.load_state_dict(saved_state[1])
                    backtracks.append(step)
                    last_probe = step
                    continue
                restored_in_row = 0
                saved_state = ({k: v.detach().clone() for k, v in model.state_dict().items()},
                               copy.deepcopy(optimizer.state_dict()))
                saved_psnr = float(psnr_obs)
        readings = {"loss": losses[step - 1], "psnr_observation": psnr_obs}
        if x is not None:
            p = psnr_metric(out, x)[0]
            readings["psnr"] = p
            better = p > best_psnr
            best = torch.where(better, out, best)
            best_step = torch.where(better, torch.full_like(best_step, step), best_step)  # no H2D copy: no sync
            best_psnr = torch.maximum(p, best_psnr)
        if "bands" in probes:
            readings["bands"] = fbc(out)[0]
        if "ratio" in probes:
            readings["ratio"] = blur_sharpness_ratio(out)[0]
        for k, v in readings.items():
            readings_log[k].append(v)
        probe_steps.append(step)
        probe_times.append(time.perf_counter() - start)
        bar.update(step - bar.n)
        if progress:
            bar.set_postfix({k: f"{float(readings[k]):.4g}" for k in ("loss", "psnr", "ratio") if k in readings})
        last_probe = step
        for name, r in monitors.items():
            if detections[name].fired_at is None:
                hit = r.update(step, out, readings)
                if r.selected_step == step:
                    detections[name].output, detections[name].step = out.to("cpu", copy=True), step
                if hit:
                    detections[name].fired_at, detections[name].step = step, r.selected_step
        if rule is not None:
            stop_now = rule.update(step, out, readings)
            if rule.selected_step == step:
                stopped_out, stop_step = out.clone(), step
            if stop_now:
                stop_step = rule.selected_step
                break
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start

    if not torch.isfinite(losses[:step]).all() and not backtrack:
        raise DivergenceError(f"the loss became NaN or infinite during the fit; lower the learning "
                              f"rate (lr={lr}) or pass backtrack=True")
    fired = rule is not None and rule.stopped_at is not None
    for name, d in detections.items():
        if d.fired_at is None:  # never fired: nothing was selected
            detections[name] = Detection(None, None, None)
    history = _history(readings_log, probe_steps, probe_times, losses[:step])
    config = dict(model=model.config, steps=steps, lr=lr, degradation=repr(degradation),
                  probe_every=probe_every, stop=repr(rule), seed=seed, device=str(device), ema=ema,
                  backtrack=backtrack, input_noise=input_noise, probes=list(probes), n_bands=n_bands,
                  **runner.config())
    final = out.cpu()
    return Run(
        final=final,
        stopped=stopped_out.cpu() if fired else final,
        stop_step=stop_step if fired else None,
        best=best.cpu() if best is not None else None,
        best_step=int(best_step) if best is not None else None,
        best_psnr=float(best_psnr) if best is not None else None,
        history=history, snapshots=snapshots, steps_run=step, seconds=seconds,
        backtracks=backtracks, config=config, code=code.cpu(), detections=detections)


def check_fit_arguments(steps, probe_every, lr, probes) -> tuple:
    """Check the arguments shared by :func:`fit` and :func:`dipkit.fit_many`; return the probes."""
    if not isinstance(steps, int) or steps < 1:
        raise DipkitError(f"steps must be a positive integer, got {steps!r}")
    if not isinstance(probe_every, int) or probe_every < 1:
        raise DipkitError(f"probe_every must be a positive integer, got {probe_every!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise DipkitError(f"lr must be a positive number, got {lr!r}")
    probes = tuple(probes)
    unknown = set(probes) - {"bands", "ratio"}
    if unknown:
        raise DipkitError(f"unknown probes {sorted(unknown)}: choose from 'bands', 'ratio'")
    return probes


def _as_rule(stop, probe_every: int) -> Optional[StoppingRule]:
    rule = make_rule(stop, probe_every=probe_every) if isinstance(stop, (str, type(None))) else stop
    if rule is not None and not isinstance(rule, StoppingRule):
        raise DipkitError(f"a stopping rule must be 'paper', 'eswmv', 'none' or a StoppingRule, got {stop!r}")
    if isinstance(rule, RatioRule) and rule.probe_every != probe_every:
        raise DipkitError(f"the ratio rule was made for probe_every={rule.probe_every}, the fit "
                          f"probes every {probe_every}; build it with probe_every={probe_every}")
    return rule


def _history(log: dict, steps: list, times: list, losses: torch.Tensor) -> History:
    def stack(key):
        values = log[key]
        return torch.stack(values).double().cpu().numpy() if values else None

    return History(step=np.asarray(steps, dtype=np.int64), loss=stack("loss"), psnr=stack("psnr"),
                   psnr_observation=stack("psnr_observation"), bands=stack("bands"),
                   ratio=stack("ratio"), time=np.asarray(times), loss_every_step=losses.double().cpu().numpy())


def _memory_check(model: DIPNetwork, height: int, width: int, device: torch.device, backtrack: bool) -> None:
    """Fail early with a clear DipkitError when the fit would not fit in memory (cheap when it
    plainly does: see :func:`dipkit.memory.quick_check`)."""
    from . import memory

    try:
        memory.quick_check(model, height, width, device, backtrack=backtrack)
    except DipkitError:
        raise
    except Exception as error:  # an estimate that fails must not stop a fit
        import warnings

        warnings.warn(f"dipkit could not estimate the memory of this fit ({error!r}); going on",
                      RuntimeWarning, stacklevel=3)


_AUTOCAST = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, torch.bfloat16: torch.bfloat16, torch.float16: torch.float16}


class _Runner:
    """The network as :func:`fit` runs it: optionally channels-last, compiled, under autocast.

    ``forward_backward`` returns the float32 output and the loss after ``loss.backward()``. A
    compiled network that fails in its first step falls back, with a warning, to the plain one.
    """

    def __init__(self, model: DIPNetwork, device: torch.device, channels_last: bool, compile: bool,
                 autocast) -> None:
        if autocast is not None and (not isinstance(autocast, (str, torch.dtype)) or autocast not in _AUTOCAST):
            raise DipkitError(f"autocast must be None, 'bf16' or 'fp16' (or that torch dtype), got {autocast!r}")
        self.model, self.device = model, device
        self.channels_last, self.compile = bool(channels_last), bool(compile)
        self.dtype = _AUTOCAST.get(autocast)
        self.compile_status = "off"
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.net = model
        if self.compile:
            try:
                self.net = torch.compile(model)
                self.compile_status = "on"
            except Exception as error:  # e.g. no compiler backend for this platform
                self._fall_back(error)
        self.steps = 0

    def _fall_back(self, error: Exception) -> None:
        import warnings

        self.net = self.model
        self.compile_status = f"failed, ran uncompiled: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); dipkit.fit goes on "
                      f"without compile=True", RuntimeWarning, stacklevel=4)

    def _forward(self, z: torch.Tensor, net=None) -> torch.Tensor:
        net = self.net if net is None else net
        if self.dtype is None:
            return net(z)
        with torch.autocast(device_type=self.device.type, dtype=self.dtype):
            out = net(z)
        return out.float()

    def _forward_plain(self, z: torch.Tensor) -> torch.Tensor:
        return self._forward(z, self.model)

    def forward_backward(self, z: torch.Tensor, loss_of):
        self.steps += 1
        if self.steps == 1 and self.net is not self.model:
            try:  # compiling happens at the first call
                out = self._forward(z)
                loss_of(out).backward()
                compiled = [None if p.grad is None else p.grad.clone() for p in self.model.parameters()]
            except Exception as error:
                compiled = error
            # Check the compiled gradients against the plain network's once: torch.compile has
            # been seen to return wrong gradients for this decoder (torch 2.13 on the CPU: mean-only
            # norm → LeakyReLU → bilinear ×2 → reflection pad → conv), which would silently change
            # the fit. This first step is the plain network's.
            self.model.zero_grad(set_to_none=True)
            out = self._forward_plain(z)
            loss = loss_of(out)
            loss.backward()
            if isinstance(compiled, Exception):
                self._fall_back(compiled)
            else:
                worst = _gradient_mismatch(compiled, [p.grad for p in self.model.parameters()])
                if worst > 1e-3:
                    self._fall_back(RuntimeError(f"its gradients differ from the uncompiled network's "
                                                 f"(largest difference {worst:.2g} of the largest gradient)"))
            return out, loss
        out = self._forward(z)
        loss = loss_of(out)
        loss.backward()
        return out, loss

    def config(self) -> dict:
        if self.compile_status == "on":
            self.compile_status = "on (first-step gradients checked against the uncompiled network)"
        return dict(channels_last=self.channels_last, compile=self.compile_status,
                    autocast=None if self.dtype is None else str(self.dtype).replace("torch.", ""))


def _gradient_mismatch(grads: list, reference: list) -> float:
    """Largest |g − g_ref| over all parameters, relative to the largest |g_ref| (0 when equal)."""
    scale = max((float(g.abs().max()) for g in reference if g is not None), default=0.0)
    worst = 0.0
    for g, ref in zip(grads, reference):
        if (g is None) != (ref is None):
            return math.inf
        if g is not None:
            worst = max(worst, float((g - ref).abs().max()))
    return worst / scale if scale > 0 else worst
