"""The run explorer: a static figure where nothing is live, an ipywidgets slider when asked."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import dipkit  # noqa: E402
from dipkit import widgets  # noqa: E402
from dipkit.errors import DipkitError  # noqa: E402


def test_no_live_frontend_outside_a_kernel():
    assert widgets.live_frontend() is False


def test_static_figure_has_the_panels(tiny_run):
    run, clean, noisy = tiny_run
    assert sorted(run.snapshots) == [1, 10, 20]
    for static in (True, None):  # None: auto-detect, and pytest has no live front-end
        fig = widgets.explore_run(run, noisy, clean, static=static)
        assert isinstance(fig, matplotlib.figure.Figure)
        assert not plt.get_fignums()  # closed in pyplot: a notebook shows it once
        titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("output, step")]
        shown = {int(t.split()[2].rstrip("\n")) for t in titles}
        # the first snapshot after step 1, the middle and last ones, and the oracle peak
        assert shown == {10, 20, run.best_step}
        assert any("(oracle peak)" in t for t in titles) and all(t.endswith("dB") for t in titles)
        # per step an output and a ratio map, then the colour bar, the band and the PSNR curves
        assert len(fig.axes) == 2 * len(shown) + 3
        band_ax, psnr_ax = fig.axes[-2:]
        assert band_ax.get_ylabel().startswith("FBC") and psnr_ax.get_ylabel() == "PSNR vs clean (dB)"
        assert sum(line.get_label() == "shown step" for line in band_ax.get_lines()) == 1


def test_static_figure_with_chosen_steps(tiny_run):
    run, clean, noisy = tiny_run
    fig = widgets.explore_run(run, noisy, clean, static=True, steps=[1, 20])
    assert len(fig.axes) == 2 * 2 + 3
    with pytest.raises(DipkitError, match="snapshot steps"):
        widgets.explore_run(run, noisy, static=True, steps=[15])


def test_run_without_clean_shows_the_fit_to_the_observation(tiny_run):
    _, _, noisy = tiny_run
    run = dipkit.fit(dipkit.decoder(channels=8, depth=4), noisy, steps=5, snapshot_every=5, probes=("bands",),
                     progress=False)
    fig = widgets.explore_run(run, noisy, static=True)
    assert fig.axes[-1].get_ylabel() == "PSNR vs observation (dB)"
    assert not any(ax.get_title().endswith("dB") for ax in fig.axes)


def test_run_without_snapshots_is_refused(tiny_run):
    _, _, noisy = tiny_run
    run = dipkit.fit(dipkit.decoder(channels=8, depth=4), noisy, steps=5, probes=("bands",), progress=False)
    with pytest.raises(DipkitError, match="snapshot_every"):
        widgets.explore_run(run, noisy, static=True)


def test_widget_when_forced(tiny_run):
    ipywidgets = pytest.importorskip("ipywidgets")
    run, clean, noisy = tiny_run
    box = widgets.explore_run(run, noisy, clean, static=False)
    assert isinstance(box, ipywidgets.VBox)
    slider, out = box.children
    assert isinstance(slider, ipywidgets.SelectionSlider) and isinstance(out, ipywidgets.Output)
    assert list(slider.options) == sorted(set(run.snapshots) | {run.best_step})
    assert slider.value == run.best_step
    slider.value = 20  # scrubbing redraws without error and leaves no figure open
    assert not plt.get_fignums()
