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
    assert get_profile().name in ("quick", "gpu")


def test_a_gpu_gets_the_colab_safe_profile_and_is_told(monkeypatch, capsys):
    import dipkit.presets as presets
    monkeypatch.delenv("DIPKIT_PROFILE", raising=False)
    monkeypatch.setattr(presets.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(presets, "_told", set())
    first, again = get_profile(), get_profile()
    assert first.name == again.name == "gpu" and first.image_size < 512 and first.steps < 10000
    err = capsys.readouterr().err
    assert err.count("profile gpu (256² images, 128 channels, 3000 steps)") == 1   # told once
    assert "DIPKIT_PROFILE=full" in err
    monkeypatch.setenv("DIPKIT_PROFILE", "full")                                   # only when asked
    assert get_profile().name == "full" and capsys.readouterr().err == ""
    monkeypatch.setattr(presets.torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DIPKIT_PROFILE")
    assert get_profile().name == "quick"


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
