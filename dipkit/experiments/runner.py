"""Run an experiment into the store: resumable and additive, one record per fit as it ends."""

from __future__ import annotations

import os
import sys
import time
from contextlib import closing
from typing import Callable, Optional, Sequence, Union

import torch

from ..blockiness import grid_ratio
from ..cost import estimate
from ..degradations import Inpainting
from ..errors import DipkitError
from ..metrics import psnr
from ..presets import Profile, get_profile
from . import cluster
from .record import Records, make_record
from .setup import Prepared, fit_setting, prepare
from .spec import Experiment, setting_key
from .store import Store, provenance

__all__ = ["run", "load", "fit_record", "MEASURES", "recompute_requested"]


def _hole_psnr(p: Prepared) -> Callable:
    """PSNR (dB) over the missing pixels only (inpainting)."""
    if not isinstance(p.degradation, Inpainting):
        raise DipkitError("the measure 'hole_psnr' needs an inpainting setting")
    unknown = ~p.degradation.mask.expand_as(p.clean)

    def measure(output):
        err = ((output - p.clean)[unknown] ** 2).mean()
        return float(-10 * torch.log10(err))
    return measure


def _grid_ratio(p: Prepared) -> Callable:
    return grid_ratio


def _observation_psnr(p: Prepared) -> Callable:
    value = float(psnr(p.observation, p.clean)[0])
    return lambda output: value


#: Extra numbers a record can carry, by name: each maps the prepared fit to ``f(output) -> float``.
MEASURES = {"hole_psnr": _hole_psnr, "grid_ratio": _grid_ratio, "observation_psnr": _observation_psnr}


def _experiment(experiment: Union[str, Experiment]) -> Experiment:
    if isinstance(experiment, Experiment):
        return experiment
    from .book import EXPERIMENTS
    if experiment not in EXPERIMENTS:
        raise DipkitError(f"unknown experiment {experiment!r}: choose one of {sorted(EXPERIMENTS)} "
                          f"(`dipkit experiments list`)")
    return EXPERIMENTS[experiment]


def _profile(profile: Union[None, str, Profile]) -> Profile:
    return profile if isinstance(profile, Profile) else get_profile(profile)


def recompute_requested() -> bool:
    """True when ``$DIPKIT_RECOMPUTE`` asks the chapters to recompute their stored records."""
    return os.environ.get("DIPKIT_RECOMPUTE", "").strip().lower() in ("1", "true", "yes")


def fit_record(settings: dict, profile: Union[str, Profile], measures: Sequence[str] = (),
               device=None, *, keep_images: int = 0, experiment: Optional[str] = None,
               log=None) -> dict:
    """Fit one setting and return its record: the one fit both the loop and a Dask task run.

    Parameters
    ----------
    settings : dict
        One fit's settings (an element of :meth:`Experiment.settings`).
    profile : str or Profile
        The run profile, by name or as a :class:`~dipkit.presets.Profile`.
    measures : sequence of str
        Names of :data:`MEASURES` to add to the setting's own ``measures``.
    device : str or torch.device, optional
        Default: CUDA when available.
    keep_images : int
        Store the output images when the setting's seed is below this.
    experiment : str, optional
        The name of the experiment, copied into the record.
    log : file, optional
        Where to print, before the fit, its predicted wall time (:func:`dipkit.cost.estimate`).

    Returns
    -------
    dict
        The record (see :func:`make_record`) with ``experiment``, ``profile``, ``settings`` and
        ``provenance`` (with the fit's ``wall_seconds``), ready for :meth:`Store.append`.
    """
    prof = _profile(profile)
    start = time.perf_counter()
    prepared = prepare(settings, prof)
    if log is not None:
        _announce(settings, prepared, prof, device, log)
    names = [*settings.get("measures", ()), *measures]
    run_, _ = fit_setting(settings, prof, device=device, prepared=prepared)
    record = make_record(run_, prepared.clean, keep_images=settings["seed"] < keep_images,
                         measures={m: MEASURES[m](prepared) for m in names})
    record.update(experiment=experiment, profile=prof.name, settings=settings,
                  provenance={**provenance(device), "wall_seconds": round(time.perf_counter() - start, 3)})
    return record


