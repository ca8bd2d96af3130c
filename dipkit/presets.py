"""Settings: the paper's per task, the original DIP's, and the quick/full run profiles.

A **profile** says how big a run is (image size, network width, number of steps); a **task
preset** says how the paper (or the original DIP) fits a task (λ, learning rate, upsampler,
stopping, backtracking). The chapters combine the two, so one code path serves a CPU check in
CI (``quick``) and the paper's scale on a GPU (``full``).

Examples
--------
>>> import dipkit
>>> prof = dipkit.presets.get_profile("quick")
>>> preset = dipkit.presets.PAPER["denoise"]
>>> model = preset.model(out_channels=3, profile=prof)
>>> kwargs = preset.fit_kwargs(prof)   # steps, lr, backtrack, stop, probe_every
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, replace
from typing import Optional

import torch

from .errors import DipkitError
from .models import DIPNetwork, decoder, hourglass

__all__ = ["Profile", "PROFILES", "get_profile", "TaskPreset", "PAPER", "ORIGINAL_DIP", "TASKS"]


@dataclass(frozen=True)
class Profile:
    """How big a run is.

    Attributes
    ----------
    name : str
        ``'quick'`` (CI), ``'cpu'`` (the published CPU results), ``'gpu'`` (the default on a GPU:
        minutes a chapter on a T4) or ``'full'`` (the paper's scale).
    image_size : int or None
        Side (pixels) of the square sample images; None keeps the images' own size.
    channels : int
        Width of the decoder's conv layers (paper: 128).
    depth : int
        Up-blocks of the decoder (paper: 5).
    steps : int
        Optimizer steps of a run (paper: 10 000).
    probe_every : int
        Steps between probes (paper's code: 1).
    seeds : int
        Seeds to average over where a chapter reports mean ± std.
    """

    name: str
    image_size: Optional[int]
    channels: int
    depth: int
    steps: int
    probe_every: int
    seeds: int

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line: the name and the sizes, e.g. ``'quick (64² images, 64 channels, 2000 steps)'``."""
        size = "native-size" if self.image_size is None else f"{self.image_size}²"
        return f"{self.name} ({size} images, {self.channels} channels, {self.steps} steps)"


PROFILES = {
    # CPU: 64² images and a 64-channel decoder, about 15 ms a step on two cores. Measured here
    # (astronaut, σ = 25/255, lr 1e-3): the unbounded decoder peaks near 25.0 dB at step ~250
    # and falls to ~21.5 dB by 3000; λ = 1.0 rises to ~25.4 dB with no decline. A 32-channel
    # decoder at 128² did not decline within 3000 steps, so it would not show the finding.
    "quick": Profile("quick", image_size=64, channels=64, depth=5, steps=2000, probe_every=10, seeds=3),
    # CPU, published pages: 128² images, a 64-channel decoder, 3000 steps. At this size the paper's
    # λ = 1.4 starts to control the fit (astronaut: no decline by step 3000, the unbounded decoder
    # falls ~2.4 dB after its peak); 0.19-0.23 s a step on two AVX2 cores, 0.08-0.09 s on AVX-512.
    "cpu": Profile("cpu", image_size=128, channels=64, depth=5, steps=3000, probe_every=10, seeds=3),
    # GPU, the default on CUDA (Colab): 256² images, the paper's 128-channel decoder, 3000 steps,
    # so that a chapter's fits take minutes on a T4-class GPU (the runner prints a measured
    # estimate before each fit). Not measured on a T4 yet: no GPU was available to this project's
    # sessions when it was added; the estimate printed before each fit is the measured number.
    "gpu": Profile("gpu", image_size=256, channels=128, depth=5, steps=3000, probe_every=10, seeds=3),
    # The paper's scale, only when asked (DIPKIT_PROFILE=full): hours a chapter on a T4.
    "full": Profile("full", image_size=512, channels=128, depth=5, steps=10000, probe_every=1, seeds=5),
}


_told = set()


def get_profile(name: Optional[str] = None) -> Profile:
    """The run profile: ``name``, else ``$DIPKIT_PROFILE``, else ``gpu`` on CUDA and ``quick`` otherwise.

    On a GPU the default is ``gpu`` (minutes a chapter on a T4-class GPU, e.g. Colab), never the
    paper's ``full`` scale (hours): that one runs only when asked. The first automatic choice on
    a GPU is printed, with how to change it.
    """
    if not (name or os.environ.get("DIPKIT_PROFILE")) and torch.cuda.is_available():
        name = "gpu"
        if name not in _told:
            _told.add(name)
            print(f"dipkit: a CUDA GPU and no DIPKIT_PROFILE: profile {PROFILES[name].describe()}; "
                  f"set DIPKIT_PROFILE=full for the paper's scale (hours a chapter on a T4) or "
                  f"DIPKIT_PROFILE=quick for the CPU's", file=sys.stderr)
    name = name or os.environ.get("DIPKIT_PROFILE") or "quick"
    if name not in PROFILES:
        raise DipkitError(f"unknown profile {name!r} (from DIPKIT_PROFILE or the argument): "
                          f"choose one of {sorted(PROFILES)}")
    return PROFILES[name]


TASKS = ("denoise", "deblock", "inpaint", "enhance")


@dataclass(frozen=True)
class TaskPreset:
    """How a task is fitted (the book's protocol page, book/protocol.md, sections "Task settings
    of the paper" and "The original DIP protocol").

    Attributes
    ----------
    task : str
        ``'denoise'``, ``'deblock'``, ``'inpaint'`` or ``'enhance'``.
    network : str
        ``'decoder'`` (the paper) or ``'hourglass'`` (the original DIP).
    lipschitz : float or None
        λ of the decoder's 3×3 convolutions.
    lr : float
        Adam's learning rate.
    steps : int
        Optimizer steps at the paper's scale.
    upsample : str
        Upsampler of the network.
    backtrack : bool
        Restore the parameters when PSNR(f, y) drops by more than 5 dB.
    stop : str
        Stopping rule (``'paper'``: the blurriness/sharpness ratio rule; ``'none'``).
    input_noise : float
        Std of the perturbation of the input code at each step.
    ema : float or None
        Exponential moving average of the outputs.
    sigma : float
        Noise level (denoising), in [0, 1] intensity units.
    quality : int
        JPEG quality (deblocking).
    p_known : float
        Fraction of known pixels (inpainting).
    """

    task: str
    network: str = "decoder"
    lipschitz: Optional[float] = 1.4
    lr: float = 1e-3
    steps: int = 10000
    upsample: str = "bilinear"
    backtrack: bool = True
    stop: str = "paper"
    input_noise: float = 0.0
    ema: Optional[float] = None
    sigma: float = 25 / 255
    quality: int = 10
    p_known: float = 0.5

    def model(self, out_channels: int = 3, profile: Optional[Profile] = None, *, seed: int = 0,
              **overrides) -> DIPNetwork:
        """The network of this preset at the profile's width and depth (overrides win)."""
        profile = profile or get_profile()
        if self.network == "hourglass":
            kwargs = dict(out_channels=out_channels, channels=profile.channels, depth=profile.depth,
                          upsample=self.upsample, seed=seed)
            return hourglass(**{**kwargs, **overrides})
        kwargs = dict(out_channels=out_channels, channels=profile.channels, depth=profile.depth,
                      upsample=self.upsample, lipschitz=self.lipschitz, seed=seed)
        return decoder(**{**kwargs, **overrides})

    def fit_kwargs(self, profile: Optional[Profile] = None, **overrides) -> dict:
        """Keyword arguments of :func:`dipkit.fit`: the preset's, with the profile's steps.

        The quick and cpu profiles cap the steps at their own budget; the full profile runs the preset's.
        """
        profile = profile or get_profile()
        steps = self.steps if profile.name == "full" else min(self.steps, profile.steps)
        kwargs = dict(steps=steps, lr=self.lr, backtrack=self.backtrack, stop=self.stop,
                      probe_every=profile.probe_every, input_noise=self.input_noise, ema=self.ema)
        kwargs.update(overrides)
        return kwargs

    def with_(self, **changes) -> "TaskPreset":
        """A copy with some fields changed."""
        return replace(self, **changes)


#: The paper's settings per task (the book's protocol page, book/protocol.md, section "Task
#: settings of the paper").
PAPER = {
    "denoise": TaskPreset("denoise", lipschitz=1.4),
    "deblock": TaskPreset("deblock", lipschitz=1.4),
    "inpaint": TaskPreset("inpaint", lipschitz=1.6, backtrack=False),
    "enhance": TaskPreset("enhance", lipschitz=1.0, steps=100, backtrack=False, stop="none"),
}

#: The original Deep Image Prior protocol, the baseline the paper improves on (the book's protocol
#: page, book/protocol.md, section "The original DIP protocol").
ORIGINAL_DIP = {
    "denoise": TaskPreset("denoise", network="hourglass", lipschitz=None, lr=1e-2, steps=3000,
                          backtrack=True, stop="none", input_noise=1 / 30, ema=0.99),
    "inpaint": TaskPreset("inpaint", network="hourglass", lipschitz=None, lr=1e-3, steps=11000,
                          backtrack=False, stop="none", input_noise=0.03),
}
