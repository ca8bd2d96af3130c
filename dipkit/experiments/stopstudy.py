"""Which stopping rule? Every rule judged on the same stored fits, against the oracle.

A stored fit of the benchmark experiments ran its whole budget with the rules watching as
monitors, so each record says where each rule fired and the PSNR of the output it returned;
the oracle is the best PSNR of the whole fit (it needs the clean image, which a user does not
have). This module turns records into one *outcome* per (fit, rule), and outcomes into the
table of chapter 11: the detection gap (oracle − returned PSNR, dB), how often a rule fired,
how many steps it saved and how soon the result was there.

Rules come from three places: the monitors of the fit (``record.detections``), rules evaluated
afterwards from the stored per-probe history where they need nothing else (the discrepancy
principle with any σ and τ: :func:`discrepancy_detection`), and combinations of those
(:func:`earliest`). A rule that never fired returns the last output, as a user would get.

Examples
--------
>>> from dipkit.experiments.stopstudy import summarize
>>> rows = [dict(rule="r", gap=0.2, fired=True, saved=100, seconds=1.0),
...         dict(rule="r", gap=1.4, fired=False, saved=0, seconds=2.0)]
>>> s = summarize(rows)["r"]
>>> s["mean"], s["worst"], s["within_0.5"], s["fired"]
(0.8, 1.4, 0.5, 0.5)
"""

from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np

from ..errors import DipkitError
from .record import Record

__all__ = ["discrepancy_detection", "earliest", "detection", "outcomes", "summarize", "markdown",
           "LABELS"]

#: What the table calls each rule.
LABELS = {
    "paper": "paper's ratio rule",
    "eswmv": "ES-WMV",
    "discrepancy": "discrepancy, τ = 1 (σ known; JPEG: derived)",
    "heldout": "held-out pixels (5 %)",
}


def discrepancy_detection(record: Record, sigma: float, tau: float = 1.0, known: float = 1.0) -> dict:
    """Where the discrepancy principle would have stopped this fit, from its stored history.

    The residual per observed value is the stored loss over ``known`` (the fraction of values the
    loss compares: 1 for denoising and deblocking); the rule fires at the first probe where it
    is at most ``tau · sigma²`` and returns that probe's output.

    Returns
    -------
    dict with ``fired_at`` (step, or None), ``step`` (of the output), ``psnr`` (dB, None if it
    never fired), like a stored detection.
    """
    if not (sigma > 0 and tau > 0 and 0 < known <= 1):
        raise DipkitError(f"the discrepancy needs sigma > 0, tau > 0 and 0 < known <= 1, got "
                          f"sigma={sigma!r}, tau={tau!r}, known={known!r}")
    h = record.history
    below = np.flatnonzero(h["loss"] / known <= tau * sigma ** 2)
    if below.size == 0:
        return {"fired_at": None, "step": None, "psnr": None}
    step = int(h["step"][below[0]])
    return {"fired_at": step, "step": step, "psnr": float(h["psnr"][below[0]])}


def earliest(record: Record, rules: Sequence[str], extra: Optional[dict] = None) -> dict:
    """The combined rule "the first of ``rules`` to fire": its detection (None if none fired).

    ``extra`` maps names to detections computed afterwards (e.g. :func:`discrepancy_detection`).
    """
    found = [detection(record, r, extra) for r in rules]
    fired = [d for d in found if d["fired_at"] is not None]
    if not fired:
        return {"fired_at": None, "step": None, "psnr": None}
    return min(fired, key=lambda d: d["fired_at"])


def detection(record: Record, rule: str, extra: Optional[dict] = None) -> dict:
    """A rule's detection on a record: a monitor's, or one of ``extra`` (name → detection)."""
    if extra and rule in extra:
        return extra[rule]
    return record.detection(rule)


def outcomes(records: Iterable[Record], rules: Sequence[str], extra=None, oracle=None) -> list:
    """One row per (record, rule): what the rule returned and how far below the oracle.

    Parameters
    ----------
    records : iterable of Record
        Fits that ran their whole budget with the rules watching.
    rules : sequence of str
        Names of monitors, or of detections that ``extra`` computes.
    extra : callable, optional
        ``extra(record) -> {name: detection}`` for rules evaluated afterwards.
    oracle : callable, optional
        ``oracle(record) -> float``: the PSNR to measure the gap from (default the record's own
        peak; e.g. the peak of the same image's fit without held-out pixels).

    Returns
    -------
    list of dict: image, seed, rule, fired, fired_at, step, psnr (dB), oracle (dB), gap (dB),
    saved (steps of the budget not run), seconds (time to the result, s: the fit's mean seconds
    a step times the steps up to where the rule fired, the whole fit's when it never fired; a
    mean over the fit, so that a machine busy with other work for a while does not skew it).
    """
    rows = []
    for rec in records:
        more = extra(rec) if extra else None
        best = oracle(rec) if oracle else rec.psnr_best
        for rule in rules:
            d = detection(rec, rule, more)
            fired = d["fired_at"] is not None
            value = d["psnr"] if fired else rec.psnr_final
            rows.append(dict(image=rec.settings.get("image"), seed=rec.settings["seed"], rule=rule,
                             fired=fired, fired_at=d["fired_at"], step=d["step"] if fired else rec.steps_run,
                             psnr=value, oracle=best, gap=best - value,
                             saved=rec.steps_run - d["fired_at"] if fired else 0,
                             seconds=rec.seconds * (d["fired_at"] if fired else rec.steps_run) / rec.steps_run))
    return rows


def summarize(rows: Sequence[dict]) -> dict:
    """Per rule: the gap's ``mean``, ``median``, ``worst`` (dB), the fractions of fits within 0.5
    and 1 dB (``within_0.5``, ``within_1``), the fraction where it ``fired``, the mean steps
    ``saved``, the mean ``seconds`` to the result and the number of fits ``n``."""
    out = {}
    for rule in dict.fromkeys(r["rule"] for r in rows):
        mine = [r for r in rows if r["rule"] == rule]
        gap = np.array([r["gap"] for r in mine], dtype=float)
        out[rule] = {"mean": round(float(gap.mean()), 6), "median": round(float(np.median(gap)), 6),
                     "worst": round(float(gap.max()), 6),
                     "within_0.5": float(np.mean(gap <= 0.5)), "within_1": float(np.mean(gap <= 1.0)),
                     "fired": float(np.mean([r["fired"] for r in mine])),
                     "saved": float(np.mean([r["saved"] for r in mine])),
                     "seconds": float(np.mean([r["seconds"] for r in mine])), "n": len(mine)}
    return out


def markdown(summary: dict, labels: Optional[dict] = None) -> str:
    """The summary as a Markdown table, one row per rule."""
    labels = {**LABELS, **(labels or {})}
    lines = ["| rule | gap mean (dB) | median | worst | within 0.5 dB | within 1 dB | fired | "
             "steps saved | time to result (s) | fits |", "|" + " --- |" * 10]
    for rule, s in summary.items():
        lines.append(f"| {labels.get(rule, rule)} | {s['mean']:.2f} | {s['median']:.2f} | {s['worst']:.2f} | "
                     f"{s['within_0.5']:.0%} | {s['within_1']:.0%} | {s['fired']:.0%} | "
                     f"{s['saved']:.0f} | {_seconds(s['seconds'])} | {s['n']} |")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0f}"
