"""Fit Deep Image Prior networks: :func:`fit` (one network) and :func:`fit_many` (K at once).

Both run the engine of :mod:`dipkit.engine`: Adam on ``loss(A f_θ(z), y)``, the output measured
every ``probe_every`` steps (PSNR against the clean image when given, the frequency-band
correspondence against the observation, the blurriness/sharpness ratio), and the behaviour of a
fit (output EMA, snapshots, backtracking, the oracle best, the progress bar, stopping and
monitored rules, your own callbacks, checkpoints) in callbacks (:mod:`dipkit.callbacks`).
:func:`fit` is the engine with one member; :func:`fit_many` with K, each member equal to the
single fit with its seed.
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from . import callbacks as cb
from .degradations import Degradation, Identity, Inpainting
from .engine import Engine, HistoryLog
from .errors import DipkitError, ShapeError
from .images import check_image
from .members import make_members, member_models
from .models import DIPNetwork
from .run import Detection, History, Run
from .stopping import StoppingRule

__all__ = ["fit", "fit_many", "Run", "History", "Detection", "default_device", "as_observation",
           "member_models"]

#: The share of exactly-zero pixels above which an observation given without its operator is
#: taken for a masked one (a clean photograph rarely has a quarter of its pixels at 0 in every
#: channel; a 50 % Bernoulli mask leaves half).
MASKED_ZEROS = 0.25


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


_PARAMETERS = """
    steps : int
        Maximum number of optimizer steps.
    lr : float
        Adam's learning rate (paper: 1e-3; original DIP denoising: 1e-2).
    degradation : Degradation, optional
        The forward operator A of the loss ``mean((A f − y)²)``. Default: the one that made the
        observation (``degradation.observe`` tags its output), else the identity. An
        observation made by :class:`~dipkit.degradations.Inpainting`, or one that looks masked
        (a quarter or more of its pixels exactly 0), is never fitted without its mask: pass
        ``degradation=Inpainting(mask)`` (or ``Identity()`` to fit it as it is).
    probe_every : int
        Probe (and feed the rules) every this many steps, and at the last step.
    stop : {'paper', 'eswmv', 'discrepancy', 'patience', 'none'} or StoppingRule, optional
        The stopping rule (its parameters are in steps; see :mod:`dipkit.stopping`).
    clean : Tensor, optional
        The clean image(s), for the PSNR history and the oracle-best output. Never used for fitting.
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    ema : float, optional
        Report the exponential moving average of the outputs (original DIP: 0.99) instead of
        the raw output, in the probes and the results.
    backtrack : bool
        At each probe, if PSNR(A f, y) dropped by more than 5 dB since the last probe or the loss
        became NaN/inf, restore the parameters (and Adam's moments) of the last probe.
    input_noise : float
        Std of Gaussian noise added to the code at each step (original DIP: 1/30; paper: 0).
    probes : iterable of {'bands', 'ratio'}
        Which probes to compute besides loss and PSNR (a rule adds what it needs).
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
    callbacks : list of Callback, optional
        Your own :class:`~dipkit.callbacks.Callback` objects (e.g.
        :class:`~dipkit.recorders.SpectralNormRecorder`), called after the built-in ones.
    checkpoint : str or Path, optional
        Write the whole state of the fit there every ``checkpoint_every`` steps, on Ctrl-C and at
        the end; when the file exists, resume from it (a checkpoint of another fit is an error;
        rules and callbacks resume with their saved state). The resumed fit equals the
        uninterrupted one.
    checkpoint_every : int
        Steps between checkpoints (default 500).

    Ctrl-C ends the fit early and returns what it has (``Run.interrupted`` is True).
"""

_RAISES = """
    Raises
    ------
    ShapeError
        Observation, clean image and model do not fit together.
    DivergenceError
        The loss became NaN/inf and backtracking is off or could not recover.
"""


def fit(model: DIPNetwork, observation: torch.Tensor, *, steps: int, lr: float = 1e-3,
        degradation: Optional[Degradation] = None, probe_every: int = 10,
        stop: Union[None, str, StoppingRule] = None, clean: Optional[torch.Tensor] = None,
        seed: int = 0, device=None, ema: Optional[float] = None, backtrack: bool = False,
        input_noise: float = 0.0, probes: Iterable[str] = ("bands", "ratio"), n_bands: int = 5,
        snapshot_every: Union[None, int, Iterable[int]] = None, progress: bool = True,
        max_backtracks: int = 10, monitor: Optional[dict] = None, channels_last: bool = False,
        compile: Union[bool, str] = False, autocast=None, callbacks: Sequence = (), checkpoint=None,
        checkpoint_every: int = 500) -> Run:
    if not isinstance(model, DIPNetwork):
        raise DipkitError("model must be a DIPNetwork from dipkit.decoder, hourglass or convnet")
    y = as_observation(observation)
    x = None if clean is None else as_observation(clean, "clean")
    options = dict(steps=steps, lr=lr, degradation=_operator(degradation, [observation]),
                   probe_every=probe_every, stop=stop, device=device, ema=ema, backtrack=backtrack,
                   input_noise=input_noise, probes=probes, n_bands=n_bands,
                   snapshot_every=snapshot_every, progress=progress, max_backtracks=max_backtracks,
                   monitor=monitor, callbacks=callbacks, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every)
    runner = dict(method="loop", channels_last=channels_last, compile=compile, autocast=autocast)
    return _run([model], y, x, [int(seed)], options, runner, batched=False)[0]


fit.__doc__ = f"""Fit ``model`` to ``observation`` with Adam; probe every ``probe_every`` steps.

    Parameters
    ----------
    model : DIPNetwork
        From :func:`dipkit.decoder`, :func:`dipkit.hourglass` or :func:`dipkit.convnet`. It is
        moved to ``device`` and trained in place.
    observation : Tensor (1, C, H, W) in [0, 1]
        The degraded image y: noisy, JPEG-compressed, or masked (zeros where unknown).
        C must equal the model's ``out_channels``; H, W must suit the model.
    seed : int
        Seed of the input code and of the input perturbation. The weights are seeded when the
        model is built.
    channels_last : bool
        Keep the network's weights and activations in channels-last memory format.
    compile : bool or str
        Run the network through :func:`torch.compile` (True: its default mode; or a mode by
        name: ``'reduce-overhead'`` replays the network as CUDA graphs on a GPU); the first step
        checks its gradients against the plain network's and falls back, with a warning, when
        they differ. ``Run.config['compile']`` records what happened.
    autocast : {{None, 'bf16', 'fp16'}} or torch.dtype
        Run the network under :func:`torch.autocast` (probes, loss and Adam stay float32).
{_PARAMETERS}
    Returns
    -------
    Run
{_RAISES}
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


def fit_many(model: Union[DIPNetwork, Sequence[DIPNetwork]], observations, *, steps: int,
             seeds: Union[int, Iterable[int]] = 0, lr: float = 1e-3,
             degradation: Optional[Degradation] = None, probe_every: int = 10,
             stop: Union[None, str, StoppingRule, Sequence] = None, clean=None, device=None,
             probes: Iterable[str] = ("bands", "ratio"), n_bands: int = 5, progress: bool = True,
             method: str = "auto", ema: Optional[float] = None, backtrack: bool = False,
             input_noise: float = 0.0, snapshot_every=None, max_backtracks: int = 10,
             monitor: Optional[dict] = None, callbacks: Sequence = (), checkpoint=None,
             checkpoint_every: int = 500) -> list[Run]:
    y = _stack_images(observations, "observations")
    x = _stack_images(clean, "clean")
    members, seeds = _members(model, seeds, y, x, stop)
    options = dict(steps=steps, lr=lr, degradation=_operator(degradation, _as_list(observations)),
                   probe_every=probe_every, stop=stop, device=device, ema=ema, backtrack=backtrack,
                   input_noise=input_noise, probes=probes, n_bands=n_bands,
                   snapshot_every=snapshot_every, progress=progress, max_backtracks=max_backtracks,
                   monitor=monitor, callbacks=callbacks, checkpoint=checkpoint,
                   checkpoint_every=checkpoint_every)
    return _run(members, y, x, seeds, options, dict(method=method), batched=True)


fit_many.__doc__ = f"""Fit K networks at once; member k equals ``fit(model_k, observation_k, seed=seeds[k])``.

    The same engine as :func:`fit` over K members: every callback and rule runs per member, and
    a member whose stopping rule fires stops there (frozen) and leaves the batch.

    Parameters
    ----------
    model : DIPNetwork or sequence of K DIPNetwork
        One network: the members are built from its config with weight seeds ``seeds``
        (:func:`member_models`; its own weights are not used). A list: the members, all of one
        architecture, trained in place as :func:`fit` trains its model.
    observations : Tensor (1, C, H, W), (K, C, H, W), or list of K tensors (1, C, H, W)
        One observation shared by all members (K seeds of one image) or one per member (K images
        of one size). Values in [0, 1]. One degradation serves every member.
    seeds : int or sequence of K int
        Member k's seed: of its input code and input noise, and of its weights when ``model`` is
        one network. One int: the same seed for every member (K images fitted alike).
    method : {{'auto', 'vmap', 'loop'}}
        ``'vmap'``: one batched network (stacked parameters, :func:`torch.func.vmap`; each
        convolution a grouped one). ``'loop'``: the K networks one after the other in each step.
        ``'auto'``: vmap on CUDA, loop elsewhere (on a CPU grouped convolutions are slower).
{_PARAMETERS}
    ``stop`` may also be a sequence of K rules, one per member; a rule instance is copied.

    Returns
    -------
    list of Run
        One per member. ``Run.seconds`` is the wall time until that member stopped or the fit
        ended; ``Run.config['batched']`` is K.
{_RAISES}
    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("astronaut", size=64)
    >>> y = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
    >>> runs = dipkit.fit_many(dipkit.decoder(channels=8, depth=4), y, seeds=[0, 1, 2], steps=20,
    ...                        clean=clean, progress=False)
    >>> [r.history.psnr.shape for r in runs]
    [(2,), (2,), (2,)]
"""


def _run(models: list, y: torch.Tensor, x: Optional[torch.Tensor], seeds: list, options: dict,
         runner: dict, batched: bool) -> list[Run]:
    """Check, prepare and run the engine over the members; one Run each."""
    o = options
    probes = check_fit_arguments(o["steps"], o["probe_every"], o["lr"], o["probes"])
    k = len(models)
    _check_shapes(models[0], y, x, batched)
    stop_rules = cb.rule_copies(o["stop"], k, o["probe_every"])
    watches = [cb.RuleWatch(cb.rule_copies(r, k, o["probe_every"]), name, stops=False,
                            probe_every=o["probe_every"]) for name, r in (o["monitor"] or {}).items()]
    watches.append(cb.RuleWatch(stop_rules, stops=True, probe_every=o["probe_every"]))
    if any("ratio" in w.needs for w in watches) and "ratio" not in probes:
        probes = probes + ("ratio",)
    device = torch.device(o["device"]) if o["device"] is not None else default_device()
    _, _, h, w = y.shape
    _memory_check(models[0], h, w, device, o["backtrack"], k)
    for m in models:
        m.to(device).train()
    y, x = y.to(device), (x.to(device) if x is not None else None)
    degradation = o["degradation"].to(device) if hasattr(o["degradation"], "to") else o["degradation"]
    codes = torch.stack([m.make_code(h, w, s) for m, s in zip(models, seeds)]).to(device)
    if runner.get("channels_last"):
        codes = torch.stack([c.contiguous(memory_format=torch.channels_last) for c in codes])
    members = make_members(runner.pop("method"), models, codes, seeds, o["lr"], device,
                           input_noise=o["input_noise"], **runner)
    engine = Engine(members, observations=y, degradation=degradation, clean=x, steps=o["steps"],
                    probe_every=o["probe_every"], lr=o["lr"], probes=probes, n_bands=o["n_bands"],
                    callbacks=_callbacks(o, k, y, x, watches), device=device, k=k,
                    fingerprint=_fingerprint(models, seeds, y, degradation, o))
    engine.attach(models)
    if o["checkpoint"] is not None:
        engine.load_checkpoint(o["checkpoint"])
    engine.run()
    configs = [dict(model=m.config, steps=o["steps"], lr=o["lr"], degradation=repr(degradation),
                    probe_every=o["probe_every"], stop=repr(stop_rules[i]), seed=seeds[i],
                    device=str(device), ema=o["ema"], backtrack=o["backtrack"],
                    input_noise=o["input_noise"], probes=list(probes), n_bands=o["n_bands"],
                    **(dict(batched=k, member=i) if batched else {}))
               for i, m in enumerate(models)]
    return engine.results(models, seeds, codes[:, 0], configs)


def _callbacks(o: dict, k: int, y: torch.Tensor, x, watches: list) -> list:
    """The built-in callbacks in their order, then the user's, then the checkpoint writer."""
    chain = []
    if o["ema"] is not None:
        chain.append(cb.OutputEMA(o["ema"]))
    snapshots = cb.Snapshots.every(o["snapshot_every"], o["steps"])
    if snapshots is not None:
        chain.append(snapshots)
    if o["backtrack"]:
        chain.append(cb.Backtracking(o["max_backtracks"]))
    chain.append(HistoryLog())
    if x is not None:
        chain.append(cb.OracleBest(k, y))
    if o["progress"]:
        chain.append(cb.ProgressBar("fit" if k == 1 else f"fit_many (K={k})"))
    chain += watches
    for c in o["callbacks"]:
        if not isinstance(c, cb.Callback):
            raise DipkitError(f"callbacks must be dipkit.callbacks.Callback objects, got {c!r}; "
                              f"stopping rules go in stop= or monitor=")
        chain.append(c)
    if o["checkpoint"] is not None:
        chain.append(cb.Checkpoint(o["checkpoint"], o["checkpoint_every"]))
    return chain


def _fingerprint(models: list, seeds: list, y: torch.Tensor, degradation, o: dict) -> dict:
    """What a checkpoint must match to be resumed by this fit."""
    return dict(models=[m.config for m in models], seeds=list(seeds), shape=tuple(y.shape),
                observation=round(float(y.double().sum()), 6), degradation=repr(degradation),
                **{key: o[key] for key in ("steps", "lr", "probe_every", "ema", "backtrack", "input_noise")},
                stop=_rule_name(o["stop"]),
                monitor={name: _rule_name(r) for name, r in (o["monitor"] or {}).items()})


def _rule_name(rule):
    """A rule as a checkpoint's fingerprint names it: its name, its class, or a list of those
    (its state, parameters included, comes back from the checkpoint)."""
    if isinstance(rule, (list, tuple)):
        return [_rule_name(r) for r in rule]
    return rule if isinstance(rule, (str, type(None))) else type(rule).__name__


def _operator(degradation: Optional[Degradation], observations: list) -> Degradation:
    """The degradation a fit uses: the given one, else the one that made the observation, else
    the identity; never the identity for an observation that is (or looks) masked."""
    made = {id(d): d for d in (getattr(y, "dipkit_degradation", None) for y in observations) if d is not None}
    if degradation is not None:
        if not isinstance(degradation, Degradation):
            raise DipkitError(f"degradation must be a dipkit.degradations.Degradation, got {degradation!r}")
        task = getattr(degradation, "base", degradation)   # HeldOut wraps the task's operator
        for d in made.values():
            if isinstance(d, Inpainting) and not (isinstance(task, Inpainting) and task.same_mask(d)):
                raise DipkitError(f"the observation was made by {d!r} but the fit got degradation="
                                  f"{degradation!r}; pass the Inpainting with the observation's mask")
        return degradation
    if len(made) == 1:
        return next(iter(made.values()))
    for y in observations:
        zeros = float((torch.as_tensor(y) == 0).all(dim=-3).float().mean()) if torch.is_tensor(y) else 0.0
        if zeros >= MASKED_ZEROS:
            raise DipkitError(
                f"{zeros:.0%} of the observation's pixels are exactly 0: it looks masked, and fitting it "
                f"without its mask would fit the zeros; pass degradation=dipkit.degradations."
                f"Inpainting(mask) (1 = known), or degradation=dipkit.degradations.Identity() to "
                f"fit it as it is")
    return Identity()


def _check_shapes(model: DIPNetwork, y: torch.Tensor, x: Optional[torch.Tensor], batched: bool) -> None:
    _, c, h, w = y.shape
    if c != model.out_channels:
        raise ShapeError(f"the observation has {c} channel(s) but the model outputs "
                         f"{model.out_channels}; build the model with out_channels={c}")
    model.check_size(h, w)
    if x is not None and x.shape[1:] != y.shape[1:]:
        what = ("clean images", "observations") if batched else ("clean image", "observation")
        raise ShapeError(f"{what[0]} {tuple(x.shape)} and {what[1]} {tuple(y.shape)} differ in shape")


def check_fit_arguments(steps, probe_every, lr, probes) -> tuple:
    """Check the arguments shared by :func:`fit` and :func:`fit_many`; return the probes."""
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


def _memory_check(model: DIPNetwork, height: int, width: int, device: torch.device, backtrack: bool,
                  batch: int) -> None:
    """Fail early with a clear DipkitError when the fit would not fit in memory (cheap when it
    plainly does: see :func:`dipkit.memory.quick_check`)."""
    from . import memory

    try:
        memory.quick_check(model, height, width, device, backtrack=backtrack, batch=batch)
    except DipkitError:
        raise
    except Exception as error:  # an estimate that fails must not stop a fit
        import warnings

        warnings.warn(f"dipkit could not estimate the memory of this fit ({error!r}); going on",
                      RuntimeWarning, stacklevel=4)


# ---- fit_many's members ----

def _as_list(images) -> list:
    return list(images) if isinstance(images, (list, tuple)) else [images]


def _stack_images(images, name: str) -> Optional[torch.Tensor]:
    """(M, C, H, W) from a tensor (1 or M images) or a list of (1, C, H, W) tensors."""
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        if not images:
            raise DipkitError(f"{name} is an empty list")
        images = [as_observation(im, f"{name}[{i}]") for i, im in enumerate(images)]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise ShapeError(f"the {name} differ in shape {sorted(shapes)}; fit_many fits images of one "
                             f"size and channel count (pad or crop them to one size, or fit them apart)")
        return torch.cat(images)
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[0] > 1:
        return torch.cat([as_observation(im[None], f"{name}[{i}]") for i, im in enumerate(images)])
    return as_observation(images, name)


def _members(model, seeds, y: torch.Tensor, x: Optional[torch.Tensor], stop) -> tuple:
    """The K member networks and their seeds; every count given must agree."""
    given = isinstance(model, (list, tuple))
    counts = {}
    if given:
        counts["models"] = len(model)
    if not isinstance(seeds, (int, np.integer)):
        seeds = [int(s) for s in seeds]
        counts["seeds"] = len(seeds)
    if y.shape[0] > 1:
        counts["observations"] = y.shape[0]
    if x is not None and x.shape[0] > 1:
        counts["clean images"] = x.shape[0]
    if isinstance(stop, (list, tuple)):
        counts["stopping rules"] = len(stop)
    if len(set(counts.values())) > 1:
        raise ShapeError(f"fit_many got different numbers of members: "
                         f"{', '.join(f'{v} {k}' for k, v in counts.items())}; give K of each (or one "
                         f"observation / clean image / seed shared by all)")
    k = next(iter(counts.values()), None)
    if isinstance(seeds, (int, np.integer)):
        if k is None:
            raise DipkitError("give the members' seeds as a list (e.g. seeds=[0, 1, 2, 3]) when "
                              "fitting one image, or K observations, or a list of K models")
        seeds = [int(seeds)] * k
    if not seeds:
        raise DipkitError("seeds is empty: give one seed per member")
    members = list(model) if given else member_models(model, seeds)
    if not members or not all(isinstance(m, DIPNetwork) for m in members):
        raise DipkitError("model must be a DIPNetwork or a non-empty list of them")
    _check_architecture(members)
    return members, seeds


def _check_architecture(members: list) -> None:
    def signature(m):
        return ({n: tuple(p.shape) for n, p in m.named_parameters()},
                {k: v for k, v in m.config.items() if k != "seed"})

    first = signature(members[0])
    for i, m in enumerate(members[1:], 1):
        if signature(m) != first:
            raise ShapeError(f"model {i} differs in architecture from model 0; fit_many needs one "
                             f"architecture (fit different networks with separate fit calls)")
