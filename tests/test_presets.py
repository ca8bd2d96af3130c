"""Profiles and task presets."""

import pytest

import dipkit
from dipkit.errors import DipkitError
from dipkit.presets import ORIGINAL_DIP, PAPER, get_profile


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("DIPKIT_PROFILE", "full")
    assert get_profile().name == "full"
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    assert get_profile().name == "quick"
    monkeypatch.setenv("DIPKIT_PROFILE", "huge")
    with pytest.raises(DipkitError, match="unknown profile"):
        get_profile()
    monkeypatch.delenv("DIPKIT_PROFILE")
    assert get_profile().name in ("quick", "full")


def test_paper_settings():
    assert [PAPER[t].lipschitz for t in ("denoise", "deblock", "inpaint", "enhance")] == [1.4, 1.4, 1.6, 1.0]
    assert all(PAPER[t].lr == 1e-3 for t in PAPER)
    full = get_profile("full")
    model = PAPER["denoise"].model(3, full)
    assert model.n_parameters() == 1_662_339 and model.config["lipschitz"] == 1.4
    kw = PAPER["denoise"].fit_kwargs(full)
    assert kw["steps"] == 10000 and kw["backtrack"] and kw["stop"] == "paper"


def test_original_dip_settings():
    dip = ORIGINAL_DIP["denoise"]
    model = dip.model(3, get_profile("full"))
    assert model.n_parameters() == 2_217_831
    kw = dip.fit_kwargs(get_profile("full"))
    assert kw["lr"] == 0.01 and kw["steps"] == 3000 and kw["ema"] == 0.99
    assert kw["input_noise"] == pytest.approx(1 / 30)


def test_quick_profile_caps_steps():
    quick = get_profile("quick")
    assert PAPER["denoise"].fit_kwargs(quick)["steps"] == quick.steps
    assert PAPER["enhance"].fit_kwargs(quick)["steps"] == 100
    assert PAPER["denoise"].fit_kwargs(quick, steps=7)["steps"] == 7
