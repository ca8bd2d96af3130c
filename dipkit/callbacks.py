"""Callbacks: what the fit engine does at each step and at each probe, one behaviour each.

The engine (:mod:`dipkit.engine`) runs the optimiser; everything else a fit does is a callback
called with the engine at hand:

``on_start(engine)``
    Before the first step (or after a resumed checkpoint is loaded).
``on_step(engine)``
    After every optimizer step; ``engine.outputs`` (A, C, H, W) are the active members' outputs.
``on_probe(engine)``
    Every ``probe_every`` steps and at the last step; ``engine.readings`` holds the probes of the
    active members (0-d per member after indexing with a row: ``'loss'``, ``'psnr_observation'``,
    ``'psnr'`` with a clean image, ``'bands'``, ``'ratio'``, ``'residual'``).
``on_end(engine)``
    After the last step (or when every member stopped, or on Ctrl-C).
``contribute(member, fields)``
    Fill in the fields of member ``member``'s :class:`~dipkit.run.Run` that this callback owns.

``engine.rows()`` yields ``(row, member)`` for the active members that this probe counts (a
member whose parameters were just restored by backtracking is skipped). A callback works per
member: every member has its own EMA, snapshots, oracle best, rules and detections.

Stopping rules (:mod:`dipkit.stopping`) decide; callbacks record. :class:`RuleWatch` is the
callback that feeds a rule and keeps the output it selects. A callback that holds state across a
checkpoint returns it from ``state_dict()`` (default: its attributes but the ``_transient`` ones).
"""

from __future__ import annotations

import copy
import math
from typing import Iterable, Optional

import torch

from .errors import DipkitError, DivergenceError
from .run import Detection
from .stopping import StoppingRule

__all__ = ["Callback", "OutputEMA", "Snapshots", "Backtracking", "OracleBest", "ProgressBar",
           "RuleWatch", "Checkpoint"]


class Callback:
    """Base class: every hook does nothing. See the module docstring for when each is called."""

    #: True when the callback reads numbers on the host at probes (then the engine checks the
    #: losses for NaN at each probe too); False keeps a GPU loop free of host syncs.
    sync: bool = False
    #: Attribute names left out of :meth:`state_dict` (live objects: models, progress bars).
    _transient: tuple = ()

    def on_start(self, engine) -> None:
        pass

    def on_step(self, engine) -> None:
        pass

    def on_probe(self, engine) -> None:
        pass

    def on_end(self, engine) -> None:
        pass

    def contribute(self, member: int, fields: dict) -> None:
        pass

    def recovers(self, member: int) -> bool:
        """True when this callback can undo a divergence of ``member`` (backtracking)."""
        return False

    def state_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in self._transient}

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


class OutputEMA(Callback):
    """Report the exponential moving average of each member's outputs (original DIP: 0.99).

    Replaces ``engine.outputs`` at every step, before the callbacks that follow it see them.
    """

    def __init__(self, decay: float):
        if not 0 <= decay < 1:
            raise DipkitError(f"ema must be in [0, 1), got {decay!r}")
        self.decay, self.average = float(decay), {}

    def on_step(self, engine) -> None:
        rows = []
        for row, k in enumerate(engine.active):
            out = engine.outputs[row : row + 1]
            if k not in self.average:
                self.average[k] = out.clone()
            else:
                self.average[k].mul_(self.decay).add_(out, alpha=1 - self.decay)
            rows.append(self.average[k])
        engine.outputs = torch.cat(rows)


class Snapshots(Callback):
    """Keep each member's output (a CPU copy) at the given steps."""

    def __init__(self, steps: Iterable[int]):
        self.steps, self.kept = set(steps), {}

    @classmethod
    def every(cls, snapshot_every, steps: int) -> Optional["Snapshots"]:
        """From ``fit``'s ``snapshot_every``: an int (and step 1), a list of steps, or None."""
        if snapshot_every is None:
            return None
        if isinstance(snapshot_every, int):
            return cls(set(range(snapshot_every, steps + 1, snapshot_every)) | {1})
        return cls(int(s) for s in snapshot_every)

    def on_step(self, engine) -> None:
        if engine.step in self.steps:
            for row, k in enumerate(engine.active):
                self.kept.setdefault(k, {})[engine.step] = engine.outputs[row : row + 1].to("cpu", copy=True)

    def contribute(self, member: int, fields: dict) -> None:
        fields["snapshots"] = self.kept.get(member, {})


