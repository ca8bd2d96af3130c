"""The fit engine: one short loop over K ≥ 1 members, the behaviour in callbacks.

:func:`dipkit.fit` is the engine with one member; :func:`dipkit.fit_many` with K. Each step:
every active member's forward, loss and backward, then Adam (:mod:`dipkit.members`), then the
callbacks' ``on_step``; every ``probe_every`` steps the probes are measured batched over the
active members and the callbacks' ``on_probe`` run (:mod:`dipkit.callbacks`). A member whose
stopping rule fires leaves the batch; the others go on.

Between probes the loop never waits for the device: losses go into a tensor on the device, and
the host reads numbers only at probes that need them (a rule, backtracking, the progress bar:
callbacks with ``sync = True``) or at the end.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .callbacks import Callback
from .degradations import Degradation
from .errors import DipkitError, DivergenceError
from .metrics import psnr as psnr_metric
from .run import History, Run
from .sharpness import blur_sharpness_ratio
from .spectral import BandCorrespondence

__all__ = ["Engine", "HistoryLog"]

_HISTORY = ("loss", "psnr", "psnr_observation", "bands", "ratio")


class Engine:
    """The loop and its state, which callbacks read (and a few change).

    Attributes (for callbacks)
    --------------------------
    step : int
        The optimizer step just taken (1-based).
    active : list of int
        Member ids still fitting, in batch-row order.
    outputs : Tensor (A, C, H, W)
        The active members' outputs at this step (after an output EMA, if any).
    readings : dict[str, Tensor]
        At a probe: the probes of the active members, first dimension A.
    finite : list of bool
        At a probe of a syncing fit: whether each active member's losses since the last probe are finite.
    skip : set of int
        Members whose probe does not count (restored by backtracking at this probe).
    members
        The runner (:class:`~dipkit.members.LoopMembers` or ``VmapMembers``).
    k, steps, probe_every, lr, device
    """

    def __init__(self, members, *, observations: torch.Tensor, degradation: Degradation,
                 clean: Optional[torch.Tensor], steps: int, probe_every: int, lr: float,
                 probes: tuple, n_bands: int, callbacks: list, device: torch.device, k: int,
                 fingerprint: dict):
        self.members, self.degradation, self.callbacks = members, degradation, callbacks
        self.steps, self.probe_every, self.lr, self.probes = steps, probe_every, lr, probes
        self.device, self.k, self.n_bands, self.fingerprint = device, k, n_bands, fingerprint
        self.y, self.clean = observations, clean
        self.y_seen = degradation.forward(observations)   # what the loss compares with (masked)
        self.known = float(degradation.known_fraction(observations))
        self.active = list(range(k))
        self.losses = torch.full((steps, k), math.nan, device=device)
        self.log: list = []           # (step, seconds, member ids, batch rows, readings)
        self.left: dict = {}          # member id → (final output on the CPU, steps run, seconds)
        self.step, self.elapsed, self.outputs, self.readings = 0, 0.0, None, {}
        self.skip, self.finite, self._leaving, self.interrupted = set(), [], [], False
        self._start, self._last_probe, self._models = time.perf_counter(), 0, None
        self.sync = any(c.sync for c in callbacks)
        self._select_rows()

    # ---- the loop ----
    def run(self) -> None:
        """Step until the budget is spent or every member has left; Ctrl-C ends it early."""
        for cb in self.callbacks:
            cb.on_start(self)
        self._start = time.perf_counter() - self.elapsed
        try:
            while self.step < self.steps and self.active:
                self._step()
                self.elapsed = self.elapsed_now()
        except KeyboardInterrupt:
            if self.outputs is None:
                raise
            self.interrupted = True
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.elapsed = self.elapsed_now()
        for cb in self.callbacks:
            cb.on_end(self)

    def _step(self) -> None:
        out, loss = self.members.forward_backward(self.degradation, self._y_rows)
        self.members.step()
        self.step += 1
        self.losses[self.step - 1, self._ids] = loss
        self.outputs = out
        for cb in self.callbacks:
            cb.on_step(self)
        if self.step % self.probe_every == 0 or self.step == self.steps:
            self._probe()

    def _probe(self) -> None:
        self.readings = self._measure(self.outputs)
        if self.sync:
            self._check_divergence()
        self.skip = set()
        for cb in self.callbacks:
            cb.on_probe(self)
        self._last_probe = self.step
        self._drop_leaving()

    def _measure(self, out: torch.Tensor) -> dict:
        """The probes of the active members' outputs, batched (tensors on the device)."""
        fitted = self.degradation.forward(out)
        readings = {"loss": self.losses[self.step - 1, self._ids],
                    "psnr_observation": psnr_metric(fitted, self._y_seen_rows.expand_as(out))}
        # the data-fit residual per observed value (the discrepancy principle's quantity)
        readings["residual"] = readings["loss"] / self.known
        if self.clean is not None:
            readings["psnr"] = psnr_metric(out, self._clean_rows.expand_as(out))
        if "bands" in self.probes:
            readings["bands"] = self._fbc(out)
        if "ratio" in self.probes:
            readings["ratio"] = blur_sharpness_ratio(out)
        readings.update(self.degradation.readings(out, self._y_rows.expand_as(out)))
        return readings

    def _check_divergence(self) -> None:
        last = self._last_probe
        window = self.losses[last : self.step][:, self._ids]
        self.finite = torch.isfinite(window).all(dim=0).tolist()
        bad = [k for k, ok in zip(self.active, self.finite) if not ok
               and not any(cb.recovers(k) for cb in self.callbacks)]
        if bad:
            who = "" if self.k == 1 else f" of member(s) {bad}"
            raise DivergenceError(
                f"the loss{who} became NaN or infinite between steps {last + 1} and {self.step}; "
                f"lower the learning rate (lr={self.lr}) or pass backtrack=True")

    # ---- members ----
    def rows(self):
        """``(row, member)`` of the active members that this probe counts."""
        return [(row, k) for row, k in enumerate(self.active) if k not in self.skip]

    def counted(self) -> tuple:
        """The counted rows (list) and their member ids (a tensor on the device)."""
        pairs = self.rows()
        return [r for r, _ in pairs], torch.tensor([k for _, k in pairs], device=self.device)

    def leave(self, member: int) -> None:
        """Member ``member`` stops at this step: its output is final; it leaves after this probe."""
        row = self.active.index(member)
        self.left[member] = (self.outputs[row : row + 1].cpu(), self.step, self.elapsed_now())
        self.members.write_back(self._models[member], row)
        self._leaving.append(member)

    def _drop_leaving(self) -> None:
        if not self._leaving:
            return
        keep = [row for row, k in enumerate(self.active) if k not in self._leaving]
        self.active = [self.active[r] for r in keep]
        self.members.keep(keep)
        self._leaving = []
        if self.active:
            self.outputs = self.outputs[keep]
            self._select_rows()

    def _select_rows(self) -> None:
        """The observations and clean images of the active members (one shared image: broadcast)."""
        self._ids = torch.tensor(self.active, device=self.device)
        self._y_rows = self.y[self._ids] if self.y.shape[0] > 1 else self.y
        self._y_seen_rows = self.y_seen[self._ids] if self.y.shape[0] > 1 else self.y_seen
        if self.clean is not None:
            self._clean_rows = self.clean[self._ids] if self.clean.shape[0] > 1 else self.clean
        if "bands" in self.probes:
            self._fbc = BandCorrespondence(self._y_rows, self.n_bands)

    def elapsed_now(self) -> float:
        """Seconds of fitting so far (across resumptions)."""
        return time.perf_counter() - self._start

    # ---- results ----
    def results(self, models: list, seeds: list, codes: torch.Tensor, config: dict) -> list:
        """One :class:`~dipkit.run.Run` per member."""
        for row, k in enumerate(self.active):   # members that ran to the end
            self.left[k] = (self.outputs[row : row + 1].cpu(), self.step, self.elapsed)
            self.members.write_back(models[k], row)
        losses = self.losses.cpu()
        runs = []
        for k in range(self.k):
            final, steps_run, seconds = self.left[k]
            mine = losses[:steps_run, k]
            if not torch.isfinite(mine).all() and not any(cb.recovers(k) for cb in self.callbacks):
                who = "" if self.k == 1 else f" of member {k}"
                raise DivergenceError(f"the loss{who} became NaN or infinite during the fit; lower the "
                                      f"learning rate (lr={self.lr}) or pass backtrack=True")
            fields = dict(final=final, stopped=final, stop_step=None, best=None, best_step=None,
                          best_psnr=None, history=self._history(k, mine), steps_run=steps_run,
                          seconds=seconds, config={**config[k], **self.members.config()},
                          code=codes[k].cpu(), detections={}, interrupted=self.interrupted)
            for cb in self.callbacks:
                cb.contribute(k, fields)
            runs.append(Run(**fields))
        return runs

    def _history(self, member: int, losses: torch.Tensor) -> History:
        values = {key: [] for key in _HISTORY}
        steps, times = [], []
        for step, seconds, ids, rows, readings in self.log:
            if member not in ids:
                continue
            row = rows[ids.index(member)]
            for key in _HISTORY:
                if key in readings:
                    values[key].append(readings[key][row])
            steps.append(step)
            times.append(seconds)

        def stack(key):
            return torch.stack(values[key]).double().cpu().numpy() if values[key] else None

        return History(step=np.asarray(steps, dtype=np.int64), loss=stack("loss"), psnr=stack("psnr"),
                       psnr_observation=stack("psnr_observation"), bands=stack("bands"),
                       ratio=stack("ratio"), time=np.asarray(times),
                       loss_every_step=losses.double().numpy())

    # ---- checkpoints ----
    def save_checkpoint(self, path) -> None:
        """The whole state of the fit, written atomically (a temporary file, then a rename)."""
        state = dict(fingerprint=self.fingerprint, step=self.step, elapsed=self.elapsed,
                     active=self.active, members=self.members.state_dict(), losses=self.losses.cpu(),
                     log=self.log, left=self.left, outputs=self.outputs,
                     callbacks=self._callback_states())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path) -> bool:
        """Resume from ``path`` when it exists (True); a checkpoint of another fit is an error."""
        path = Path(path)
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state["fingerprint"] != self.fingerprint:
            changed = sorted(k for k in set(self.fingerprint) | set(state["fingerprint"])
                             if self.fingerprint.get(k) != state["fingerprint"].get(k))
            raise DipkitError(f"the checkpoint '{path}' was written by another fit (it differs in "
                              f"{', '.join(changed)}); delete it or pass another checkpoint path")
        self.members.load_state_dict(state["members"])
        self.step, self.elapsed, self.active = state["step"], state["elapsed"], list(state["active"])
        self.losses = state["losses"].to(self.device)
        self.log, self.left, self.outputs = state["log"], state["left"], state["outputs"]
        self._last_probe = self.step
        states = state["callbacks"]
        for key, cb in self._keyed_callbacks():
            if key in states:
                cb.load_state_dict(states[key])
        self._select_rows()
        return True

    def _keyed_callbacks(self) -> list:
        """``('RuleWatch#1', callback)``: each callback under its class name and its rank among
        callbacks of that class (a resumed fit may add or drop callbacks of other classes)."""
        seen: dict = {}
        keyed = []
        for cb in self.callbacks:
            name = type(cb).__name__
            keyed.append((f"{name}#{seen.get(name, 0)}", cb))
            seen[name] = seen.get(name, 0) + 1
        return keyed

    def _callback_states(self) -> dict:
        return {key: cb.state_dict() for key, cb in self._keyed_callbacks()}

    def attach(self, models: list) -> None:
        """The members' models (a member's weights are written back to it when it leaves)."""
        self._models = models


class HistoryLog(Callback):
    """The callback that records each probe's readings into ``engine.log`` (the Runs' history).

    It goes after backtracking (whose restored members this probe does not count) and before
    the callbacks that read the history.
    """

    def on_probe(self, engine) -> None:
        pairs = engine.rows()
        if pairs:
            engine.log.append((engine.step, engine.elapsed_now(), tuple(k for _, k in pairs),
                               tuple(r for r, _ in pairs), engine.readings))

    def state_dict(self) -> dict:
        return {}
