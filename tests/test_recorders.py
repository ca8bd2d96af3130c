"""Recorders: a spectral-norm recorder that watches a fit and never stops it."""

import numpy as np
import pytest
import torch

import dipkit
from dipkit.errors import DipkitError
from dipkit.layers import spectral_norm
from dipkit.recorders import SpectralNormRecorder


@pytest.fixture(scope="module")
def noisy():
    clean = dipkit.images.sample("astronaut", size=32)
    return dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)


def test_records_initial_and_probe_steps_and_never_stops(noisy):
    model = dipkit.decoder(channels=8, depth=3, lipschitz=0.8)
    initial = {n: float(spectral_norm(m.weight.detach())) for n, m in model.lipschitz_layers().items()}
    rec = SpectralNormRecorder(model)
    run = dipkit.fit(model, noisy, steps=30, probe_every=10, callbacks=[rec], progress=False)
    assert run.steps_run == 30 and run.stop_step is None and run.detections == {}  # a callback, not a rule
    assert rec.steps == [0, 10, 20, 30]
    assert rec.raw[0] == pytest.approx(initial)
    steps, names, eff = rec.array()
    _, raw_names, raw = rec.array(effective=False)
    assert names == raw_names == list(model.lipschitz_layers())
    assert eff.shape == raw.shape == (4, len(names))
    # the bound holds throughout, and the effective norm is min(raw, λ)
    assert (eff <= 0.8 + 1e-4).all()
    np.testing.assert_allclose(eff, np.minimum(raw, 0.8), rtol=1e-4, atol=1e-5)
    # the last record matches the trained model
    assert rec.effective[-1] == pytest.approx(model.spectral_norms(), rel=1e-6)


def test_every_thins_the_records_and_reset_restarts(noisy):
    model = dipkit.decoder(channels=8, depth=3)
    rec = SpectralNormRecorder(model, every=20)
    dipkit.fit(model, noisy, steps=50, probe_every=10, callbacks=[rec], progress=False)
    assert rec.steps == [0, 20, 40]
    # unbounded: effective and raw norms agree
    np.testing.assert_allclose(rec.array()[2], rec.array(effective=False)[2])
    dipkit.fit(model, noisy, steps=30, probe_every=10, callbacks=[rec], progress=False)
    assert rec.steps == [0, 20]  # step 10 falls in the window of step 0


def test_bad_arguments():
    with pytest.raises(DipkitError, match="no Lipschitz"):
        SpectralNormRecorder(dipkit.hourglass(channels=8, depth=2))
    with pytest.raises(DipkitError, match="DIPNetwork"):
        SpectralNormRecorder(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(DipkitError, match="every"):
        SpectralNormRecorder(dipkit.decoder(channels=8, depth=2), every=0)