class Backtracking(Callback):
    """Restore a member's parameters (and Adam state) of its last probe when it diverges.

    A member diverges when its loss became NaN/inf since the last probe or its PSNR(A f, y)
    dropped by more than ``drop`` dB. After ``max_in_row`` restorations in a row the fit gives up
    with :class:`~dipkit.errors.DivergenceError`. A restored probe is not recorded.
    """

    sync = True

    def __init__(self, max_in_row: int = 10, drop: float = 5.0):
        self.max_in_row, self.drop = int(max_in_row), float(drop)
        self.saved, self.saved_psnr, self.in_row, self.steps = {}, {}, {}, {}

    def recovers(self, member: int) -> bool:
        return member in self.saved

    def on_probe(self, engine) -> None:
        psnr_obs = engine.readings["psnr_observation"].tolist()
        for row, k in enumerate(engine.active):
            diverged = not engine.finite[row] or math.isnan(psnr_obs[row]) or (
                k in self.saved_psnr and psnr_obs[row] < self.saved_psnr[k] - self.drop)
            if diverged:
                self.in_row[k] = self.in_row.get(k, 0) + 1
                if self.in_row[k] > self.max_in_row:
                    raise DivergenceError(
                        f"the fit diverged {self.in_row[k]} times in a row (last at step {engine.step}) "
                        f"and backtracking could not recover it; lower the learning rate (lr={engine.lr})")
                engine.members.restore(row, self.saved[k])
                self.steps.setdefault(k, []).append(engine.step)
                engine.skip.add(k)
                continue
            self.in_row[k] = 0
            self.saved[k] = engine.members.save(row)
            self.saved_psnr[k] = psnr_obs[row]

    def contribute(self, member: int, fields: dict) -> None:
        fields["backtracks"] = self.steps.get(member, [])


class OracleBest(Callback):
    """Keep each member's output of highest PSNR against the clean image (an oracle: for studies).

    The comparison stays on the device (``torch.where``): no host sync.
    """

    def __init__(self, k: int, like: torch.Tensor):
        self.best = torch.zeros((k,) + tuple(like.shape[1:]), device=like.device)
        self.psnr = torch.full((k,), -math.inf, device=like.device)
        self.step = torch.zeros(k, dtype=torch.long, device=like.device)

    def on_probe(self, engine) -> None:
        rows, ids = engine.counted()
        if not rows:
            return
        p = engine.readings["psnr"][rows]
        better = p > self.psnr[ids]
        self.best[ids] = torch.where(better.view(-1, 1, 1, 1), engine.outputs[rows], self.best[ids])
        self.step[ids] = torch.where(better, torch.full_like(self.step[ids], engine.step), self.step[ids])
        self.psnr[ids] = torch.maximum(p, self.psnr[ids])

    def contribute(self, member: int, fields: dict) -> None:
        fields.update(best=self.best[member : member + 1].cpu(), best_step=int(self.step[member]),
                      best_psnr=float(self.psnr[member]))


class ProgressBar(Callback):
    """A tqdm bar over the steps, with the loss, PSNR and ratio of the first member at probes."""

    sync = True
    _transient = ("bar",)

    def __init__(self, desc: str = "fit"):
        self.desc, self.bar = desc, None

    def on_start(self, engine) -> None:
        from tqdm.auto import tqdm  # imported here: tqdm.auto probes for ipywidgets

        self.bar = tqdm(total=engine.steps, initial=engine.step, desc=self.desc, leave=False)

    def on_probe(self, engine) -> None:
        self.bar.update(engine.step - self.bar.n)
        shown = {k: f"{float(engine.readings[k][0]):.4g}" for k in ("loss", "psnr", "ratio")
                 if k in engine.readings}
        if engine.k > 1:
            shown["active"] = len(engine.active)
        self.bar.set_postfix(shown)

    def on_end(self, engine) -> None:
        if self.bar is not None:
            self.bar.close()


