"""One fit from its settings: the image, the observation, the network and the fit's keywords.

The settings of a stored record are plain JSON values; :func:`fit_setting` turns them into a
fit. Keys (all optional but ``image`` and ``task``):

============== ==============================================================================
image          a sample image name (:func:`dipkit.images.sample`), at the profile's size; with
               ``set``, the name of an image of that benchmark set
set            one of the paper's benchmark sets (:data:`dipkit.datasets.SETS`): the image is
               read from it, made gray for deblocking and inpainting, shrunk to a shorter side
               of the profile's size and cut to the network's multiple
               (:func:`dipkit.bench.prepare_image`); inpainting uses the set's own mask
mode           ``'rgb'`` (default) or ``'gray'``
task           ``'denoise'`` (``sigma``, in 1/255 units, default 25), ``'deblock'``
               (``quality``, default 10), ``'inpaint'`` (``mask``: ``'bernoulli'``, ``'block'``
               or ``'text'``), ``'enhance'`` (no degradation)
method         ``'paper'`` (:data:`dipkit.presets.PAPER`), ``'original'``
               (:data:`dipkit.presets.ORIGINAL_DIP`) or None: the decoder with the keys below
network        ``'decoder'``, ``'hourglass'`` or ``'convnet'`` (overrides the preset's)
lipschitz      λ of the 3×3 convolutions (None: no bound); ``upsample``; ``gaussian_sigma``
lr, backtrack, input_noise, ema, stop
               the fit's keywords (overriding the preset's)
heldout        hold this share of the known pixels out of the loss (seeded by ``seed``), for
               the ``'heldout'`` monitor (:func:`dipkit.restore.prepare`'s ``heldout``)
steps          the budget in steps (default: the preset's capped at the profile's, or the
               profile's); ``steps_fraction`` scales the profile's budget instead
probes         the probes (default ``['bands', 'ratio']``)
monitor        names of rules that watch the fit without stopping it: ``'paper'`` (the ratio
               rule, n = 100 steps, ε = 0.01), ``'eswmv'`` (window 100 steps, patience
               1000 steps scaled by the budget over the paper's 10 000) and
               ``'discrepancy'`` (Morozov's principle with the known σ, τ = 1; denoising only),
               ``'heldout'`` (the minimum of the held-out pixels' error, patience as ES-WMV's;
               needs ``heldout``)
seed           the network's weights, its input code and the observation's noise draw
============== ==============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .. import datasets, images as imaging
from ..bench import prepare_image
from ..degradations import JPEG, Degradation, GaussianNoise, Identity, Inpainting, bernoulli_mask, block_mask, text_mask
from ..errors import DipkitError
from ..fit import Run, fit
from ..models import convnet, decoder, hourglass
from ..presets import Profile, TaskPreset
from ..restore import prepare as restore_prepare, preset_for, stop_rule, task_options
from ..stopping import Discrepancy, RatioRule, scaled_eswmv

__all__ = ["Prepared", "prepare", "fit_setting", "monitor_rules"]

_NETWORKS = {"decoder": decoder, "hourglass": hourglass, "convnet": convnet}
_MASKS = {"bernoulli": lambda h, w: bernoulli_mask(h, w, p_known=0.5),
          "block": lambda h, w: block_mask(h, w, block=0.25),
          "text": lambda h, w: text_mask(h, w)}


@dataclass
class Prepared:
    """Everything a fit of one setting needs. Images are (1, C, H, W) float32 in [0, 1]."""

    clean: torch.Tensor
    observation: torch.Tensor
    degradation: Degradation
    model: torch.nn.Module
    kwargs: dict


def degradation_of(settings: dict, height: int, width: int, mask: Optional[torch.Tensor] = None) -> Degradation:
    """The degradation a setting names (its task and parameters); ``mask`` (1, 1, H, W) bool is a
    benchmark image's own inpainting mask, used unless the setting names one."""
    task = settings["task"]
    if task == "denoise":
        return GaussianNoise(settings.get("sigma", 25) / 255)
    if task == "deblock":
        return JPEG(settings.get("quality", 10))
    if task == "inpaint":
        if mask is not None and "mask" not in settings:
            return Inpainting(mask)
        kind = settings.get("mask", "bernoulli")
        if kind not in _MASKS:
            raise DipkitError(f"unknown mask {kind!r}: choose one of {sorted(_MASKS)}")
        return Inpainting(_MASKS[kind](height, width))
    if task == "enhance":
        return Identity()
    raise DipkitError(f"unknown task {task!r}: choose denoise, deblock, inpaint or enhance")


#: A fit with no method: the decoder (λ, upsampler from the settings), lr 1e-3, no
#: backtracking, no stopping rule.
_PLAIN = TaskPreset("denoise", lipschitz=None, backtrack=False, stop="none")


