"""Benchmark runner: a task over a folder of images, several methods and seeds, to a tidy CSV.

One row per (image, method, seed) with the PSNR/SSIM at the method's own stop (the paper's rule,
or the end of a fixed budget), the oracle peak (step and PSNR, from the clean image), where
ES-WMV would have stopped the same fit, and the wall time. :func:`summarize` turns the rows into
mean ± std per method, the table of the book's last chapter. Each fit is the restoration
pipeline of :mod:`dipkit.restore` (the images are cut to the network's multiple first, so
nothing is padded).

ES-WMV (Wang et al.) watches every fit with a window of 100 steps and a patience of 1000 steps
at the paper's budget of 10 000 steps; the patience shrinks with the fit's budget (200 steps in
the quick profile's 2000, at least 100: :func:`dipkit.stopping.scaled_eswmv`), since a fit
shorter than window + patience can never see it fire.

Methods
-------
``paper``
    The paper's decoder with its λ, stopped by the blurriness/sharpness ratio rule
    (:data:`dipkit.presets.PAPER`).
``dip``
    The original DIP protocol (:data:`dipkit.presets.ORIGINAL_DIP`): hourglass, fixed budget,
    reported at the end and at its oracle peak. Deblocking uses the denoising protocol.

Examples
--------
>>> import dipkit.bench as bench
>>> rows = bench.run("denoise", "set9", methods=("paper",), seeds=(0,),
...                  resize=64, steps=200)                   # doctest: +SKIP
>>> bench.write_csv(rows, "results.csv"); print(bench.format_summary(bench.summarize(rows)))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import datasets
from .degradations import JPEG, Degradation, GaussianNoise, Inpainting, bernoulli_mask
from .errors import DipkitError
from .fit import fit
from .images import NamedImage, crop_to_multiple, load_folder, rgb_to_gray
from .metrics import psnr, ssim
from .presets import PAPER, Profile, get_profile
from .restore import METHODS, prepare, preset_for, stop_rule, task_options
from .stopping import ESWMV, scaled_eswmv

__all__ = ["COLUMNS", "METHODS", "run", "summarize", "format_summary", "write_csv", "read_csv",
           "append_csv", "WATCHABLE", "observations", "prepare_image", "by_fit", "detection_gaps", "degradation_for", "centre_crop", "downsample",
           "default_eswmv_patience"]

BENCH_TASKS = ("denoise", "deblock", "inpaint")
COLUMNS = ("task", "image", "method", "seed", "psnr", "ssim", "stop_step", "oracle_step",
           "oracle_psnr", "final_psnr", "eswmv_step", "eswmv_psnr", "steps_run", "seconds")
#: Rules that can watch every fit besides ES-WMV (``run(..., watch=...)``), each adding the
#: columns ``<rule>_step`` and ``<rule>_psnr``: the discrepancy principle at the observation's
#: noise level (:func:`dipkit.restore.stop_rule`; denoising and deblocking).
WATCHABLE = ("discrepancy",)


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` × ``size`` part of an image (the whole side when it is shorter)."""
    h, w = image.shape[-2:]
    th, tw = min(size, h), min(size, w)
    top, left = (h - th) // 2, (w - tw) // 2
    return image[..., top:top + th, left:left + tw]


def downsample(image: torch.Tensor, side: int) -> torch.Tensor:
    """The whole image shrunk so that its shorter side is ``side`` pixels, aspect ratio kept.

    Images get area (box-average, so anti-aliased) downsampling; bool masks get nearest-neighbour
    sampling so that they stay binary (a Bernoulli mask stays a Bernoulli mask of the same
    density). An image whose shorter side is already at most ``side`` is returned as it is.

    Parameters
    ----------
    image : Tensor (N, C, H, W), float or bool
    side : int
        Target length of the shorter side, in pixels.

    Returns
    -------
    Tensor (N, C, H2, W2) of the input's dtype, min(H2, W2) = side (or the input itself)

    Examples
    --------
    >>> downsample(torch.rand(1, 3, 512, 768), 64).shape
    torch.Size([1, 3, 64, 96])
    """
    h, w = image.shape[-2:]
    if min(h, w) <= side:
        return image
    size = (side, max(1, round(w * side / h))) if h <= w else (max(1, round(h * side / w)), side)
    if image.dtype == torch.bool:
        return F.interpolate(image.float(), size=size, mode="nearest-exact") > 0.5
    return F.interpolate(image, size=size, mode="area")


