"""Recorders: callbacks that follow a quantity of the model during :func:`dipkit.fit`.

A recorder is a :class:`~dipkit.callbacks.Callback`; pass it to ``fit`` through ``callbacks=``
and it is called at every probe with the live model at hand. Since ``fit`` restarts Adam at
every call, recording *during* one fit is the only faithful way to follow a quantity of the
parameters over the steps.

Examples
--------
>>> import dipkit
>>> from dipkit.recorders import SpectralNormRecorder
>>> clean = dipkit.images.sample("astronaut", size=32)
>>> y = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
>>> model = dipkit.decoder(channels=8, depth=3, lipschitz=1.0)
>>> rec = SpectralNormRecorder(model)
>>> run = dipkit.fit(model, y, steps=20, probe_every=10, callbacks=[rec], progress=False)
>>> rec.steps
[0, 10, 20]
>>> steps, names, values = rec.array()
>>> values.shape == (3, len(names)) and bool((values <= 1.0 + 1e-4).all())
True
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .errors import DipkitError
from .models import DIPNetwork
from .callbacks import Callback

__all__ = ["SpectralNormRecorder"]


class SpectralNormRecorder(Callback):
    """Record the spectral norm of every Lipschitz-controlled convolution during a fit.

    At the start of the fit it records the initial norms as step 0, then at each
    probe (or, with ``every``, at the first probe of every ``every`` steps) both the **effective**
    norms ``‖W_eff‖₂ = min(‖W‖₂, λ)`` (what the forward pass uses, see
    :meth:`dipkit.models.DIPNetwork.spectral_norms`) and the **raw** norms ``‖W‖₂`` of the
    parameters Adam updates. It never stops the fit.

    Parameters
    ----------
    model : DIPNetwork
        The model being fitted (the same object passed to :func:`dipkit.fit`).
    every : int, optional
        Record at the first probe of each window of ``every`` steps (``step // every``
        increases); None records at every probe. Each record costs two exact singular values per
        layer (an ``eigvalsh`` of a C×C Gram matrix), which matters with ``probe_every=1``.

    Attributes
    ----------
    steps : list of int
        The steps recorded (0: the initial weights).
    effective, raw : list of dict[str, float]
        Per record, the norms by layer name (the keys of ``model.lipschitz_layers()``).

    Notes
    -----
    The norm is that of the weight reshaped to ``(C_out, C_in·k·k)``, as in the paper and in
    spectral normalisation (Miyato et al., 2018).
    """

    _transient = ("model",)

    def __init__(self, model: DIPNetwork, every: Optional[int] = None):
        if not isinstance(model, DIPNetwork):
            raise DipkitError("SpectralNormRecorder needs a DIPNetwork from dipkit.decoder or convnet")
        if not model.lipschitz_layers():
            raise DipkitError(f"this {model.config.get('kind')} has no Lipschitz-controlled "
                              f"convolutions to record; use dipkit.decoder or dipkit.convnet")
        if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
            raise DipkitError(f"every must be a positive integer or None, got {every!r}")
        self.model = model
        self.every = every
        self.reset()

    def reset(self) -> None:
        """Forget the records and record the current (initial) norms as step 0."""
        self.steps: list = []
        self.effective: list = []
        self.raw: list = []
        self._record(0)

    def _record(self, step: int) -> None:
        self.steps.append(int(step))
        self.effective.append(self.model.spectral_norms(effective=True))
        self.raw.append(self.model.spectral_norms(effective=False))

    def on_start(self, engine) -> None:
        if engine.step == 0:   # a fresh fit (a resumed one keeps its records)
            self.reset()

    def on_probe(self, engine) -> None:
        due = self.every is None or engine.step // self.every > self.steps[-1] // self.every
        if due:
            self._record(engine.step)

    def array(self, effective: bool = True):
        """The records as arrays: ``(steps (T,), layer names (L,), norms (T, L))``."""
        records = self.effective if effective else self.raw
        names = list(records[0])
        values = np.array([[r[n] for n in names] for r in records], dtype=np.float64)
        return np.asarray(self.steps, dtype=np.int64), names, values

    def __repr__(self) -> str:
        return f"SpectralNormRecorder(layers={len(self.model.lipschitz_layers())}, every={self.every})"
