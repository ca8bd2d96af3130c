"""The stopping study: rules judged on the same stored fits, and rules evaluated from the history."""

import numpy as np
import pytest

import dipkit.experiments as ex
from dipkit.errors import DipkitError
from dipkit.experiments import stopstudy
from dipkit.experiments.record import Record

SIGMA = 0.1


def _record(detections=None):
    steps = np.arange(10, 210, 10)
    # a residual that falls as 0.03 / k: it crosses σ² = 0.01 first at k = 3, step 30
    loss = 0.03 / np.arange(1, 21)
    psnr = 20 + np.minimum(steps, 100) / 10 - np.maximum(steps - 100, 0) / 50   # peak 30 dB at 100
    return Record({"history": {"step": steps.tolist(), "loss": loss.tolist(), "psnr": psnr.tolist(),
                               "time": (steps / 100).tolist()},
                   "detections": detections or {}, "psnr_best": 30.0, "psnr_final": float(psnr[-1]),
                   "steps_run": 200, "seconds": 2.0, "settings": {"image": "x", "seed": 0}})


def test_the_discrepancy_fires_where_the_residual_crosses_tau_sigma_squared():
    d = stopstudy.discrepancy_detection(_record(), SIGMA)
    assert d["fired_at"] == 30 and d["psnr"] == pytest.approx(23.0)
    assert stopstudy.discrepancy_detection(_record(), SIGMA, tau=1.5)["fired_at"] == 20   # 0.015 ≥ 0.015
    assert stopstudy.discrepancy_detection(_record(), SIGMA, known=0.5)["fired_at"] == 60  # residual doubled
    assert stopstudy.discrepancy_detection(_record(), 0.01)["fired_at"] is None           # never that low
    with pytest.raises(DipkitError, match="sigma > 0"):
        stopstudy.discrepancy_detection(_record(), 0.0)


def test_the_earliest_of_two_rules_and_what_a_rule_that_never_fired_returns():
    rec = _record({"a": {"fired_at": 150, "step": 100, "psnr": 30.0},
                   "b": {"fired_at": None, "step": None, "psnr": None}})
    extra = {"d": stopstudy.discrepancy_detection(rec, SIGMA)}
    assert stopstudy.earliest(rec, ["a", "d"], extra)["fired_at"] == 30
    assert stopstudy.earliest(rec, ["b"])["fired_at"] is None
    rows = stopstudy.outcomes([rec], ["a", "b", "d"], extra=lambda r: {"d": stopstudy.discrepancy_detection(r, SIGMA)})
    a, b, d = rows
    assert a["gap"] == 0 and a["saved"] == 50 and a["seconds"] == pytest.approx(2.0 * 150 / 200)
    assert not b["fired"] and b["psnr"] == rec.psnr_final and b["saved"] == 0 and b["seconds"] == 2.0
    assert d["gap"] == pytest.approx(7.0) and d["step"] == 30
    s = stopstudy.summarize(rows)
    assert s["a"]["within_0.5"] == 1.0 and s["b"]["fired"] == 0.0 and s["d"]["worst"] == pytest.approx(7.0)
    assert "| paper's ratio rule |" not in stopstudy.markdown(s) and "| a | 0.00 |" in stopstudy.markdown(s)


def test_the_discrepancy_from_the_history_is_the_live_monitor_s():
    # A ladder of noise levels watching one short fit: where each live monitor fired (or that it
    # did not) must be what the stored history gives. Which rungs a 100-step fit crosses depends on
    # the machine (its trajectory moves with the kernels and the thread count: σ = 0.15 was crossed
    # with one thread and not with two); the top rung, σ² = 0.25, lies far above the loss at the
    # first probe (about 0.08: the image's variance around a smooth first output), so it fires on any.
    import dipkit
    from dipkit.degradations import GaussianNoise
    from dipkit.stopping import Discrepancy
    clean = dipkit.images.sample("astronaut", size=64)
    y = GaussianNoise(25 / 255).observe(clean, seed=0)
    ladder = {f"d{sigma}": sigma for sigma in (0.1, 0.15, 0.2, 0.25, 0.3, 0.5)}
    run = dipkit.fit(dipkit.decoder(channels=16, depth=5, seed=0), y, clean=clean, steps=100, lr=0.01,
                     probe_every=10, monitor={name: Discrepancy(sigma=sigma) for name, sigma in ladder.items()},
                     progress=False)
    rec = Record(ex.make_record(run, clean, keep_images=False))
    assert rec.detection("d0.5")["fired_at"] is not None
    for name, sigma in ladder.items():
        live, after = rec.detection(name), stopstudy.discrepancy_detection(rec, sigma)
        assert after["fired_at"] == live["fired_at"], name
        if live["fired_at"] is not None:
            assert after["psnr"] == pytest.approx(live["psnr"], abs=1e-3), name
