"""The classical baselines restore, keep dipkit's tensor conventions, and fail clearly."""

import sys

import numpy as np
import pytest
import torch

import dipkit
from dipkit import baselines
from dipkit.degradations import GaussianNoise, Inpainting, JPEG, bernoulli_mask, block_mask
from dipkit.errors import DipkitError, ShapeError
from dipkit.metrics import psnr

SIGMA = 25 / 255
CLASSICAL = ("tv", "nlm", "wavelet")


@pytest.fixture(scope="module", params=["rgb", "gray"])
def pair(request):
    """(clean, noisy) coffee at 64², σ = 25/255, in colour and gray."""
    clean = dipkit.images.sample("coffee", size=64, mode=request.param)
    return clean, GaussianNoise(SIGMA).observe(clean, seed=0)


@pytest.mark.parametrize("method", CLASSICAL)
def test_each_denoiser_beats_the_noisy_input(pair, method):
    clean, noisy = pair
    out = baselines.denoise(method, noisy, sigma=SIGMA)
    gain = float(psnr(out, clean)[0] - psnr(noisy, clean)[0])
    assert gain > 2.0, f"{method} gained only {gain:.2f} dB"
    assert out.shape == noisy.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, noisy)


@pytest.mark.parametrize("method", CLASSICAL)
def test_a_stronger_sigma_smooths_more(method):
    clean = dipkit.images.sample("camera", size=64)
    noisy = GaussianNoise(SIGMA).observe(clean, seed=0)
    weak, strong = (baselines.denoise(method, noisy, sigma=s) for s in (SIGMA / 4, 2 * SIGMA))
    # distance from the input grows with the strength
    assert float((strong - noisy).square().mean()) > float((weak - noisy).square().mean())


def test_shapes_batches_and_three_dimensional_input():
    clean = dipkit.images.sample("astronaut", size=32)
    noisy = torch.cat([GaussianNoise(SIGMA).observe(clean, seed=s) for s in (0, 1)])
    both = baselines.denoise("tv", noisy, sigma=[SIGMA, 2 * SIGMA])
    assert both.shape == (2, 3, 32, 32)
    assert torch.allclose(both[1:], baselines.denoise("tv", noisy[1:], sigma=2 * SIGMA))
    single = baselines.denoise("tv", noisy[0], sigma=SIGMA)
    assert single.shape == (3, 32, 32)
    assert torch.allclose(single, both[0])


def test_sigma_none_estimates_it():
    clean = dipkit.images.sample("camera", size=64)
    noisy = GaussianNoise(SIGMA).observe(clean, seed=0)
    estimated = baselines.estimate_noise(noisy)
    assert estimated.shape == (1,) and abs(float(estimated[0]) - SIGMA) < 0.2 * SIGMA
    assert torch.equal(baselines.denoise("nlm", noisy), baselines.denoise("nlm", noisy, sigma=estimated))


def test_estimate_noise_of_a_flat_image():
    flat = torch.full((1, 1, 128, 128), 0.5)
    for s in (10, 25):
        y = GaussianNoise(s / 255).observe(flat, seed=0)
        assert abs(255 * float(baselines.estimate_noise(y)[0]) - s) < 1.5


def test_options_reach_scikit_image():
    clean = dipkit.images.sample("camera", size=32)
    noisy = GaussianNoise(SIGMA).observe(clean, seed=0)
    default = baselines.denoise("tv", noisy, sigma=SIGMA)
    heavy = baselines.denoise("tv", noisy, sigma=SIGMA, weight=1.0)
    assert float(heavy.std()) < float(default.std())


def test_bad_method_names_the_choices():
    noisy = torch.rand(1, 1, 16, 16)
    with pytest.raises(DipkitError, match="unknown denoising method 'median'.*'tv'.*'bm3d'"):
        baselines.denoise("median", noisy, sigma=SIGMA)


@pytest.mark.parametrize("sigma, message", [(-0.1, "non-negative"), (25, "0..255"), ("a", "non-negative"),
                                            ([0.1, 0.1], "one per image")])
def test_bad_sigma(sigma, message):
    with pytest.raises(DipkitError, match=message):
        baselines.denoise("tv", torch.rand(1, 1, 16, 16), sigma=sigma)