class RuleWatch(Callback):
    """Feed a stopping rule per member at each probe and keep the output it selects.

    With ``stops=True`` the rule ends the member's fit when it fires (``fit(stop=...)``);
    otherwise it only watches and records where it would have stopped (``fit(monitor=...)``,
    :attr:`Run.detections`).

    Parameters
    ----------
    rules : list of StoppingRule or None
        One rule per member (None: that member has no rule).
    name : str
        The detection's name (monitors).
    stops : bool
    probe_every : int
        The fit's probe interval: each rule converts its parameters (in steps) to probes.
    """

    sync = True

    def __init__(self, rules: list, name: str = "stop", stops: bool = True, probe_every: int = 1):
        for r in rules:
            if r is not None:
                r.bind(probe_every)
                r.reset()
        self.rules, self.name, self.stops = rules, name, stops
        self.selected, self.fired = {}, {}

    @property
    def needs(self) -> set:
        return {n for r in self.rules if r is not None for n in r.needs}

    def on_probe(self, engine) -> None:
        for row, k in engine.rows():
            rule = self.rules[k]
            if rule is None or k in self.fired:
                continue
            out = engine.outputs[row : row + 1]
            hit = rule.update(engine.step, out, {key: v[row] for key, v in engine.readings.items()})
            if rule.selected_step == engine.step:
                self.selected[k] = (engine.step, out.to("cpu", copy=True) if not self.stops else out.clone())
            if hit:
                self.fired[k] = engine.step
                if self.stops:
                    engine.leave(k)

    def _selected(self, member: int):
        step = self.rules[member].selected_step
        kept = self.selected.get(member)
        return step, (kept[1] if kept is not None and kept[0] == step else None)

    def contribute(self, member: int, fields: dict) -> None:
        fired = member in self.fired
        if self.stops:
            step, output = self._selected(member) if fired else (None, None)
            fields.update(stop_step=step, stopped=output.cpu() if fired else fields["final"])
        else:
            step, output = self._selected(member) if fired else (None, None)
            fields["detections"][self.name] = Detection(self.fired.get(member), step, output)


class Checkpoint(Callback):
    """Write the engine's state to ``path`` every ``every`` steps (and on Ctrl-C, and at the end).

    ``fit(..., checkpoint=path)`` resumes from the file when it exists; see :func:`dipkit.fit`.
    """

    def __init__(self, path, every: int):
        if not isinstance(every, int) or every < 1:
            raise DipkitError(f"checkpoint_every must be a positive integer, got {every!r}")
        self.path, self.every = path, every

    def on_step(self, engine) -> None:
        if engine.step % self.every == 0:
            engine.save_checkpoint(self.path)

    def on_end(self, engine) -> None:
        engine.save_checkpoint(self.path)


def rule_copies(rule, k: int, probe_every: int) -> list:
    """One rule per member from ``fit``'s ``stop``/``monitor`` values: a name, a rule (copied for
    every member but the first), None, or a list of K of those."""
    from .stopping import make_rule

    rules = list(rule) if isinstance(rule, (list, tuple)) else [rule] * k
    out = []
    for i, r in enumerate(rules):
        r = make_rule(r) if isinstance(r, (str, type(None))) else r
        if r is not None and not isinstance(r, StoppingRule):
            raise DipkitError(f"a stopping rule must be a name ('paper', 'eswmv', ...), None or a "
                              f"StoppingRule, got {r!r}; callbacks go in callbacks=[...]")
        out.append(copy.deepcopy(r) if (r is not None and i > 0 and rules[i] is rules[0]) else r)
    return out
