"""A stored fit: its settings, its summary numbers, its history, optionally its output images.

A record is one JSON object (a line of the store). :func:`make_record` builds it from a
:class:`~dipkit.fit.Run`; :class:`Record` reads it back with attribute access, the history as
arrays and the images as tensors; :class:`Records` is a list of them with filters and statistics
over seeds.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Callable, Iterable, Optional

import numpy as np
import torch
from PIL import Image

from ..errors import DipkitError
from ..fit import Detection, History, Run
from ..metrics import psnr, ssim

__all__ = ["Record", "Records", "make_record", "encode_image", "decode_image", "stat"]


def encode_image(image: torch.Tensor) -> str:
    """A (1, C, H, W) image in [0, 1] as base64 of an 8-bit PNG (for figures, not for metrics)."""
    array = (image[0].detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_image(text: str) -> torch.Tensor:
    """The inverse of :func:`encode_image`: a (1, C, H, W) float32 tensor in [0, 1]."""
    array = np.asarray(Image.open(io.BytesIO(base64.b64decode(text))), dtype=np.float32) / 255
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _quality(output: Optional[torch.Tensor], clean: torch.Tensor) -> tuple:
    if output is None:
        return None, None
    return float(psnr(output, clean)[0]), float(ssim(output, clean)[0])


def _finite(values: np.ndarray) -> list:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in values.tolist()]


def make_record(run: Run, clean: torch.Tensor, *, keep_images: bool,
                measures: Optional[dict] = None) -> dict:
    """The stored form of one fit: PSNR/SSIM at the stop, the oracle peak and the end, the
    detections of the monitored rules, steps, seconds and the per-probe history.

    ``measures`` maps names to functions ``f(output) -> float`` evaluated on the stopped, best
    and final outputs (e.g. a blockiness or a PSNR over the missing pixels).
    """
    outputs = {"stopped": run.stopped, "best": run.best, "final": run.final}
    rec = {"steps_run": run.steps_run, "seconds": round(run.seconds, 3), "stop_step": run.stop_step,
           "peak_step": run.best_step, "backtracks": len(run.backtracks)}
    for name, output in outputs.items():
        rec[f"psnr_{name}"], rec[f"ssim_{name}"] = _quality(output, clean)
    rec["detections"] = {}
    for name, det in run.detections.items():
        p, s = _quality(det.output, clean)
        rec["detections"][name] = {"fired_at": det.fired_at, "step": det.step, "psnr": p, "ssim": s}
        outputs[f"detection:{name}"] = det.output
    rec["measures"] = {f"{m}_{o}": float(f(outputs[o])) for m, f in (measures or {}).items()
                       for o in ("stopped", "best", "final") if outputs[o] is not None}
    rec["history"] = {k: _finite(np.asarray(v, dtype=float)) for k, v in run.history.columns().items()}
    if keep_images:
        rec["images"] = {k: encode_image(v) for k, v in outputs.items() if v is not None}
    return rec


class Record:
    """One stored fit, read back. ``rec.settings['lipschitz']``, ``rec.psnr_best``,
    ``rec.history['psnr']`` (ndarray), ``rec.image('best')`` (Tensor or None),
    ``rec.detection('paper')`` (dict with fired_at, step, psnr, ssim)."""

    def __init__(self, data: dict):
        self.data = data

    def __getattr__(self, name):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"a record has no field {name!r}; it has {sorted(data)}")

    def __repr__(self) -> str:
        return f"Record({self.data.get('experiment')}, {self.data.get('settings')})"

    @property
    def history(self) -> dict:
        """The per-probe history as float arrays (NaN where the value was not finite)."""
        return {k: np.array([np.nan if v is None else v for v in vals], dtype=float)
                for k, vals in self.data["history"].items()}

    def as_run(self) -> Run:
        """The record as a :class:`~dipkit.fit.Run`, for the plots and code written for Runs.

        The history is the stored one (``loss_every_step`` is empty: it is not stored); the images
        are the stored 8-bit ones when this seed kept them (else the outputs are None).
        """
        h = self.history
        bands = sorted((k for k in h if k.startswith("band")), key=lambda k: int(k[4:]))
        history = History(step=h["step"].astype(int), loss=h["loss"], psnr=h.get("psnr"),
                          psnr_observation=h["psnr_observation"],
                          bands=np.stack([h[k] for k in bands], axis=1) if bands else None,
                          ratio=h.get("ratio"), time=h["time"], loss_every_step=np.zeros(0))
        detections = {name: Detection(d["fired_at"], d["step"], self.image(f"detection:{name}"))
                      for name, d in self.data["detections"].items()}
        d = self.data
        return Run(final=self.image("final"), stopped=self.image("stopped"), stop_step=d["stop_step"],
                   best=self.image("best"), best_step=d["peak_step"], best_psnr=d["psnr_best"],
                   history=history, steps_run=d["steps_run"], seconds=d["seconds"],
                   config={"settings": d["settings"], "provenance": d.get("provenance")},
                   detections=detections)

    def image(self, name: str) -> Optional[torch.Tensor]:
        """A stored output image ('stopped', 'best', 'final', 'detection:NAME'), or None."""
        text = self.data.get("images", {}).get(name)
        return None if text is None else decode_image(text)

    def detection(self, rule: str) -> dict:
        """Where a monitored rule fired: ``fired_at``, ``step``, ``psnr``, ``ssim`` (None: never)."""
        try:
            return self.data["detections"][rule]
        except KeyError:
            raise DipkitError(f"rule {rule!r} did not watch this fit; it had "
                              f"{sorted(self.data['detections'])}") from None

    def rule_psnr(self, rule: str) -> float:
        """PSNR (dB) of what a monitored rule returns: its output, or the last one if it never fired."""
        det = self.detection(rule)
        return det["psnr"] if det["fired_at"] is not None else self.data["psnr_final"]

    def smoothed_psnr(self, window: int = 10) -> np.ndarray:
        """The PSNR curve (dB) as a running mean over ``window`` probes, shape (probes - window + 1,).

        A bounded fit at 128² jitters by up to 0.6 dB from one probe to the next; the running mean
        over 10 probes (100 steps at probes every 10) says where the curve *is*, so that one low
        probe is not read as a decline.
        """
        psnr = self.history["psnr"]
        if not 1 <= window <= psnr.size:
            raise DipkitError(f"window must be between 1 and the {psnr.size} probes of this fit, got {window}")
        return np.convolve(psnr, np.ones(window) / window, mode="valid")

    def decline(self, window: int = 10) -> float:
        """How far the fit fell from its peak by the end (dB, >= 0), on the running mean over
        ``window`` probes: its highest value minus its last (see :meth:`smoothed_psnr`)."""
        level = self.smoothed_psnr(window)
        return float(level.max() - level[-1])

    def get(self, field: str):
        """A summary field, a measure (``measures``) or a setting, by name."""
        for source in (self.data, self.data.get("measures", {}), self.data.get("settings", {})):
            if field in source:
                return source[field]
        raise DipkitError(f"no field {field!r} in the record {self!r}")


def stat(values: Iterable[float]) -> dict:
    """Mean, std (ddof 1; 0 for one value), min, max and n of some numbers; None and NaN (e.g. the
    step of a rule that never fired) are left out, and n counts the numbers that remain."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


