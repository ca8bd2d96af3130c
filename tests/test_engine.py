"""The engine behind fit and fit_many: checkpoints, Ctrl-C, per-member callbacks, the operator."""

import numpy as np
import pytest
import torch

import dipkit
from dipkit.callbacks import Callback
from dipkit.degradations import GaussianNoise, Identity, Inpainting, bernoulli_mask
from dipkit.errors import DipkitError
from dipkit.stopping import ESWMV, RatioRule

SIZE = 32
ARCH = dict(channels=8, depth=3, lipschitz=1.4)


@pytest.fixture(scope="module")
def denoising():
    clean = dipkit.images.sample("astronaut", size=SIZE)
    return clean, GaussianNoise(25 / 255).observe(clean, seed=0)


class Interrupt(Callback):
    """Ctrl-C at a given step (what a user's KeyboardInterrupt does inside the loop)."""

    def __init__(self, at):
        self.at = at

    def on_step(self, engine):
        if engine.step == self.at:
            raise KeyboardInterrupt


def options(**extra):
    # every stateful part at once: input noise, EMA, backtracking, a stop rule and a monitor
    return dict(steps=40, probe_every=4, seed=3, input_noise=0.05, ema=0.9, backtrack=True,
                stop=ESWMV(window=8, patience=400), monitor={"paper": RatioRule(n=8, eps=1e-9)},
                snapshot_every=[12, 36], progress=False, **extra)


def assert_same(a, b, probe_rtol=0.0):
    """Equal fits; ``probe_rtol``: the probes of a batch of members round differently from one."""
    assert a.steps_run == b.steps_run and a.stop_step == b.stop_step and a.best_step == b.best_step
    assert torch.equal(a.final, b.final) and torch.equal(a.best, b.best)
    np.testing.assert_array_equal(a.history.loss_every_step, b.history.loss_every_step)
    for key, value in a.history.columns().items():
        if key != "time":
            np.testing.assert_allclose(value, b.history.columns()[key], rtol=probe_rtol, atol=0, err_msg=key)
    assert sorted(a.snapshots) == sorted(b.snapshots)
    for step in a.snapshots:
        assert torch.equal(a.snapshots[step], b.snapshots[step])
    assert a.detections["paper"].fired_at == b.detections["paper"].fired_at


def test_ctrl_c_returns_the_run_so_far(denoising):
    clean, y = denoising
    run = dipkit.fit(dipkit.decoder(**ARCH), y, clean=clean, callbacks=[Interrupt(18)], **options())
    assert run.interrupted and run.steps_run == 18
    assert run.history.step.tolist() == [4, 8, 12, 16] and run.final.shape == (1, 3, SIZE, SIZE)


def test_a_resumed_fit_equals_the_uninterrupted_one(denoising, tmp_path):
    clean, y = denoising
    whole = dipkit.fit(dipkit.decoder(**ARCH), y, clean=clean, **options())
    path = tmp_path / "fit.pt"
    cut = dipkit.fit(dipkit.decoder(**ARCH), y, clean=clean, checkpoint=path, checkpoint_every=8,
                     callbacks=[Interrupt(22)], **options())
    assert cut.interrupted and cut.steps_run == 22 and path.exists()
    # a new session: a fresh network (its weights come from the checkpoint), fresh rules
    resumed = dipkit.fit(dipkit.decoder(**ARCH), y, clean=clean, checkpoint=path, **options())
    assert not resumed.interrupted
    assert_same(resumed, whole)


def test_a_checkpoint_of_another_fit_is_refused(denoising, tmp_path):
    clean, y = denoising
    path = tmp_path / "fit.pt"
    dipkit.fit(dipkit.decoder(**ARCH), y, steps=8, probe_every=4, checkpoint=path, progress=False)
    with pytest.raises(DipkitError, match="another fit .*lr"):
        dipkit.fit(dipkit.decoder(**ARCH), y, steps=8, probe_every=4, lr=1e-2, checkpoint=path,
                   progress=False)