def _announce(settings: dict, prepared: Prepared, prof: Profile, device, log) -> None:
    """Print the fit's settings and its predicted wall time, measured on the device."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    h, w = prepared.observation.shape[-2:]
    guess = estimate(prepared.model, h, w, steps=prepared.kwargs["steps"], probe_every=prof.probe_every,
                     device=device)
    print(f"  fitting {setting_key(settings)}: {guess.describe()}", file=log, flush=True)


def _todo(exp: Experiment, prof: Profile, store: Store, seeds, recompute: bool, limit, measures) -> list:
    """The settings to fit: those not stored (all with ``recompute``), at most ``limit``."""
    done = set() if recompute else store.keys(exp.name, prof.name)
    todo = [s for s in exp.settings(prof, seeds) if setting_key(s) not in done]
    if limit is not None:
        todo = todo[:limit]
    unknown = sorted({m for s in todo for m in [*s.get("measures", ()), *measures]} - set(MEASURES))
    if unknown:
        raise DipkitError(f"unknown measure(s) {unknown}: choose from {sorted(MEASURES)}")
    return todo


def _keep(store: Store, exp: Experiment, record: dict, number: str, log) -> None:
    """Append one finished fit's record to the store and write its line to ``log``."""
    store.append(record)
    if log is not None:
        where = record["provenance"].get("worker")
        print(f"[{exp.name} {record['profile']}] {number} {setting_key(record['settings'])}: peak "
              f"{record['psnr_best']:.2f} dB at {record['peak_step']}, end {record['psnr_final']:.2f} dB, "
              f"{record['seconds']:.1f} s" + (f" on {where}" if where else ""), file=log, flush=True)


def run(experiment: Union[str, Experiment], profile: Union[None, str, Profile] = None, *,
        store: Optional[Store] = None, seeds: Optional[Sequence[int]] = None, recompute: bool = False,
        limit: Optional[int] = None, device=None, measures: Sequence[str] = (),
        log=sys.stderr, workers: Optional[int] = None, scheduler: Optional[str] = None) -> Records:
    """Fit every setting of ``experiment`` at ``profile`` not yet stored, appending a record each.

    Parameters
    ----------
    experiment : str or Experiment
        A name of :data:`dipkit.experiments.EXPERIMENTS`, or a spec.
    profile : str or Profile, optional
        Default: :func:`dipkit.get_profile`.
    seeds : sequence of int, optional
        Only these seeds (default: the experiment's).
    recompute : bool
        Fit the settings again even when stored (the new record replaces the old on load).
    limit : int, optional
        Fit at most this many settings, then return (to run a long sweep in pieces).
    measures : sequence of str
        Names of :data:`MEASURES` to add (besides the experiment's own ``measures`` setting).
    log : file or None
        Where to write one line per fit.
    workers : int, optional
        Fit on a local Dask cluster of this many single-threaded worker processes, started for
        the run and closed after (needs ``pip install "dipkit[cluster]"``).
    scheduler : str, optional
        Fit on the Dask cluster whose scheduler is at this address (``tcp://host:port``).
        Without ``workers`` and ``scheduler`` the fits run one after the other in this process.
        Either way each record is appended here as soon as its fit ends.

    Returns
    -------
    Records
        Everything stored for the experiment at the profile afterwards.
    """
    exp, prof = _experiment(experiment), _profile(profile)
    store = store or Store()
    todo = _todo(exp, prof, store, seeds, recompute, limit, measures)
    options = dict(profile=prof, measures=tuple(measures), device=device, keep_images=exp.keep_images,
                   experiment=exp.name)
    if workers is None and scheduler is None:
        records = (fit_record(s, **options, log=log) for s in todo)
    else:
        records = cluster.fit_all(fit_record, todo, workers=workers, scheduler=scheduler, **options)
    with closing(records):
        for i, record in enumerate(records, 1):
            _keep(store, exp, record, f"{i}/{len(todo)}", log)
    return store.load(exp.name, prof.name)


def load(experiment: Union[str, Experiment], profile: Union[None, str, Profile] = None, *,
         store: Optional[Store] = None, compute_missing: Optional[bool] = None, **kwargs) -> Records:
    """The stored records of an experiment, computing what is missing when asked.

    A chapter calls this. With ``$DIPKIT_RECOMPUTE=1`` every fit is run again; when some records
    are missing they are computed if ``compute_missing`` is True (default: only when nothing at
    all is stored, so that a fresh profile works and a complete store is never refitted).
    """
    exp, prof = _experiment(experiment), _profile(profile)
    store = store or Store()
    if recompute_requested():
        return run(exp, prof, store=store, recompute=True, **kwargs)
    stored = store.load(exp.name, prof.name)
    expected = {setting_key(s) for s in exp.settings(prof)}
    missing = expected - {r.key for r in stored}
    if missing and (compute_missing or (compute_missing is None and not stored)):
        print(f"{exp.name}: {len(missing)} of {len(expected)} fits are not stored for the "
              f"{prof.name} profile; computing them (this takes a while)", file=sys.stderr)
        stored = run(exp, prof, store=store, **kwargs)
    return Records(r for r in stored if r.key in expected)
