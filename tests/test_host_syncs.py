"""Between probes the fit loop never waits for the device (issue 12, item 2), checked on the CPU.

A GPU reports host waits with ``torch.cuda.set_sync_debug_mode`` (the device script's benchmark
does); here :class:`host_reads.HostReads` records the operators that would wait, between the
first step and the step before the first probe. The Lipschitz layers use the spectral norm a GPU
uses (``method='squaring'``): the CPU's exact solver would wait on a GPU, which the first test
shows the watcher sees.
"""


import pytest

import dipkit
import dipkit.layers
from dipkit.degradations import GaussianNoise, Inpainting, bernoulli_mask
from dipkit.stopping import RatioRule
from host_reads import WatchSteps

STEPS = 10  # one probe, at the last step: steps 2..9 are watched


def WatchBetweenProbes(per_step=None):
    """Watches steps 2 .. STEPS − 1 (the fit's only probe is at step STEPS)."""
    return WatchSteps(STEPS - 1, per_step)


@pytest.fixture
def gpu_spectral_norm(monkeypatch):
    """The Lipschitz clamp with the spectral norm a GPU computes."""
    exact = dipkit.layers.spectral_norm
    monkeypatch.setattr(dipkit.layers, "spectral_norm",
                        lambda w, method=None: exact(w, method or "squaring"))


def _paper_net(out_channels=3):
    return dipkit.decoder(out_channels, channels=8, depth=3, upsample="gaussian", lipschitz=1.4,
                          sigma=[0.1, 0.1, 0.5])


def _denoising():
    clean = dipkit.images.sample("astronaut", size=32)
    return clean, GaussianNoise(25 / 255).observe(clean, seed=0)


def _fit(watch, **options):
    clean, y = _denoising()
    dipkit.fit(_paper_net(), y, steps=STEPS, probe_every=STEPS, clean=clean, progress=False,
               callbacks=[watch], **options)
    return watch.found


def test_the_watcher_sees_host_reads():
    """Controls: the CPU's exact spectral norm and a callback that reads the loss every step."""
    assert "_linalg_eigh" in _fit(WatchBetweenProbes())
    read = WatchBetweenProbes(per_step=lambda engine: float(engine.losses[engine.step - 1, 0]))
    found = _fit(read, stop=None)
    assert found.count("_local_scalar_dense") >= STEPS - 3


def test_a_fit_with_the_papers_settings_reads_nothing_between_probes(gpu_spectral_norm):
    found = _fit(WatchBetweenProbes(), stop=RatioRule(), input_noise=1 / 30, ema=0.99, backtrack=True)
    assert found == []


@pytest.mark.parametrize("method", ["loop", "vmap"])
def test_fit_many_on_inpainting_reads_nothing_between_probes(gpu_spectral_norm, method):
    clean = dipkit.images.sample("astronaut", size=32)
    op = Inpainting(bernoulli_mask(32, 32, 0.5, seed=0))
    watch = WatchBetweenProbes()
    dipkit.fit_many(_paper_net(), op.observe(clean), seeds=[0, 1], steps=STEPS, probe_every=STEPS,
                    clean=clean, method=method, stop=RatioRule(), input_noise=1 / 30,
                    progress=False, callbacks=[watch])
    assert watch.found == []