def test_fit_many_runs_every_callback_per_member(denoising):
    """Batched members with EMA, input noise, backtracking, snapshots, a stop rule and a monitor
    equal the single fits with their seeds (the loop runs the very same ops: exact)."""
    clean, y = denoising
    kw = options()
    kw.pop("seed")
    runs = dipkit.fit_many(dipkit.decoder(**ARCH), y, seeds=[3, 5], clean=clean, method="loop", **kw)
    for seed, run in zip((3, 5), runs):
        alone = dipkit.fit(dipkit.decoder(**ARCH, seed=seed), y, clean=clean, **{**options(), "seed": seed})
        assert run.config["batched"] == 2 and run.backtracks == alone.backtracks
        assert_same(run, alone, probe_rtol=1e-5)


def test_the_observation_knows_its_operator():
    clean = dipkit.images.sample("camera", size=SIZE)
    op = Inpainting(bernoulli_mask(SIZE, SIZE))
    y = op.observe(clean)
    run = dipkit.fit(dipkit.decoder(out_channels=1, **ARCH), y, steps=4, probe_every=4, progress=False)
    assert run.config["degradation"].startswith("Inpainting")
    # the same pixels without the operator attached (e.g. read from a file): a clear error
    with pytest.raises(DipkitError, match=r"looks masked.*Inpainting\(mask\)"):
        dipkit.fit(dipkit.decoder(out_channels=1, **ARCH), y.clone(), steps=4, progress=False)
    with pytest.raises(DipkitError, match="made by Inpainting"):
        dipkit.fit(dipkit.decoder(out_channels=1, **ARCH), y, degradation=GaussianNoise(0.1), steps=4,
                   progress=False)
    # fitting it as it is stays possible when asked for
    dipkit.fit(dipkit.decoder(out_channels=1, **ARCH), y.clone(), degradation=Identity(), steps=4,
               progress=False)


@pytest.mark.parametrize("rule, match", [(ESWMV(window=25, patience=100), "window of 25 steps"),
                                          (ESWMV(window=20, patience=105), "patience of 105 steps"),
                                          (RatioRule(n=15), "window n of 15 steps")])
def test_rule_settings_the_probe_interval_cannot_honour(denoising, rule, match):
    with pytest.raises(DipkitError, match=match):
        dipkit.fit(dipkit.decoder(**ARCH), denoising[1], steps=20, probe_every=10, stop=rule, progress=False)


def test_rules_count_steps_not_probes():
    """ES-WMV's patience of 200 steps is 200 steps at any probe interval."""
    def fired(probe_every):
        rule = ESWMV(window=20, patience=200)
        rule.bind(probe_every)
        rule.reset()
        flat = torch.zeros(1, 1, 4, 4)
        for step in range(probe_every, 2000, probe_every):
            out = flat + (0.5 if step <= 100 else 0.0) * torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(step))
            if rule.update(step, out, {}):
                return rule.stopped_at - rule.selected_step
        return None

    assert fired(1) == fired(10) == fired(20) == 200


def test_a_held_out_fit_watches_the_error_on_the_held_out_pixels(denoising):
    from dipkit.degradations import HeldOut
    from dipkit.stopping import HeldOutRule

    class Readings(Callback):
        def __init__(self):
            self.values = []

        def on_probe(self, engine):
            self.values.append((engine.step, float(engine.readings["heldout"][0])))

    clean, y = denoising
    seen = Readings()
    run = dipkit.fit(dipkit.decoder(**ARCH), y, degradation=HeldOut(GaussianNoise(25 / 255), 0.1),
                     steps=200, probe_every=4, lr=1e-2, monitor={"heldout": HeldOutRule(patience=40)},
                     callbacks=[seen], clean=clean, progress=False)
    assert run.config["degradation"].startswith("HeldOut") and run.steps_run == 200
    steps, values = zip(*seen.values)
    assert len(values) == 50 and all(v > 0 for v in values)
    det = run.detections["heldout"]
    if det.fired_at is not None:   # it selects the minimum of the held-out error seen until it fired
        until = [v for s, v in seen.values if s <= det.fired_at]
        assert det.step == steps[int(np.argmin(until))] and det.fired_at - det.step >= 40