def degradation_for(task: str, item: NamedImage, preset) -> Degradation:
    """The degradation of ``task`` for one benchmark image (its own mask for inpainting, else
    the paper's Bernoulli mask)."""
    if task == "denoise":
        return GaussianNoise(preset.sigma)
    if task == "deblock":
        return JPEG(preset.quality)
    if task == "inpaint":
        h, w = item.image.shape[-2:]
        mask = item.mask if item.mask is not None else bernoulli_mask(h, w, preset.p_known)
        return Inpainting(mask)
    raise DipkitError(f"the benchmark runs the tasks {BENCH_TASKS}, not {task!r}")


def prepare_image(item: NamedImage, task: str, size: Optional[int], resize: Optional[int],
                  multiple: int) -> NamedImage:
    """Gray for deblocking and inpainting; downsample, then centre-crop; then centre-crop to a
    multiple (:func:`dipkit.images.crop_to_multiple`, centred: an odd leftover row or column is cut
    at the bottom or right, as :func:`centre_crop` does), so that the fit needs no padding."""
    image, mask = item.image, item.mask
    if task != "denoise" and image.shape[1] == 3:  # the paper's deblocking and inpainting are gray
        image = rgb_to_gray(image)
    if resize is not None:
        image = downsample(image, resize)
        mask = downsample(mask, resize) if mask is not None else None
    if size is not None:
        image = centre_crop(image, size)
        mask = centre_crop(mask, size) if mask is not None else None
    h, w = image.shape[-2:]
    if min(h, w) < multiple:
        raise DipkitError(f"image {item.name!r} is {w}x{h} pixels after cropping/resizing, smaller than "
                          f"{multiple}, the least side the network takes; crop or resize to at least {multiple}")
    return NamedImage(item.name, crop_to_multiple(image, multiple)[0],
                      None if mask is None else crop_to_multiple(mask, multiple)[0])


def _prepared_items(task: str, images, profile: Profile, size: Optional[int],
                    resize: Optional[int]) -> list:
    """The task checked and every image loaded and prepared (:func:`prepare_image`), before any fit."""
    if task not in BENCH_TASKS:
        raise DipkitError(f"the benchmark runs the tasks {BENCH_TASKS}, not {task!r}")
    items = load_folder(datasets.resolve(images)) if isinstance(images, (str, Path)) else list(images)
    return [prepare_image(item, task, size, resize, multiple=2 ** profile.depth) for item in items]