def test_bad_images():
    with pytest.raises(ShapeError, match="1 \\(gray\\) or 3 \\(RGB\\)"):
        baselines.denoise("tv", torch.rand(1, 4, 16, 16), sigma=SIGMA)
    with pytest.raises(DipkitError, match="\\[0, 1\\]"):
        baselines.denoise("tv", 2 * torch.ones(1, 1, 16, 16), sigma=SIGMA)
    with pytest.raises(DipkitError, match="torch tensor"):
        baselines.denoise("tv", np.zeros((16, 16)), sigma=SIGMA)


def test_bm3d_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` raise ImportError
    assert not baselines.bm3d_available()
    with pytest.raises(DipkitError, match=r"pip install dipkit\[bm3d\]"):
        baselines.denoise("bm3d", torch.rand(1, 1, 16, 16), sigma=SIGMA)


@pytest.mark.skipif(not baselines.bm3d_available(), reason="the optional bm3d package is not installed")
@pytest.mark.parametrize("mode", ["gray", "rgb"])
def test_bm3d_when_installed(mode):
    clean = dipkit.images.sample("coffee", size=64, mode=mode)
    noisy = GaussianNoise(SIGMA).observe(clean, seed=0)
    out = baselines.denoise("bm3d", noisy, sigma=SIGMA)
    assert out.shape == noisy.shape and out.dtype == torch.float32
    assert float(psnr(out, clean)[0] - psnr(noisy, clean)[0]) > 3.0


def test_missing_pywavelets_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pywt", None)
    with pytest.raises(DipkitError, match="pip install PyWavelets"):
        baselines.denoise("wavelet", torch.rand(1, 1, 16, 16), sigma=SIGMA)
    with pytest.raises(DipkitError, match="pip install PyWavelets"):
        baselines.estimate_noise(torch.rand(1, 1, 16, 16))


def test_tune_returns_the_best_strength():
    clean = dipkit.images.sample("camera", size=64)
    y = JPEG(10).observe(clean)
    sigmas = [0.0, 0.02, 0.05, 0.2]
    out, best, value = baselines.tune("tv", y, clean, sigmas)
    scores = [float(psnr(baselines.denoise("tv", y, sigma=s), clean)[0]) for s in sigmas]
    assert best == sigmas[int(np.argmax(scores))] and value == pytest.approx(max(scores))
    assert torch.equal(out, baselines.denoise("tv", y, sigma=best))
    assert best not in (0.0, 0.2)  # neither no smoothing nor the heaviest wins on JPEG at q 10
    with pytest.raises(ShapeError):
        baselines.tune("tv", y, clean[..., :32], sigmas)
    with pytest.raises(DipkitError, match="at least one"):
        baselines.tune("tv", y, clean, [])


@pytest.mark.parametrize("mode", ["gray", "rgb"])
def test_biharmonic_fills_the_holes(mode):
    clean = dipkit.images.sample("astronaut", size=64, mode=mode)
    for mask in (bernoulli_mask(64, 64), block_mask(64, 64, block=16)):
        y = Inpainting(mask).observe(clean)
        out = baselines.inpaint_biharmonic(y, mask)
        assert out.shape == y.shape and out.dtype == torch.float32
        known = mask.expand_as(out)
        assert torch.equal(out[known], clean[known])                  # known pixels kept exactly
        assert float(psnr(out, clean)[0]) > float(psnr(y, clean)[0]) + 3
    numpy_mask = bernoulli_mask(64, 64)[0, 0].numpy()
    y = Inpainting(numpy_mask).observe(clean)
    assert torch.equal(baselines.inpaint_biharmonic(y, numpy_mask),
                       baselines.inpaint_biharmonic(y, torch.from_numpy(numpy_mask)))


def test_biharmonic_errors():
    y = torch.rand(1, 1, 32, 32)
    with pytest.raises(ShapeError, match="32x32"):
        baselines.inpaint_biharmonic(y, bernoulli_mask(16, 16))
    with pytest.raises(DipkitError, match="no known pixel"):
        baselines.inpaint_biharmonic(y, torch.zeros(32, 32, dtype=torch.bool))
