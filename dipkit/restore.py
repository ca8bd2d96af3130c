"""The restoration pipeline: a task's observation in, the restored image (in a :class:`Run`) out.

:func:`restore` is what a user calls, and what ``dipkit restore`` on the command line and the
benchmark (:mod:`dipkit.bench`) run::

    check → the task's degradation → pad to the network's multiple (reflect) → the preset's
    network and fit settings → dipkit.fit → undo the padding on every output → the task's finish

=======  ==================================  ===================================================
task     degradation (operator A)            finish (x: the observation, f: the output)
=======  ==================================  ===================================================
denoise  ``GaussianNoise(sigma)`` (A = I)    f
deblock  ``JPEG(quality)`` (A = I)           f
inpaint  ``Inpainting(mask)`` (A f = f ⊙ m)  f
enhance  ``Identity()``                      ``clip(x + clip(x − f, 0, 1), 0, 1)`` (:func:`enhance_detail`)
=======  ==================================  ===================================================

:func:`prepare` does everything before the fit and returns a :class:`Restoration`, whose
:meth:`~Restoration.run` fits it and :meth:`~Restoration.finish` brings a fit's :class:`Run` back
to the observation's size; ``restore(...)`` is ``prepare(...).run(...)``. The command line uses
the two steps to warn before a long fit and to keep the output of a fit stopped by Ctrl-C.

``dipkit.restore`` is the function :func:`restore` (as ``dipkit.fit`` is the function); import the
rest from the module: ``from dipkit.restore import prepare``.

Examples
--------
>>> import dipkit
>>> clean = dipkit.images.sample("astronaut", size=(100, 75))
>>> y = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
>>> run = dipkit.restore("denoise", y, profile="quick", steps=20, progress=False)  # doctest: +SKIP
>>> run.stopped.shape, run.config["restore"]["sigma_source"]                       # doctest: +SKIP
(torch.Size([1, 3, 100, 75]), 'estimated')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Optional, Union

import torch

from .baselines import estimate_noise
from .degradations import JPEG, Degradation, GaussianNoise, HeldOut, Identity, Inpainting
from .errors import DipkitError, ShapeError
from .fit import Run, as_observation, fit
from .images import Padding, pad_to_multiple
from .models import DIPNetwork
from .noiselevel import noise_sigma
from .presets import ORIGINAL_DIP, PAPER, TASKS, Profile, TaskPreset, get_profile
from .stopping import Discrepancy, HeldOutRule, scaled_eswmv

__all__ = ["restore", "prepare", "Restoration", "METHODS", "AUTO_STOP", "preset_for", "enhance_detail",
           "task_options"]

#: The methods of :func:`preset_for`: the paper's decoder, or the original DIP.
METHODS = ("paper", "dip")

#: What ``stop="auto"`` (the default of :func:`restore` and ``dipkit restore``) uses per task: the
#: rule with the smallest mean detection gap in the book's stopping study (chapter 11, "Which
#: stopping rule?": the paper's method at 128², every rule watching the same fits). Denoising:
#: the discrepancy principle with the given or estimated σ (white noise: the premise of the
#: principle holds); deblocking: ES-WMV (the JPEG error is fitted along with the image, so the
#: residual says nothing); inpainting: none, the whole budget (the known pixels are exact, so
#: there is no noise to fit: the fits ended within a few tenths of a dB of their peak, and every
#: rule gave up more than that to save time); enhance: none (the paper's 100 steps).
#: A preset without a rule (the original DIP's fixed budget, enhance) keeps its budget.
AUTO_STOP = {"denoise": "discrepancy", "deblock": "eswmv", "inpaint": "none", "enhance": "none"}

#: The option that belongs to each task only.
_TASK_OPTIONS = {"mask": "inpaint", "sigma": "denoise", "quality": "deblock"}


def preset_for(task: str, method: str = "paper") -> TaskPreset:
    """The settings of ``method`` for ``task``.

    Parameters
    ----------
    task : {'denoise', 'deblock', 'inpaint', 'enhance'}
    method : {'paper', 'dip'}
        ``'paper'``: :data:`dipkit.presets.PAPER`. ``'dip'``: the original DIP,
        :data:`dipkit.presets.ORIGINAL_DIP`; the tasks it has no protocol for (deblock, enhance)
        use its denoising protocol. Both are described on the book's protocol page
        (book/protocol.md, sections "Task settings of the paper" and "The original DIP protocol").

    Returns
    -------
    TaskPreset
    """
    _check_task(task)
    if method == "paper":
        return PAPER[task]
    if method == "dip":
        return ORIGINAL_DIP.get(task, ORIGINAL_DIP["denoise"]).with_(task=task)
    raise DipkitError(f"unknown method {method!r}: choose from {METHODS}")


def enhance_detail(image: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """The paper's detail enhancement: ``clip(x + clip(x − f, 0, 1), 0, 1)``.

    See the book's protocol page (book/protocol.md, section "Detail enhancement").

    Parameters
    ----------
    image : Tensor (N, C, H, W) in [0, 1]
        The image x that the network was fitted to.
    output : Tensor (N, C, H, W) in [0, 1]
        The network output f (a low-pass version of x after the preset's 100 steps).

    Returns
    -------
    Tensor (N, C, H, W) in [0, 1]: x with its positive detail x − f added once more (≥ x).
    """
    return (image + (image - output).clamp(0, 1)).clamp(0, 1)


def task_options(task: str, degradation: Degradation) -> dict:
    """What :func:`restore` takes of a simulated observation's degradation: ``sigma`` (denoise),
    ``quality`` (deblock) or ``mask`` (inpaint); nothing for enhance."""
    name = {"denoise": "sigma", "deblock": "quality", "inpaint": "mask"}.get(task)
    return {} if name is None else {name: getattr(degradation, name)}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DipkitError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")


@dataclass
class Restoration:
    """A restoration prepared up to its fit (made by :func:`prepare`).

    Attributes
    ----------
    task : str
    model : DIPNetwork
        The network to fit (``out_channels`` = C; sides a multiple of ``model.multiple`` = m).
    observation : Tensor (1, C, H2, W2)
        The observation padded by reflection: H2 = ceil(H / m) · m, the same for W2.
    degradation : Degradation
        The task's degradation; for inpainting its mask is padded like the observation.
    clean : Tensor (1, C, H2, W2) or None
        The clean image, padded likewise (for the PSNR history and the oracle best only).
    padding : Padding
        How the observation was padded; ``padding.undo`` crops outputs back to H × W.
    image : Tensor (1, C, H, W)
        The observation as given (the enhance finish adds its detail to it).
    seed : int
        Seed of the network's weights, its input code and its input noise.
    fit : dict
        Keyword arguments of :func:`dipkit.fit` from the preset and the profile (steps, lr,
        backtrack, stop, probe_every, input_noise, ema) and the caller's fit options.
    record : dict
        What ``run.config['restore']`` records: task, method, preset (the settings used), profile,
        size, padding, sigma (in [0, 1] units) and where it came from, quality, known fraction,
        finish.
    """

    task: str
    model: DIPNetwork
    observation: torch.Tensor
    degradation: Degradation
    clean: Optional[torch.Tensor]
    padding: Padding
    image: torch.Tensor
    seed: int
    fit: dict
    record: dict = field(default_factory=dict)

    def fit_arguments(self, **options) -> dict:
        """The keyword arguments of ``dipkit.fit(self.model, self.observation, ...)``, with
        ``options`` (e.g. device, progress, monitor) added."""
        return {**self.fit, "degradation": self.degradation, "clean": self.clean, "seed": self.seed,
                **options}

    def run(self, *, device=None, progress: bool = True, monitor: Optional[dict] = None) -> Run:
        """Fit the network and return the finished Run (see :func:`restore`)."""
        run = fit(self.model, self.observation,
                  **self.fit_arguments(device=device, progress=progress, monitor=monitor))
        return self.finish(run)

    def finish(self, run: Run) -> Run:
        """A fit's Run brought back to the observation: every output (final, stopped, best, the
        detections', the snapshots) cropped to H × W and passed through the task's finish, and
        ``config['restore']`` added. Call it once per Run; the history is the fit's own."""
        def back(x):
            return None if x is None else self._finish_image(self.padding.undo(x))

        detections = {name: replace(d, output=back(d.output)) for name, d in run.detections.items()}
        return replace(run, final=back(run.final), stopped=back(run.stopped), best=back(run.best),
                       snapshots={step: back(x) for step, x in run.snapshots.items()},
                       detections=detections, config={**run.config, "restore": dict(self.record)})

    def _finish_image(self, output: torch.Tensor) -> torch.Tensor:
        if self.task == "enhance":
            return enhance_detail(self.image.to(output.device), output)
        return output


_PARAMETERS = """
    Parameters
    ----------
    task : {'denoise', 'deblock', 'inpaint', 'enhance'}
    observation : Tensor (1, C, H, W) or (C, H, W), float in [0, 1], C = 1 or 3
        The degraded image as it is (noisy, JPEG-compressed, with missing pixels), or the image
        to enhance. Any size of at least the network's ``min_size`` (64 at depth 5).
    mask : Tensor (H, W), (1, H, W) or (1, 1, H, W), bool or 0/1
        inpaint only, and required there: 1 (True) = known pixel.
    sigma : float, optional
        denoise only: the noise level in [0, 1] intensity units (25/255 for the paper's σ = 25).
        Default: estimated from the observation (:func:`dipkit.baselines.estimate_noise`). It is
        recorded; the fit does not use it (the operator is the identity).
    quality : int, optional
        deblock only: the JPEG quality of the observation when known (recorded only).
    method : {'paper', 'dip'}
        The settings of :func:`preset_for`.
    preset : TaskPreset, optional
        Settings that replace the method's (e.g. ``PAPER['denoise'].with_(lipschitz=2.0)``).
    profile : Profile or str, optional
        Network width, depth and probe interval (default :func:`dipkit.get_profile`).
    steps : int, optional
        Maximum number of steps (default: the preset's, capped by the profile).
    stop : {'auto', 'paper', 'eswmv', 'discrepancy', 'heldout', 'none'} or StoppingRule, optional
        The stopping rule. :func:`restore`'s default is ``'auto'``, the rule the book's stopping
        study found best for the task (:data:`AUTO_STOP`; a preset with a fixed budget, such as
        the original DIP's, keeps it); :func:`prepare`'s default is None, the preset's own rule
        (the paper's ratio rule; 'none' for enhance), as the experiments use it. ``'discrepancy'`` stops
        when the residual falls to the noise level (denoising: ``sigma``, given or estimated;
        deblocking: the derived σ of JPEG's error, needs ``quality``); ``'heldout'`` holds 5 %
        of the pixels out (``heldout``) and stops at the minimum of their error
        (:func:`stop_rule`).
    seed : int
        Seed of the network's weights, its input code and its input noise.
    clean : Tensor like ``observation``, optional
        The clean image, for the PSNR history and the oracle-best output (never fitted).
    model : DIPNetwork, optional
        A network to fit instead of the preset's (its own weights; the preset gives the fit).
    heldout : float, optional
        Hold this share of the known pixels out of the loss (e.g. 0.05; chosen with ``seed``), so
        that the ``'heldout'`` rule (:class:`dipkit.stopping.HeldOutRule`) can stop at the
        minimum of their error (:class:`dipkit.degradations.HeldOut`). Default: none held out.
    **fit_options
        Further keyword arguments of :func:`dipkit.fit` (lr, probe_every, snapshot_every, ...).
"""

_RAISES = """
    Raises
    ------
    DipkitError
        An unknown task or method, an option of another task, inpainting without a mask.
    ShapeError
        A mask or clean image of another size, an observation smaller than the network's
        ``min_size`` or not one image of 1 or 3 channels.
"""


def prepare(task: str, observation: torch.Tensor, *, mask=None, sigma: Optional[float] = None,
            quality: Optional[int] = None, method: str = "paper", preset: Optional[TaskPreset] = None,
            profile: Union[None, str, Profile] = None, steps: Optional[int] = None, stop=None,
            seed: int = 0, clean: Optional[torch.Tensor] = None, model: Optional[DIPNetwork] = None,
            heldout: Optional[float] = None, **fit_options) -> Restoration:
    preset = preset or preset_for(task, method)
    _check_options(task, dict(mask=mask, sigma=sigma, quality=quality), fit_options)
    y = as_observation(observation)
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    model = model if model is not None else preset.model(y.shape[1], profile, seed=seed)
    _check_size(y, model)
    degradation, known = _degradation(task, y, mask, sigma, quality)
    degradation = _padded(degradation, model.multiple)
    requested = stop
    if stop == "auto":
        stop = None if preset.stop == "none" else AUTO_STOP[task]   # a fixed budget stays one
    if stop == "heldout" and heldout is None:
        heldout = HELDOUT_FRACTION
    if heldout is not None:
        degradation = HeldOut(degradation, heldout, seed=seed)
    padded, padding = pad_to_multiple(y, model.multiple)
    fit_kwargs = preset.fit_kwargs(profile, **({"steps": steps} if steps is not None else {}), **fit_options)
    if stop is not None:   # a rule by name gets the fit's own budget and probe interval
        fit_kwargs["stop"] = stop_rule(stop, degradation, y, fit_kwargs["steps"], fit_kwargs["probe_every"])
    record = dict(task=task, method=method, preset=asdict(preset), profile=profile.name,
                  height=y.shape[-2], width=y.shape[-1],
                  padding=dict(top=padding.top, bottom=padding.bottom, left=padding.left,
                               right=padding.right), heldout=heldout, **known,
                  stop=_named(requested), stop_used=_named(stop),
                  finish="clip(x + clip(x - f, 0, 1), 0, 1)" if task == "enhance" else None)
    return Restoration(task=task, model=model, observation=padded,
                       degradation=degradation,
                       clean=_padded_clean(clean, y, model.multiple), padding=padding, image=y,
                       seed=seed, fit=fit_kwargs,
                       record=record)


prepare.__doc__ = f"""Everything of :func:`restore` before the fit: checks, degradation, padding, network.
{_PARAMETERS}
    Returns
    -------
    Restoration
        ``.run(device=..., progress=..., monitor=...)`` fits it and returns the Run of
        :func:`restore`; ``.model``, ``.observation`` (padded) and ``.fit`` say what it will fit.
{_RAISES}"""


def restore(task: str, observation: torch.Tensor, *, mask=None, sigma: Optional[float] = None,
            quality: Optional[int] = None, method: str = "paper", preset: Optional[TaskPreset] = None,
            profile: Union[None, str, Profile] = None, steps: Optional[int] = None, stop="auto",
            seed: int = 0, device=None, clean: Optional[torch.Tensor] = None, progress: bool = True,
            monitor: Optional[dict] = None, model: Optional[DIPNetwork] = None, **fit_options) -> Run:
    restoration = prepare(task, observation, mask=mask, sigma=sigma, quality=quality, method=method,
                          preset=preset, profile=profile, steps=steps, stop=stop, seed=seed,
                          clean=clean, model=model, **fit_options)
    return restoration.run(device=device, progress=progress, monitor=monitor)


restore.__doc__ = f"""Restore one image with the Deep Image Prior: the task's whole pipeline.

    Pads the observation to the network's multiple by reflection (the mask and the clean image
    too), fits the preset's network to it with :func:`dipkit.fit`, crops every output back and
    applies the task's finish (enhance: :func:`enhance_detail`).
{_PARAMETERS}    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    progress : bool
        Show the fit's progress bar.
    monitor : dict[str, StoppingRule or str], optional
        Rules that watch the fit without stopping it (``run.detections``).

    Returns
    -------
    Run
        As :func:`dipkit.fit` returns it, with every image of the observation's size (1, C, H, W):
        ``stopped`` is the restored image (for enhance, the enhanced one, as are ``final``,
        ``best`` and the others). ``history`` is the fit's, measured on the padded images
        (H2 × W2). ``config['restore']`` records task, method, preset, profile, size, padding
        (rows and columns added on each side), ``sigma`` (in [0, 1] units; None but for denoise)
        with ``sigma_source`` ('given' or 'estimated'), ``quality``, ``known_fraction`` and the finish.
{_RAISES}
    Examples
    --------
    >>> import dipkit
    >>> from dipkit.degradations import bernoulli_mask
    >>> clean = dipkit.images.sample("camera", size=(100, 75))
    >>> mask = bernoulli_mask(100, 75, 0.5, seed=0)
    >>> y = clean * mask
    >>> run = dipkit.restore("inpaint", y, mask=mask, profile="quick", steps=20,
    ...                      progress=False)                                 # doctest: +SKIP
    >>> run.stopped.shape, run.config["restore"]["padding"]                 # doctest: +SKIP
    (torch.Size([1, 1, 100, 75]), {{'top': 14, 'bottom': 14, 'left': 10, 'right': 11}})
"""


def _check_options(task: str, given: dict, fit_options: dict) -> None:
    """Refuse an option of another task, inpainting without a mask, and a degradation."""
    _check_task(task)
    for name, owner in _TASK_OPTIONS.items():
        if given[name] is not None and task != owner:
            raise DipkitError(f"{name}= is for {owner!r}, not {task!r}; drop it")
    if task == "inpaint" and given["mask"] is None:
        raise DipkitError("inpainting needs the mask of known pixels: pass mask=... (1 = known)")
    if "degradation" in fit_options:
        raise DipkitError("restore builds the task's degradation itself: give mask=, sigma= or "
                          "quality= instead of degradation=")


def _check_size(y: torch.Tensor, model: DIPNetwork) -> None:
    h, w = y.shape[-2:]
    if min(h, w) < model.min_size:
        raise ShapeError(f"the observation is {w}x{h} pixels, too small: restore needs at least "
                         f"{model.min_size}x{model.min_size} (the network starts at 1/{model.multiple} "
                         f"of the size)")


#: The share of the known pixels the ``'heldout'`` rule holds out of the loss by default.
HELDOUT_FRACTION = 0.05


def _named(rule) -> Optional[str]:
    """A stopping rule as the record keeps it: its name, or the class name of a rule object."""
    return rule if rule is None or isinstance(rule, str) else type(rule).__name__


def stop_rule(stop, degradation: Optional[Degradation], observation: Optional[torch.Tensor], steps: int,
              probe_every: int):
    """The stopping rule a name asks for, with what it needs of the task; anything else as it is.

    Only ``'discrepancy'`` reads ``degradation`` and ``observation``; ``'heldout'`` reads the
    budget and the probe interval (its patience is a multiple of it).

    ``'discrepancy'``: Morozov's principle with the observation's noise level
    (:func:`dipkit.noiselevel.noise_sigma`: the given or estimated σ for denoising, the derived σ
    of the quantisation error for JPEG; a clear error for noise-free inpainting). ``'heldout'``:
    the minimum of the held-out pixels' error (the degradation must hold pixels out), with
    ES-WMV's patience at this budget (:func:`dipkit.stopping.scaled_eswmv`).
    """
    if stop == "discrepancy":
        base = degradation.base if isinstance(degradation, HeldOut) else degradation
        if isinstance(base, Identity):
            raise DipkitError("the discrepancy rule needs the noise level of the observation: for "
                              "deblocking give the JPEG quality (quality=, --quality); for enhance it "
                              "has no meaning (no noise): use another rule")
        return Discrepancy(sigma=noise_sigma(degradation, observation))
    if stop == "heldout":
        return HeldOutRule(patience=scaled_eswmv(steps, probe_every).patience)
    return stop


def _degradation(task: str, y: torch.Tensor, mask, sigma, quality) -> tuple:
    """(the task's degradation at the observation's size, what to record of it)."""
    record = dict(sigma=None, sigma_source=None, quality=quality, known_fraction=1.0)
    if task == "inpaint":
        op = Inpainting(mask)
        if op.mask.shape[-2:] != y.shape[-2:]:
            (mh, mw), (h, w) = op.mask.shape[-2:], y.shape[-2:]
            raise ShapeError(f"the mask is {mh}x{mw} (H x W) but the observation is {h}x{w}; give "
                             f"the mask of the observation's size (1 = known)")
        record.update(known_fraction=op.p_known)
        return op, record
    if task == "denoise":
        source = "given" if sigma is not None else "estimated"
        sigma = float(sigma) if sigma is not None else float(estimate_noise(y)[0])
        record.update(sigma=sigma, sigma_source=source)
        return GaussianNoise(sigma), record
    if task == "deblock" and quality is not None:
        return JPEG(quality), record
    return Identity(), record


def _padded(degradation: Degradation, multiple: int) -> Degradation:
    """The degradation for the padded observation: an inpainting mask padded as it was."""
    if not isinstance(degradation, Inpainting):
        return degradation
    return Inpainting(pad_to_multiple(degradation.mask.float(), multiple)[0] > 0.5)


def _padded_clean(clean, y: torch.Tensor, multiple: int) -> Optional[torch.Tensor]:
    if clean is None:
        return None
    x = as_observation(clean, "clean")
    if x.shape != y.shape:
        raise ShapeError(f"the clean image {tuple(x.shape)} and the observation {tuple(y.shape)} "
                         f"differ in shape; give the clean image of the observation")
    return pad_to_multiple(x, multiple)[0]