def run(task: str, images: Union[str, Path, Sequence[NamedImage]], *, methods: Iterable[str] = METHODS,
        seeds: Iterable[int] = (0, 1, 2), profile: Optional[Profile] = None, size: Optional[int] = None,
        resize: Optional[int] = None, steps: Optional[int] = None, eswmv_patience: Optional[int] = None,
        watch: Sequence[str] = (), device=None, progress: bool = False, on_row=None) -> list:
    """Run ``task`` on every image with every method and seed; return the rows (dicts).

    Parameters
    ----------
    task : {'denoise', 'deblock', 'inpaint'}
    images : folder, set name or list of NamedImage
        A folder (``NAME_mask.png`` files give the inpainting masks) or the name of one of the
        paper's sets, ``'set9'``, ``'classic5'``, ``'bernoulli11'`` (:func:`dipkit.datasets.path`).
    methods : iterable of {'paper', 'dip'}
    seeds : iterable of int
        Seed of the degradation (noise), of the input code and of the weights.
    profile : Profile, optional
        Network width and probe spacing (default: :func:`dipkit.get_profile`).
    size : int, optional
        Centre-crop the images to ``size`` × ``size`` (e.g. 256 on a CPU).
    resize : int, optional
        Downsample each whole image so that its shorter side is ``resize`` (:func:`downsample`:
        area averaging, masks by nearest neighbour); applied before ``size``. At 64 a 512²
        image keeps its content, where a 64² crop of it is mostly one flat patch.
    steps : int, optional
        Override the step budget of every method (default: the presets' at this profile).
    eswmv_patience : int, optional
        Patience of the ES-WMV monitor in steps, a multiple of the probe interval (default
        :func:`dipkit.stopping.scaled_eswmv`: ES-WMV's 1000 scaled by the fit's budget, 200 in the
        quick profile). Its window is 100 steps.
    watch : sequence of str
        Rules of :data:`WATCHABLE` that watch every fit too, each adding ``<rule>_step`` and
        ``<rule>_psnr`` to the rows (e.g. ``('discrepancy',)``; not for inpainting).
    on_row : callable, optional
        Called with each row as soon as it is measured (e.g. to append to a CSV).

    Returns
    -------
    list of dict with the keys of :data:`COLUMNS` (and the watched rules'); PSNR in dB, seconds
    of wall time.

    Notes
    -----
    Every argument (task, methods, image sizes) is checked before the first fit.
    """
    profile = profile or get_profile()
    _check_watch(task, watch)
    items = _prepared_items(task, images, profile, size, resize)
    presets = {method: preset_for(task, method) for method in methods}
    patience = eswmv_patience
    rows = []
    for item in items:
        for method, preset in presets.items():
            for seed in seeds:
                row = _run_one(task, item, method, preset, seed, profile, steps, patience, device, progress,
                               watch)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def observations(task: str, images: Union[str, Path, Sequence[NamedImage]], *, seeds: Iterable[int] = (0, 1, 2),
                 profile: Optional[Profile] = None, size: Optional[int] = None,
                 resize: Optional[int] = None) -> list:
    """The observations that :func:`run` fits, measured against the clean images (no fit).

    The same images (prepared as :func:`run` prepares them) and degradations with the same seeds,
    so the rows are the baseline that a method's PSNR must beat. Takes seconds.

    Returns
    -------
    list of dict: task, image, seed, height, width (pixels, after resizing and cropping), psnr (dB), ssim
    """
    rows = []
    for item in _prepared_items(task, images, profile or get_profile(), size, resize):
        for seed in seeds:
            y = degradation_for(task, item, PAPER[task]).observe(item.image, seed=seed)
            rows.append(dict(task=task, image=item.name, seed=seed, height=y.shape[-2], width=y.shape[-1],
                             psnr=float(psnr(y, item.image)[0]), ssim=float(ssim(y, item.image)[0])))
    return rows


def default_eswmv_patience(profile: Profile) -> int:
    """ES-WMV's patience (steps) at the profile's budget: :func:`dipkit.stopping.scaled_eswmv`."""
    return scaled_eswmv(profile.steps, profile.probe_every).patience


def _check_watch(task: str, watch: Sequence[str]) -> None:
    unknown = [r for r in watch if r not in WATCHABLE]
    if unknown:
        raise DipkitError(f"the benchmark can watch the rules {WATCHABLE} besides ES-WMV, not {unknown}")
    if "discrepancy" in watch and task == "inpaint":
        raise DipkitError("the discrepancy rule needs noise, and inpainting's known pixels are exact; "
                          "drop it for inpaint (the held-out rule, which changes the fit, is `dipkit "
                          "restore --stop heldout`)")


