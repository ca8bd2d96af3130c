"""An experiment declared as data: fixed settings, the axes it sweeps, the seeds, per-profile sizes.

An :class:`Experiment` names one study of the book (a λ sweep, an architecture comparison, a σ
sweep, rules watching the same fits). Its *settings* are plain JSON values, so that a stored
record says exactly which fit it is, and the runner can tell which fits are already stored.

Examples
--------
>>> from dipkit.experiments import Experiment
>>> exp = Experiment("demo", base={"image": "astronaut", "task": "denoise", "sigma": 25},
...                  axes={"lipschitz": [None, 1.4]}, seeds=2)
>>> [ (s["lipschitz"], s["seed"]) for s in exp.settings("quick")]
[(None, 0), (None, 1), (1.4, 0), (1.4, 1)]
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from ..errors import DipkitError
from ..presets import PROFILES, Profile

__all__ = ["Experiment", "setting_key"]


def setting_key(settings: dict) -> str:
    """The canonical JSON of one fit's settings: the identity of its stored record."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _profile_name(profile: Union[str, Profile]) -> str:
    name = profile.name if isinstance(profile, Profile) else str(profile)
    if name not in PROFILES:
        raise DipkitError(f"unknown profile {name!r}: choose one of {sorted(PROFILES)}")
    return name


@dataclass(frozen=True)
class Experiment:
    """One declared study: every fit is ``base`` ∪ one point of ``axes`` ∪ a seed.

    Attributes
    ----------
    name : str
        The name the store and the command line use (``dipkit experiments run NAME``).
    chapter : str
        The book chapter whose figures and claims read it.
    description : str
        One line: what is compared, on what.
    base : dict
        Settings shared by every fit (see :func:`dipkit.experiments.setup.fit_setting` for the
        keys: image, task, degradation parameters, network, λ, upsampler, preset, rules, ...).
    axes : dict[str, list]
        The settings swept; the fits are their Cartesian product.
    seeds : int or tuple of int
        Seeds 0 .. seeds − 1 of every point (the network weights, the code and the noise draw), or
        the seeds themselves, e.g. ``(1, 2)`` where seed 0 is stored by another experiment.
    variants : list of dict
        Extra points added to the product (each a dict of axis values), for sweeps that are not
        a full grid, e.g. the original DIP at one σ only. Without ``axes`` the variants are the
        only points.
    per_profile : dict[str, dict]
        Overrides of ``base`` (and of ``'seeds'`` and ``'axes'``) for one profile, e.g. a shorter
        study at ``full`` or a wider sweep at ``cpu``.
    keep_images : int
        Store the output images of seeds below this (0: none); figures show seed 0.
    """

    name: str
    base: dict = field(default_factory=dict)
    axes: dict = field(default_factory=dict)
    seeds: Union[int, Sequence[int]] = 3
    variants: Sequence[dict] = ()
    per_profile: dict = field(default_factory=dict)
    keep_images: int = 1
    chapter: str = ""
    description: str = ""

    def _base(self, profile: str) -> tuple:
        extra = dict(self.per_profile.get(profile, {}))
        seeds = extra.pop("seeds", self.seeds)
        extra.pop("axes", None)
        seeds = range(seeds) if isinstance(seeds, int) else [int(s) for s in seeds]
        return {**self.base, **extra}, seeds

    def points(self, profile: Optional[str] = None) -> list:
        """The swept points (dicts of axis values) at a profile, the grid first, then the variants."""
        axes = self.per_profile.get(profile, {}).get("axes", self.axes)
        names = list(axes)
        grid = [dict(zip(names, values)) for values in itertools.product(*axes.values())]
        if not axes and self.variants:   # only the variants: no empty point of the base alone
            grid = []
        return grid + [dict(v) for v in self.variants]

    def settings(self, profile: Union[str, Profile], seeds: Optional[Sequence[int]] = None) -> list:
        """Every fit of the experiment at ``profile``: a list of settings dicts, each with a seed."""
        name = _profile_name(profile)
        base, own_seeds = self._base(name)
        seeds = own_seeds if seeds is None else seeds
        return [{**base, **point, "seed": int(s)} for point in self.points(name) for s in seeds]