def _preset(settings: dict) -> TaskPreset:
    """The method's preset for the task (the plain one without a method), with the settings'
    overrides of lr, backtrack, input_noise, ema and stop."""
    method, task = settings.get("method"), settings["task"]
    if method is None:
        preset = _PLAIN.with_(task=task)
    elif method in ("paper", "original"):
        preset = preset_for(task, "paper" if method == "paper" else "dip")
    else:
        raise DipkitError(f"unknown method {method!r}: choose 'paper', 'original' or None")
    return preset.with_(**{k: settings[k] for k in ("lr", "backtrack", "input_noise", "ema", "stop")
                           if k in settings})


def _budget(settings: dict, profile: Profile, preset: TaskPreset) -> int:
    if "steps" in settings:
        return int(settings["steps"])
    steps = preset.fit_kwargs(profile)["steps"]
    return max(profile.probe_every, int(round(settings.get("steps_fraction", 1.0) * steps)))


def monitor_rules(names, steps: int, probe_every: int, degradation: Optional[Degradation] = None) -> dict:
    """The rules a setting's ``monitor`` names, with their parameters in steps."""
    rules = {}
    for name in names or ():
        if name == "paper":
            rules[name] = RatioRule(n=100, eps=0.01)
        elif name == "eswmv":
            rules[name] = scaled_eswmv(steps, probe_every)
        elif name == "discrepancy":
            if not isinstance(degradation, GaussianNoise):
                raise DipkitError("the monitored rule 'discrepancy' needs a known noise level: "
                                  "a denoising setting (task 'denoise')")
            rules[name] = Discrepancy(sigma=degradation.sigma, tau=1.0)
        elif name == "heldout":
            rules[name] = stop_rule(name, degradation, None, steps, probe_every)
        else:
            raise DipkitError(f"unknown monitored rule {name!r}: choose 'paper', 'eswmv', 'discrepancy' "
                              f"or 'heldout'")
    return rules


def _clean_image(settings: dict, profile: Profile, multiple: int) -> tuple:
    """The clean image (1, C, H, W) and a benchmark image's own mask (or None)."""
    if "set" not in settings:
        clean = imaging.sample(settings["image"], size=settings.get("size", profile.image_size))
        return (imaging.rgb_to_gray(clean) if settings.get("mode", "rgb") == "gray" else clean), None
    items = {item.name: item for item in datasets.load(settings["set"])}
    if settings["image"] not in items:
        raise DipkitError(f"set {settings['set']!r} has no image {settings['image']!r}: it has {sorted(items)}")
    item = prepare_image(items[settings["image"]], settings["task"], None,
                         settings.get("size", profile.image_size), multiple)
    return item.image, item.mask


def _model(settings: dict, profile: Profile, preset: TaskPreset, channels: int):
    network = settings.get("network", preset.network)
    if network not in _NETWORKS:
        raise DipkitError(f"unknown network {network!r}: choose one of {sorted(_NETWORKS)}")
    kw = dict(out_channels=channels, channels=settings.get("channels", profile.channels),
              depth=settings.get("depth", profile.depth), seed=settings["seed"])
    if network != "hourglass":
        kw["lipschitz"] = settings.get("lipschitz", preset.lipschitz)
    if network != "convnet":
        kw["upsample"] = settings.get("upsample", preset.upsample)
    if settings.get("gaussian_sigma") is not None:
        sigma = settings["gaussian_sigma"]
        kw["sigma"] = tuple(sigma) if isinstance(sigma, list) else sigma
    return _NETWORKS[network](**kw)


def prepare(settings: dict, profile: Profile) -> Prepared:
    """The clean image, the observation, the operator, the network and the fit's keywords: the
    observation made from a sample image with the setting's seed, then the restoration pipeline
    (:func:`dipkit.restore.prepare`) with the setting's network and budget."""
    if "image" not in settings or "task" not in settings:
        raise DipkitError(f"a setting needs at least 'image' and 'task', got {sorted(settings)}")
    clean, mask = _clean_image(settings, profile, 2 ** settings.get("depth", profile.depth))
    _, c, h, w = clean.shape
    op = degradation_of(settings, h, w, mask)
    seed = int(settings["seed"])
    preset = _preset(settings)
    steps = _budget(settings, profile, preset)
    plan = restore_prepare(settings["task"], op.observe(clean, seed=seed), preset=preset, profile=profile,
                           steps=steps, seed=seed, clean=clean, model=_model(settings, profile, preset, c),
                           probes=tuple(settings.get("probes", ("bands", "ratio"))),
                           monitor=monitor_rules(settings.get("monitor"), steps, profile.probe_every, op),
                           heldout=settings.get("heldout"),
                           **task_options(settings["task"], op))
    return Prepared(plan.clean, plan.observation, plan.degradation, plan.model, plan.fit)


def fit_setting(settings: dict, profile: Profile, *, device=None, progress: bool = False,
                prepared: Optional[Prepared] = None) -> tuple:
    """Run the fit a setting names; returns ``(run, prepared)``."""
    p = prepared or prepare(settings, profile)
    run: Run = fit(p.model, p.observation, degradation=p.degradation, clean=p.clean,
                   seed=int(settings["seed"]), device=device, progress=progress, **p.kwargs)
    return run, p