def _run_one(task, item, method, preset, seed, profile, steps, patience, device, progress, watch=()) -> dict:
    """One row: the observation of ``item`` made with ``seed``, prepared by
    :func:`dipkit.restore.prepare`, fitted by this module's ``fit`` (tests spy on it) with an
    ES-WMV monitor, and brought back by :meth:`~dipkit.restore.Restoration.finish`."""
    clean = item.image
    op = degradation_for(task, item, preset)
    plan = prepare(task, op.observe(clean, seed=seed), method=method, preset=preset, profile=profile,
                   steps=steps or None, seed=seed, clean=clean, **task_options(task, op))
    scaled = scaled_eswmv(plan.fit["steps"], plan.fit["probe_every"])   # in steps
    monitor = {"eswmv": ESWMV(window=scaled.window, patience=patience or scaled.patience)}
    monitor.update({r: stop_rule(r, plan.degradation, plan.observation, plan.fit["steps"], plan.fit["probe_every"])
                    for r in watch})
    start = time.perf_counter()
    result = plan.finish(fit(plan.model, plan.observation, **plan.fit_arguments(
        device=device, progress=progress, monitor=monitor)))
    seconds = time.perf_counter() - start
    if getattr(result, "interrupted", False):  # Ctrl-C ended the fit: no row for a partial fit
        raise KeyboardInterrupt
    out = result.stopped
    eswmv = result.detections["eswmv"]
    watched = {}
    for r in watch:
        d = result.detections[r]
        watched[f"{r}_step"] = d.step
        watched[f"{r}_psnr"] = float(psnr(d.output, clean)[0]) if d.output is not None else None
    return dict(
        task=task, image=item.name, method=method, seed=seed,
        psnr=float(psnr(out, clean)[0]), ssim=float(ssim(out, clean)[0]),
        stop_step=result.stop_step if result.stop_step is not None else result.steps_run,
        oracle_step=result.best_step, oracle_psnr=result.best_psnr, final_psnr=result.psnr_final,
        eswmv_step=eswmv.step, eswmv_psnr=float(psnr(eswmv.output, clean)[0]) if eswmv.output is not None else None,
        steps_run=result.steps_run, seconds=seconds, **watched)


def write_csv(rows: Sequence[dict], path) -> None:
    """Write rows to a CSV file with the columns of :data:`COLUMNS` and of the watched rules
    (empty cells for None)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(rows[0] if rows else {}))
        writer.writeheader()
        for row in rows:
            writer.writerow(_csv_cells(row))


def _columns(row: dict) -> list:
    """:data:`COLUMNS`, then the watched rules' columns of ``row``."""
    return [*COLUMNS, *(k for k in row if k not in COLUMNS)]


def _csv_cells(row: dict) -> dict:
    """One row as CSV cells, empty for None."""
    return {k: ("" if row.get(k) is None else row[k]) for k in _columns(row)}


def append_csv(row: dict, path) -> None:
    """Append one row to a CSV file of :func:`write_csv`'s format (the header first when the file
    is new or empty), and close it: rows written before an interruption stay."""
    path = Path(path)
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_columns(row))
        if new:
            writer.writeheader()
        writer.writerow(_csv_cells(row))


