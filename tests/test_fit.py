"""The fitting loop: history, reproducibility, stopping, divergence, bad input."""

import numpy as np
import pytest
import torch

import dipkit
from dipkit.degradations import GaussianNoise, Inpainting, bernoulli_mask
from dipkit.errors import DipkitError, DivergenceError, ShapeError
from dipkit.stopping import ESWMV, StoppingRule


@pytest.fixture(scope="module")
def denoising():
    clean = dipkit.images.sample("astronaut", size=64)
    noisy = GaussianNoise(25 / 255).observe(clean, seed=0)
    return clean, noisy


def small_model(**kw):
    return dipkit.decoder(channels=16, depth=4, **kw)


@pytest.fixture(scope="module")
def small_run(denoising):
    clean, noisy = denoising
    return dipkit.fit(small_model(), noisy, steps=300, probe_every=10, clean=clean, seed=0,
                      progress=False, snapshot_every=100)


def test_history_has_every_field(small_run):
    h = small_run.history
    assert h.step.tolist() == list(range(10, 301, 10))
    for name in ("loss", "psnr", "psnr_observation", "ratio", "time"):
        arr = getattr(h, name)
        assert arr.shape == (30,) and np.isfinite(arr).all(), name
    assert h.bands.shape == (30, 5) and ((h.bands >= 0) & (h.bands <= 1)).all()
    assert h.loss_every_step.shape == (300,)
    assert np.all(np.diff(h.time) >= 0)
    assert set(small_run.snapshots) == {1, 100, 200, 300}
    assert small_run.final.shape == (1, 3, 64, 64) and small_run.final.device.type == "cpu"
    assert small_run.steps_run == 300 and small_run.stop_step is None


def test_output_beats_the_observation(denoising, small_run):
    clean, noisy = denoising
    noisy_psnr = float(dipkit.metrics.psnr(noisy, clean)[0])
    assert small_run.best_psnr > noisy_psnr + 1.0
    assert float(dipkit.metrics.psnr(small_run.best, clean)[0]) == pytest.approx(small_run.best_psnr, abs=1e-3)
    assert small_run.best_step in small_run.history.step
    assert small_run.best_psnr == pytest.approx(small_run.history.psnr.max(), abs=1e-4)


def test_low_bands_are_fitted_before_high_ones(small_run):
    bands = small_run.history.bands
    assert bands[5, 0] > bands[5, -1] + 0.2  # early on: band 1 far better matched than band 5


def test_same_seed_same_history(denoising):
    clean, noisy = denoising
    a = dipkit.fit(small_model(), noisy, steps=30, clean=clean, seed=3, progress=False)
    b = dipkit.fit(small_model(), noisy, steps=30, clean=clean, seed=3, progress=False)
    c = dipkit.fit(small_model(), noisy, steps=30, clean=clean, seed=4, progress=False)
    np.testing.assert_array_equal(a.history.loss_every_step, b.history.loss_every_step)
    np.testing.assert_array_equal(a.history.bands, b.history.bands)
    assert torch.equal(a.final, b.final)
    assert not np.array_equal(a.history.loss_every_step, c.history.loss_every_step)


def test_history_csv(tmp_path, small_run):
    path = tmp_path / "h.csv"
    small_run.history.to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0].split(",")[:3] == ["step", "loss", "psnr"]
    assert "band5" in lines[0] and len(lines) == 31


class _StopAt(StoppingRule):
    def __init__(self, at):
        self.at = at
        super().__init__()

    def update(self, step, output, readings):
        return self._stop(step) if step >= self.at else False


def test_a_rule_stops_the_fit_and_keeps_its_output(denoising):
    clean, noisy = denoising
    run = dipkit.fit(small_model(), noisy, steps=100, probe_every=5, stop=_StopAt(40), clean=clean, progress=False)
    assert run.stop_step == 40 and run.steps_run == 40
    assert torch.equal(run.stopped, run.final)
    assert run.psnr_stopped == pytest.approx(run.history.psnr[-1])


def test_eswmv_returns_the_minimum_variance_output(denoising):
    clean, noisy = denoising
    rule = ESWMV(window=6, patience=4)
    run = dipkit.fit(small_model(), noisy, steps=200, probe_every=2, stop=rule, clean=clean, progress=False)
    assert run.stop_step is not None and run.stop_step <= run.steps_run
    if run.stop_step != run.steps_run:
        assert not torch.equal(run.stopped, run.final)


