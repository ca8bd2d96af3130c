"""Stopping rules: the paper's ratio rule, ES-WMV, patience, the discrepancy principle, held-out pixels."""

import math

import numpy as np
import pytest
import torch

from dipkit.errors import DipkitError
from dipkit.stopping import ESWMV, Discrepancy, HeldOutRule, Patience, RatioRule, make_rule

DUMMY = torch.zeros(1, 1, 2, 2)


def _feed(rule, values, probe_every=1):
    for i, v in enumerate(values):
        step = (i + 1) * probe_every
        if rule.update(step, DUMMY, {"ratio": torch.tensor(v)}):
            return step
    return None


def test_ratio_rule_fires_on_a_plateau():
    # a decaying ratio that flattens out: 2 + 3 exp(-t / 150)
    t = np.arange(1, 3001)
    values = 2 + 3 * np.exp(-t / 150)
    step = _feed(RatioRule(n=100, eps=0.01), values)
    assert step is not None
    # the difference of window means is about 3 e^{-t/150} (e^{100/150} - 1) · ... < 0.01 near t ≈ 900
    assert 700 < step < 1100


def test_ratio_rule_does_not_fire_on_a_trend():
    values = np.linspace(3.0, 1.0, 3000)  # slope 2/3000 per step: window means differ by ~0.067
    assert _feed(RatioRule(n=100, eps=0.01), values) is None


def test_ratio_rule_waits_for_two_windows():
    rule = RatioRule(n=100, eps=0.01)
    assert _feed(rule, np.ones(200)) is None  # t must exceed 2n
    assert rule.update(201, DUMMY, {"ratio": torch.tensor(1.0)})
    assert rule.stopped_at == rule.selected_step == 201


def test_ratio_rule_with_sparse_probes_matches_dense_on_a_plateau():
    t = np.arange(1, 3001)
    values = 2 + 3 * np.exp(-t / 150)
    dense = _feed(RatioRule(n=100, eps=0.01), values)
    sparse = _feed(RatioRule(n=100, eps=0.01, probe_every=10), values[9::10], probe_every=10)
    assert abs(dense - sparse) <= 20


def test_ratio_rule_window_lengths():
    # faithful: the newer window drops its oldest reading (n and n−1 readings)
    rule = RatioRule(n=4, eps=0.5)
    # at t = 9 with n = 4 the older window is t 2..5; the newer one t 6..9 (tidy) or t 7..9
    # (faithful). A spike at t = 6 is seen by the tidy rule only.
    values = [0, 0, 0, 0, 0, 10, 0, 0, 0]
    fired = _feed(rule, values)
    tidy = _feed(RatioRule(n=4, eps=0.5, faithful=False), values)
    assert fired == 9 and tidy is None


def test_ratio_rule_needs_a_multiple_of_probe_every():
    with pytest.raises(DipkitError, match="multiple"):
        RatioRule(n=100, probe_every=30)


def _naive_window_variance(outputs, w):
    window = torch.stack(outputs[-w:]).double()
    mean = window.mean(0)
    return float(((window - mean) ** 2).mean(dim=tuple(range(1, window.ndim))).mean())


def test_eswmv_variance_equals_naive_sliding_window():
    g = torch.Generator().manual_seed(0)
    rule = ESWMV(window=5, patience=1000)
    outputs = []
    for i in range(23):
        x = torch.rand(1, 3, 6, 7, generator=g) * (1 + i / 10)
        outputs.append(x)
        var = rule.push(x)
        if i < 4:
            assert var is None
        else:
            assert math.isclose(float(var), _naive_window_variance(outputs, 5), rel_tol=1e-9, abs_tol=1e-12)


def test_eswmv_stops_after_patience_and_selects_the_minimum():
    rule = ESWMV(window=3, patience=4)
    # outputs whose spread shrinks then grows: the variance has one minimum
    scales = [5, 4, 3, 2, 1, 0.5, 0.25, 0.5, 1, 2, 3, 4, 5, 6]
    g = torch.Generator().manual_seed(1)
    stopped = None
    for i, s in enumerate(scales):
        x = torch.rand(1, 1, 4, 4, generator=g) * s
        if rule.update(i + 1, x, {}):
            stopped = i + 1
            break
    steps, variances = zip(*rule.variances)
    best = steps[int(np.argmin(variances))]
    assert rule.selected_step == best
    assert stopped == best + 4


def test_patience_rule():
    rule = Patience(key="loss", mode="min", patience=3)
    values = [5, 4, 3, 3.5, 3.2, 3.1]
    stops = [rule.update(i + 1, DUMMY, {"loss": torch.tensor(v)}) for i, v in enumerate(values)]
    assert stops == [False, False, False, False, False, True]
    assert rule.selected_step == 3
    with pytest.raises(DipkitError, match="psnr"):
        Patience(key="psnr").update(1, DUMMY, {"loss": torch.tensor(1.0)})


def test_make_rule():
    assert make_rule(None) is None and make_rule("none") is None
    assert isinstance(make_rule("paper", probe_every=10), RatioRule)
    assert isinstance(make_rule("eswmv"), ESWMV)
    with pytest.raises(DipkitError, match="unknown stopping rule"):
        make_rule("oracle")


def test_discrepancy_fires_where_the_residual_crosses_tau_sigma_squared():
    sigma, tau = 0.1, 1.05
    rule = Discrepancy(sigma, tau=tau)
    rule.bind(10)
    rule.reset()
    steps = np.arange(10, 3001, 10)
    residual = sigma ** 2 * (1.0 + 4.0 * np.exp(-steps / 300.0))   # falls towards σ² from above
    expected = int(steps[np.argmax(residual <= tau * sigma ** 2)])
    fired = None
    for step, r in zip(steps, residual):
        if rule.update(int(step), DUMMY, {"residual": torch.tensor(r)}):
            fired = step
            break
    assert fired == expected == rule.selected_step


def test_discrepancy_needs_noise():
    with pytest.raises(DipkitError, match="held-out rule"):
        Discrepancy(0.0)
    with pytest.raises(DipkitError, match="sigma"):
        make_rule("discrepancy")
    assert isinstance(make_rule("discrepancy", sigma=0.1), Discrepancy)


def test_held_out_rule_selects_the_minimum_after_its_patience():
    rule = HeldOutRule(patience=200)
    rule.bind(10)
    rule.reset()
    steps = np.arange(10, 2001, 10)
    error = (steps - 300.0) ** 2 / 1e5 + 0.01     # minimum at step 300
    fired = None
    for step, e in zip(steps, error):
        if rule.update(int(step), DUMMY, {"heldout": torch.tensor(e)}):
            fired = step
            break
    assert rule.selected_step == 300 and fired == 500
    with pytest.raises(DipkitError, match="HeldOut"):
        HeldOutRule().update(10, DUMMY, {"loss": torch.tensor(1.0)})