class Records(list):
    """The records of one experiment at one profile, with filters and statistics over seeds."""

    def where(self, **settings) -> "Records":
        """The records whose settings equal all those given (e.g. ``lipschitz=None``)."""
        return Records(r for r in self if all(r.settings.get(k) == v for k, v in settings.items()))

    def one(self, **settings) -> Record:
        """The single record with these settings (seed included); an error if not exactly one."""
        found = self.where(**settings)
        if len(found) != 1:
            raise DipkitError(f"{len(found)} records match {settings}, expected exactly one")
        return found[0]

    def values(self, field, **settings) -> np.ndarray:
        """One number per matching record: a field name or a function of the record."""
        get = field if callable(field) else (lambda r: r.get(field))
        return np.array([np.nan if (v := get(r)) is None else v for r in self.where(**settings)], dtype=float)

    def stat(self, field, **settings) -> dict:
        """:func:`stat` of :meth:`values`."""
        return stat(self.values(field, **settings).tolist())

    def seeds(self, **settings) -> list:
        return sorted({r.settings["seed"] for r in self.where(**settings)})

    def fmt(self, field, digits: int = 2, unit: str = "", count: bool = True, **settings) -> str:
        """``'mean ± std (n = k)'`` over the matching records (``'x (n = 1)'`` for one); ``count=False``
        leaves out the ``(n = k)``."""
        s = self.stat(field, **settings)
        if s["n"] == 0:
            return "n/a"
        spread = f" ± {s['std']:.{digits}f}" if s["n"] > 1 else ""
        n = f" (n = {s['n']})" if count else ""
        return f"{s['mean']:.{digits}f}{spread}{unit}{n}"