def test_inpainting_loss_uses_the_mask():
    clean = dipkit.images.sample("camera", size=64)
    mask = bernoulli_mask(64, 64)
    op = Inpainting(mask)
    y = op.observe(clean)
    run = dipkit.fit(dipkit.decoder(out_channels=1, channels=16, depth=4), y, degradation=op,
                     steps=200, clean=clean, progress=False)
    assert run.best_psnr > float(dipkit.metrics.psnr(y, clean)[0]) + 3


def test_divergence_without_backtracking_is_a_clear_error(denoising):
    clean, noisy = denoising
    model = small_model()
    with torch.no_grad():
        model.net[1].weight.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        dipkit.fit(model, noisy, steps=20, progress=False)


def test_backtracking_recovers_from_a_blow_up(denoising):
    clean, noisy = denoising
    model = small_model()

    class Sabotage(StoppingRule):
        """Poisons the weights once, after the first saved state."""
        def update(self, step, output, readings):
            if step == 20:
                with torch.no_grad():
                    model.net[1].weight.fill_(float("nan"))
            return False

    run = dipkit.fit(model, noisy, steps=60, probe_every=10, backtrack=True, stop=Sabotage(),
                     clean=clean, progress=False)
    assert run.backtracks == [30]
    assert np.isfinite(run.history.psnr).all() and torch.isfinite(run.final).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(steps=0), DipkitError, "steps"),
    (dict(steps=5, lr=-1), DipkitError, "lr"),
    (dict(steps=5, probe_every=0), DipkitError, "probe_every"),
    (dict(steps=5, probes=("fft",)), DipkitError, "probes"),
])
def test_bad_arguments(denoising, kwargs, error, match):
    with pytest.raises(error, match=match):
        dipkit.fit(small_model(), denoising[1], progress=False, **kwargs)


def test_bad_observations(denoising):
    clean, noisy = denoising
    with pytest.raises(ShapeError, match="channel"):
        dipkit.fit(small_model(out_channels=1), noisy, steps=1, progress=False)
    with pytest.raises(ShapeError, match="too small"):
        dipkit.fit(small_model(), noisy[..., :16, :16], steps=1, progress=False)
    with pytest.raises(ShapeError, match="multiple of 16"):
        dipkit.fit(small_model(), noisy[..., :40, :], steps=1, progress=False)
    with pytest.raises(DipkitError, match=r"\[0, 1\]"):
        dipkit.fit(small_model(), noisy * 255, steps=1, progress=False)
    with pytest.raises(DipkitError, match="NaN"):
        dipkit.fit(small_model(), noisy * float("nan"), steps=1, progress=False)
    with pytest.raises(DipkitError, match="to_tensor"):
        dipkit.fit(small_model(), noisy.numpy(), steps=1, progress=False)
    with pytest.raises(ShapeError, match="differ"):
        dipkit.fit(small_model(), noisy, clean=clean[..., :32, :32], steps=1, progress=False)


def test_monitored_rules_do_not_stop_the_fit(denoising):
    clean, noisy = denoising
    run = dipkit.fit(small_model(), noisy, steps=100, probe_every=5, clean=clean, progress=False,
                     monitor={"at40": _StopAt(40), "never": _StopAt(10_000)}, snapshot_every=[40])
    assert run.steps_run == 100 and run.stop_step is None
    d = run.detections["at40"]
    assert d.fired_at == d.step == 40
    assert torch.equal(d.output, run.snapshots[40])
    assert run.detections["never"].fired_at is None and run.detections["never"].output is None


class _FiresAt(StoppingRule):
    """Fires at a given step and selects it."""

    def __init__(self, at):
        self.at = at
        super().__init__()

    def update(self, step, output, readings):
        return self._stop(step) if step == self.at else False


def test_snapshots_and_detections_are_copies_with_ema(denoising):
    """With an output EMA the output is one tensor updated in place; on the CPU ``.cpu()`` does
    not copy, so a snapshot or a monitor's output kept without a copy would turn into the last one."""
    clean, noisy = denoising
    run = dipkit.fit(small_model(), noisy, steps=30, probe_every=10, clean=clean, seed=0, ema=0.9,
                     snapshot_every=10, monitor={"at10": _FiresAt(10)}, progress=False)
    det = run.detections["at10"]
    assert det.fired_at == 10 and det.step == 10
    assert torch.equal(det.output, run.snapshots[10])
    assert not torch.equal(run.snapshots[10], run.final) and not torch.equal(run.snapshots[20], run.final)
    assert torch.equal(run.snapshots[30], run.final)
    first = float(dipkit.metrics.psnr(det.output, clean)[0])
    assert first == pytest.approx(float(run.history.psnr[0]), abs=1e-4)   # the PSNR probed at step 10
