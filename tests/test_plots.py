"""The figures draw what they say, with labelled axes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import dipkit  # noqa: E402
from dipkit import plots  # noqa: E402
from dipkit.degradations import GaussianNoise  # noqa: E402
from dipkit.stopping import Patience  # noqa: E402


def test_curves_are_labelled_and_marked(tiny_run):
    run, clean, noisy = tiny_run
    fig, axes = plt.subplots(1, 3)
    plots.psnr_curve(run, ax=axes[0], baseline=20.0)
    plots.band_curves(run, ax=axes[1])
    plots.ratio_curve(run, ax=axes[2])
    assert axes[0].get_ylabel() == "PSNR vs clean (dB)"
    assert axes[1].get_ylabel().startswith("FBC") and len(axes[1].get_lines()) == 5 + 1  # 5 bands + peak
    assert all(ax.get_xlabel() == "optimizer step" for ax in axes)
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert any("oracle peak" in t for t in labels) and any("observation" in t for t in labels)
    plt.close(fig)


def test_image_grid_titles_carry_psnr(tiny_run):
    run, clean, noisy = tiny_run
    fig = plots.image_grid({"noisy": noisy, "DIP": run.final}, clean=clean, zoom=(0, 0, 48, 48))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("noisy\n") and titles[0].endswith("dB")
    plt.close(fig)


def test_spectrum_ratio_maps(tiny_run):
    run, clean, noisy = tiny_run
    fig = plots.spectrum_ratio_maps({f"step {s}": o for s, o in run.snapshots.items()}, noisy)
    assert len(fig.axes) == len(run.snapshots) + 1  # + colour bar
    plt.close(fig)


def test_spectral_norm_curves_draw_every_layer_and_the_bound():
    from dipkit.recorders import SpectralNormRecorder

    clean = dipkit.images.sample("astronaut", size=32)
    noisy = GaussianNoise(25 / 255).observe(clean, seed=0)
    model = dipkit.decoder(channels=8, depth=3, lipschitz=1.0)
    rec = SpectralNormRecorder(model)
    dipkit.fit(model, noisy, steps=20, probe_every=10, callbacks=[rec], progress=False)
    ax = plots.spectral_norm_curves(rec, lipschitz=1.0, title="λ = 1")
    n_layers = len(model.lipschitz_layers())
    assert len(ax.get_lines()) == 2 * n_layers + 1  # effective, raw, the bound
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel().startswith("spectral norm")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "λ = 1" in labels and any("raw" in t for t in labels)
    plt.close(ax.figure)


def test_mark_detections_draws_each_fired_rule():
    clean = dipkit.images.sample("astronaut", size=32)
    noisy = GaussianNoise(25 / 255).observe(clean, seed=0)
    run = dipkit.fit(dipkit.decoder(channels=8, depth=3), noisy, steps=30, probe_every=5, clean=clean,
                     monitor={"early": Patience("loss", mode="max", patience=5),   # in steps: one probe
                              "never": Patience("loss", patience=500)}, progress=False)
    assert run.detections["early"].step is not None and run.detections["never"].step is None
    ax = plots.psnr_curve(run)
    plots.mark_detections(ax, run)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"early (step {run.detections['early'].step})" in labels
    assert not any(t.startswith("never") for t in labels)
    plt.close(ax.figure)


def test_image_grid_ssim_and_box(tiny_run):
    run, clean, noisy = tiny_run
    fig = plots.image_grid({"noisy": noisy, "DIP": run.final}, clean=clean, ssim=True, box=(8, 4, 16, 24))
    title = fig.axes[0].get_title()
    expected = float(dipkit.metrics.ssim(noisy, clean)[0])
    assert title.endswith(f"SSIM {expected:.3f}") and "dB" in title
    rects = [p for p in fig.axes[1].patches if isinstance(p, matplotlib.patches.Rectangle)]
    assert len(rects) == 1 and rects[0].get_xy() == (3.5, 7.5)
    assert (rects[0].get_width(), rects[0].get_height()) == (24, 16)
    plt.close(fig)
    with pytest.raises(ValueError, match="clean"):
        plots.image_grid({"noisy": noisy}, ssim=True)


def test_log_spectra_show_a_block_grid_at_multiples_of_one_eighth():
    import numpy as np
    import torch

    x = torch.arange(64.0)
    blocks = (0.4 + 0.2 * (x % 8) / 8).expand(64, 64)[None, None].clone()  # a ramp in every 8-px block
    fig = plots.log_spectra({"blocks": blocks, "flat": torch.full((1, 3, 64, 64), 0.5)})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "horizontal frequency (cycles/pixel)"
    assert ax.get_ylabel() == "vertical frequency (cycles/pixel)"
    assert fig.axes[-1].get_ylabel().startswith("log10 |FFT|")  # the colour bar
    image = ax.get_images()[0]
    left, right, bottom, top = image.get_extent()
    assert left == pytest.approx(-0.5 - 0.5 / 64) and right == pytest.approx(0.5 - 0.5 / 64)
    a = np.asarray(image.get_array())
    row = a[32]  # zero vertical frequency; column 32 + k is k/64 cycles/pixel
    assert row[32 + 8] > row[32 + 4] + 3 and row[32 + 8] > row[32 + 12] + 3  # a peak at 1/8
    assert a[32 + 8, 32] < row[32 + 8] - 3  # none along the vertical axis: the ramps are horizontal
    plt.close(fig)


def test_categorical_lines_differ_in_colour_and_in_dash_pattern():
    styles = plots.categorical(7)
    assert len({s["color"] for s in styles}) == 7 and len({str(s["ls"]) for s in styles}) == 7
    assert plots.categorical(9)[8] == plots.categorical(1)[0] | {"color": plots.OKABE_ITO[0]}
    with pytest.raises(ValueError, match="non-negative integer"):
        plots.categorical(-1)


def test_a_zoom_narrower_than_48_pixels_is_refused():
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="at least 48×48"):
        plots.image_grid({"a": image}, zoom=(0, 0, 24, 24))
    plt.close(plots.image_grid({"a": image}, zoom=(0, 0, 48, 48)))


def test_a_crop_box_is_at_least_48_pixels_and_inside_the_image():
    assert plots.crop_box(64, 64, 0.11, 0.27, 0.375) == (7, 16, 48, 48)
    assert plots.crop_box(128, 192, 0.9, 0.9, 0.5) == (64, 128, 64, 64)   # moved inside
    assert plots.crop_box(40, 40, 0.0, 0.0, 0.5) == (0, 0, 40, 40)        # never beyond the image


def test_the_clean_image_in_a_grid_is_the_reference_not_inf_db():
    clean = torch.rand(1, 3, 48, 48)
    fig = plots.image_grid({"noisy": (clean + 0.1).clamp(0, 1), "clean": clean}, clean=clean, ssim=True)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "clean\n(the reference)" and "inf" not in " ".join(titles) and "dB, SSIM" in titles[0]
    plt.close(fig)