def read_csv(path) -> list:
    """Read rows written by :func:`write_csv`, with numbers as numbers and empty cells as None."""
    def parse(key, value):
        if value == "":
            return None
        if key in ("task", "image", "method"):
            return value
        number = float(value)
        return int(number) if key in ("seed", "steps_run") or key.endswith("_step") else number

    with open(path, newline="") as f:
        return [{k: parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


SUMMARY_FIELDS = ("psnr", "ssim", "oracle_psnr", "final_psnr", "stop_step", "oracle_step",
                  "eswmv_psnr", "eswmv_step", "seconds")


def summarize(rows: Sequence[dict]) -> dict:
    """Mean and standard deviation (over images and seeds) of each field, per method.

    Also the stop rules' detection gap: ``gap_paper`` = oracle PSNR − PSNR at the method's stop,
    ``gap_eswmv`` = oracle PSNR − PSNR at the ES-WMV detection (dB; smaller is better).

    Returns
    -------
    dict: method → {field: (mean, std, count)}
    """
    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        derived = {
            "gap_paper": [r["oracle_psnr"] - r["psnr"] for r in mine if r["oracle_psnr"] is not None],
            "gap_eswmv": [r["oracle_psnr"] - r["eswmv_psnr"] for r in mine
                          if r["oracle_psnr"] is not None and r["eswmv_psnr"] is not None],
        }
        for rule in WATCHABLE:
            if any(f"{rule}_psnr" in r for r in mine):
                derived[f"gap_{rule}"] = [r["oracle_psnr"] - r[f"{rule}_psnr"] for r in mine
                                          if r["oracle_psnr"] is not None and r.get(f"{rule}_psnr") is not None]
        fields = {f: [r[f] for r in mine if r.get(f) is not None] for f in SUMMARY_FIELDS}
        out[method] = {k: _stats(v) for k, v in {**fields, **derived}.items()}
    return out


def by_fit(rows: Sequence[dict]) -> dict:
    """The rows of one task grouped by fit: ``{(image, seed): {method: row}}``, in row order."""
    out = {}
    for r in rows:
        out.setdefault((r["image"], r["seed"]), {})[r["method"]] = r
    return out


def detection_gaps(rows: Sequence[dict]) -> dict:
    """The detection gap (oracle PSNR − returned PSNR, dB) of each rule over the rows of one task.

    Returns
    -------
    dict: label → ndarray, one value per fit where the rule fired (ES-WMV may not fire): the
    paper's rule on the controlled DIP (``'paper'`` rows), the same on the fits where ES-WMV
    fired too, ES-WMV on the controlled and on the plain DIP (``'dip'`` rows), and the plain DIP
    returned at the end of its budget (no rule).
    """
    fits = list(by_fit(rows).values())
    paper = [f["paper"] for f in fits if "paper" in f]
    plain = [f["dip"] for f in fits if "dip" in f]
    both = [r for r in paper if r["eswmv_psnr"] is not None]
    gap = lambda rs, field: np.array([r["oracle_psnr"] - r[field] for r in rs], dtype=float)  # noqa: E731
    return {
        "paper's rule, controlled DIP": gap(paper, "psnr"),
        "paper's rule, same fits as ES-WMV": gap(both, "psnr"),
        "ES-WMV, controlled DIP": gap(both, "eswmv_psnr"),
        "ES-WMV, plain DIP": gap([r for r in plain if r["eswmv_psnr"] is not None], "eswmv_psnr"),
        "no rule, plain DIP (end)": gap(plain, "final_psnr"),
    }


def _stats(values) -> tuple:
    if not values:
        return (math.nan, math.nan, 0)
    arr = np.asarray(values, dtype=np.float64)
    return (float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size))


SUMMARY_TABLE = ("psnr", "oracle_psnr", "final_psnr", "stop_step", "oracle_step", "gap_paper", "gap_eswmv",
                 "seconds")


def format_summary(summary: dict, fields: Optional[Sequence[str]] = None) -> str:
    """A Markdown table of :func:`summarize`'s result: one row per method, mean ± std per field
    (default :data:`SUMMARY_TABLE`, then the gaps of the watched rules; '–' where a method has none)."""
    if fields is None:
        extra = dict.fromkeys(f"gap_{r}" for stats in summary.values() for r in WATCHABLE if f"gap_{r}" in stats)
        fields = [*SUMMARY_TABLE[:-1], *extra, SUMMARY_TABLE[-1]]
    lines = ["| method | " + " | ".join(fields) + " |", "|" + " --- |" * (len(fields) + 1)]
    for method, stats in summary.items():
        cells = []
        for f in fields:
            mean, std, n = stats.get(f, (math.nan, math.nan, 0))
            digits = 2 if n == 0 or abs(mean) < 100 else 0
            cells.append("–" if n == 0 else f"{mean:.{digits}f} (n = 1)" if n == 1
                         else f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
