"""dipkit.noiselevel: the σ of an observation's error for the discrepancy principle.

The JPEG estimate is checked against the true RMS error ‖y − x‖/√n on real images (the
paper's classic5 set, gray, and scikit-image's samples, gray and RGB) at the paper's qualities.

Tolerance: σ must be within a factor √2 of the truth, i.e. σ² (what the discrepancy rule
compares the residual with) within a factor 2. The rule stops at residual ≤ τσ² and the safety
factor τ is itself chosen by hand in [1, 2] (Morozov: "slightly above 1"), so an error of σ² up to
a factor 2 is no larger than the freedom the rule already leaves; beyond it the estimate would
decide the stop more than τ does. On the study behind this module (31 gray images × q = 10, 20,
30; 14 RGB images × the same) the ratios were 0.83–1.40 (gray) and 0.80–1.12 (RGB); the
naive models fall outside the band (the last test), so the band can fail.
"""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import integrate

from conftest import load_image, to_batch
from dipkit import noiselevel
from dipkit.degradations import (JPEG, Degradation, GaussianNoise, HeldOut, Identity, Inpainting,
                                 bernoulli_mask)
from dipkit.errors import DipkitError, ShapeError
from dipkit.images import sample
from dipkit.noiselevel import (jpeg_error_sigma, jpeg_quant_tables, laplace_bin_moment,
                               laplace_zero_bin_moment, noise_sigma)
from dipkit.stopping import Discrepancy

TOL = math.sqrt(2)          # σ within ×√2 of the truth: σ² within ×2 (module docstring)
CLASSIC5 = ("baboon", "barbara", "boats", "lena", "peppers")
QUALITIES = (10, 20, 30)


def true_sigma(y, x):
    return float(((y.double() - x.double()) ** 2).mean().sqrt())


def _check(x, quality, model="mixture"):
    y = JPEG(quality).observe(x)
    est, true = float(jpeg_error_sigma(y, quality, model=model)[0]), true_sigma(y, x)
    return est / true, est, true


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

_ZIGZAG = sorted(((u, v) for u in range(8) for v in range(8)),
                 key=lambda p: (p[0] + p[1], p[1] if (p[0] + p[1]) % 2 else p[0]))


def _pillow_tables(quality, mode):
    rng = np.random.default_rng(0)
    a = (rng.random((32, 32) if mode == "L" else (32, 32, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, format="JPEG", quality=quality, optimize=True, progressive=True)
    buf.seek(0)
    return Image.open(buf).quantization


@pytest.mark.parametrize("quality", [1, 5, 10, 20, 30, 49, 50, 51, 75, 90, 99, 100])
def test_tables_are_the_ones_pillow_writes(quality):
    lum, chrom = jpeg_quant_tables(quality)
    gray, rgb = _pillow_tables(quality, "L"), _pillow_tables(quality, "RGB")
    assert set(gray) == {0} and set(rgb) == {0, 1}
    # Pillow returns the tables in natural (row-major) order ...
    assert np.array_equal(np.array(gray[0]).reshape(8, 8), lum)
    assert np.array_equal(np.array(rgb[0]).reshape(8, 8), lum)
    assert np.array_equal(np.array(rgb[1]).reshape(8, 8), chrom)
    # ... and reading them as zigzag order would give another table (the check tells them apart)
    if np.unique(lum).size > 1:       # (not at the extremes, where every entry is 255 or 1)
        zig = np.zeros((8, 8), dtype=np.int64)
        for i, (u, v) in enumerate(_ZIGZAG):
            zig[u, v] = rgb[0][i]
        assert not np.array_equal(zig, lum)


def test_tables_reject_bad_qualities():
    for bad in (0, 101, 10.0, True, "10"):
        with pytest.raises(DipkitError, match="quality"):
            jpeg_quant_tables(bad)


# ---------------------------------------------------------------------------------------------
# Laplacian moments
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [(0.5, 1.0), (40.0, 3.0), (40.0, 400.0), (127.5, 2.0), (1.0, 1e-2),
                                  (5.0, 5.0), (1e-3, 1.0)])
def test_zero_bin_moment_matches_numerical_integration(a, b):
    num = integrate.quad(lambda c: c * c * math.exp(-c / b), 0, a, epsabs=0, epsrel=1e-12)[0]
    den = integrate.quad(lambda c: math.exp(-c / b), 0, a, epsabs=0, epsrel=1e-12)[0]
    assert laplace_zero_bin_moment(a, b) == pytest.approx(num / den, rel=1e-8)


@pytest.mark.parametrize("a, b", [(0.5, 1.0), (40.0, 3.0), (40.0, 400.0), (127.5, 2.0), (1.0, 0.05),
                                  (5.0, 5.0), (1e-3, 1.0)])
def test_bin_moment_matches_numerical_integration(a, b):
    num = integrate.quad(lambda u: u * u * math.exp(-u / b), -a, a, epsabs=0, epsrel=1e-12)[0]
    den = integrate.quad(lambda u: math.exp(-u / b), -a, a, epsabs=0, epsrel=1e-12)[0]
    assert laplace_bin_moment(a, b) == pytest.approx(num / den, rel=1e-7)


def test_moments_limits_and_broadcasting():
    assert laplace_zero_bin_moment(3.0, 1e9) == pytest.approx(3.0 ** 2 / 3)      # flat: Q²/12
    assert laplace_zero_bin_moment(1e9, 3.0) == pytest.approx(2 * 3.0 ** 2)      # whole: 2b²
    assert laplace_bin_moment(3.0, 1e9) == pytest.approx(3.0 ** 2 / 3)
    assert laplace_bin_moment(3.0, 1e-3) == pytest.approx(3.0 ** 2, rel=1e-3)    # inner edge
    out = laplace_zero_bin_moment(np.array([[1.0], [2.0]]), np.array([1.0, 2.0, 3.0]))
    assert out.shape == (2, 3) and np.all(np.diff(out, axis=1) > 0)


# ---------------------------------------------------------------------------------------------
# The levels read from the observation
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quality", [10, 30])
def test_levels_read_from_the_decoded_image_match_the_encoders(quality):
    x = sample("camera", size=256)
    y = JPEG(quality).observe(x)
    steps = jpeg_quant_tables(quality)[0].ravel()
    x8 = np.rint(x[0, 0].double().numpy() * 255)
    y8 = np.rint(y[0, 0].double().numpy() * 255)
    true = (np.abs(np.rint(noiselevel._block_dct(x8) / steps)) >= 1).sum(axis=0)
    read = (np.abs(np.rint(noiselevel._block_dct(y8) / steps)) >= 1).sum(axis=0)
    # per-frequency survivor counts agree to 1 % of all survivors (seen: <= 0.4 %)
    assert np.abs(true - read).sum() <= 0.01 * true.sum()


# ---------------------------------------------------------------------------------------------
# σ of JPEG against the truth
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("name", CLASSIC5)
def test_sigma_on_classic5_is_within_tolerance(shared_data, name, quality):
    x = to_batch(load_image(shared_data / "classic5" / f"{name}.png"))
    ratio, est, true = _check(x, quality)
    assert 1 / TOL <= ratio <= TOL, f"{name} q{quality}: σ·255 {255 * est:.2f}, true {255 * true:.2f}"
    bound, _, _ = _check(x, quality, model="laplace")
    assert bound >= 1 and bound >= ratio      # one Laplacian per frequency: an upper bound


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("name", ["astronaut", "camera", "coffee", "chelsea"])
def test_sigma_on_gray_samples_is_within_tolerance(name, quality):
    ratio, est, true = _check(sample(name, size=256, mode="gray"), quality)
    assert 1 / TOL <= ratio <= TOL, f"{name} q{quality}: σ·255 {255 * est:.2f}, true {255 * true:.2f}"


@pytest.mark.parametrize("quality", [10, 30])
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"])
def test_sigma_on_rgb_samples_is_within_tolerance(name, quality):
    ratio, est, true = _check(sample(name, size=256), quality)
    assert 1 / TOL <= ratio <= TOL, f"{name} q{quality}: σ·255 {255 * est:.2f}, true {255 * true:.2f}"


@pytest.mark.parametrize("quality", [10, 30])
@pytest.mark.parametrize("name", ["image_Baboon512rgb", "kodim02"])
def test_sigma_on_hard_rgb_images_is_within_tolerance(shared_data, name, quality):
    # the study's lowest (Baboon: fine colour detail lost to the subsampling) and highest (kodim02)
    x = to_batch(load_image(shared_data / "set9" / f"{name}.png"))
    ratio, est, true = _check(x, quality)
    assert 1 / TOL <= ratio <= TOL, f"{name} q{quality}: σ·255 {255 * est:.2f}, true {255 * true:.2f}"


def test_gray_content_saved_as_rgb_adds_no_chroma_error():
    gray = sample("camera", size=128)
    x = gray.expand(1, 3, 128, 128).contiguous()
    ratio, _, _ = _check(x, 20)
    assert 1 / TOL <= ratio <= TOL


@pytest.mark.parametrize("quality", [10, 30])
def test_the_tolerance_rejects_the_naive_models(shared_data, quality):
    """The band can fail: the uniform model (every coefficient's error uniform on ±Q/2) is
    outside it on every image, one Laplacian per frequency on most."""
    uniform = math.sqrt((jpeg_quant_tables(quality)[0].astype(float) ** 2 / 12).mean()) / 255
    outside_laplace = 0
    for name in CLASSIC5:
        x = to_batch(load_image(shared_data / "classic5" / f"{name}.png"))
        y = JPEG(quality).observe(x)
        true = true_sigma(y, x)
        assert uniform / true > TOL
        outside_laplace += float(jpeg_error_sigma(y, quality, model="laplace")[0]) / true > TOL
    assert outside_laplace > len(CLASSIC5) / 2


# ---------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------

def test_shapes_batches_and_tables():
    x = torch.cat([sample("camera", size=64), sample("coffee", size=64, mode="gray")])
    y = JPEG(20).observe(x)
    both = jpeg_error_sigma(y, 20)
    assert both.shape == (2,) and both.dtype == torch.float32 and both.device.type == "cpu"
    assert torch.allclose(both[1:], jpeg_error_sigma(y[1], 20))          # (C, H, W) input
    assert torch.allclose(both, jpeg_error_sigma(y, tables=jpeg_quant_tables(20)))
    # the partial edge blocks are left out: a 68×70 image reads the blocks of its 64×64 corner
    z = JPEG(20).observe(sample("camera", size=(68, 70)))
    assert torch.equal(jpeg_error_sigma(z, 20), jpeg_error_sigma(z[..., :64, :64], 20))


def test_bad_inputs():
    y = JPEG(10).observe(sample("camera", size=32))
    with pytest.raises(DipkitError, match="quality"):
        jpeg_error_sigma(y)
    with pytest.raises(DipkitError, match="one of them"):
        jpeg_error_sigma(y, 10, tables=jpeg_quant_tables(10))
    with pytest.raises(DipkitError, match="quality"):
        jpeg_error_sigma(y, 0)
    with pytest.raises(DipkitError, match="model"):
        jpeg_error_sigma(y, 10, model="uniform")
    with pytest.raises(DipkitError, match="64 quantisation"):
        jpeg_error_sigma(y, tables=([1] * 10, [1] * 64))
    with pytest.raises(ShapeError, match="channels"):
        jpeg_error_sigma(torch.zeros(1, 2, 32, 32), 10)
    with pytest.raises(ShapeError, match="complete 8x8"):
        jpeg_error_sigma(torch.zeros(1, 1, 7, 32), 10)
    with pytest.raises(ShapeError, match="complete 16x16"):
        jpeg_error_sigma(torch.zeros(1, 3, 12, 32), 10)


# ---------------------------------------------------------------------------------------------
# noise_sigma
# ---------------------------------------------------------------------------------------------

def test_noise_sigma_gaussian_known_and_estimated():
    flat = torch.full((1, 1, 64, 64), 0.5)
    noise = GaussianNoise(25 / 255)
    y = noise.observe(flat, seed=0)
    assert noise_sigma(noise, y) == 25 / 255
    assert noise_sigma(HeldOut(noise), y) == 25 / 255
    est = noise_sigma(GaussianNoise(5 / 255), y, estimate=True)      # the given sigma is ignored
    assert est == pytest.approx(25 / 255, rel=0.1)
    Discrepancy(est)                                                   # a float the rule accepts
    with pytest.raises(DipkitError, match="0"):
        noise_sigma(GaussianNoise(0.0), y)


def test_noise_sigma_jpeg_pools_the_batch():
    x = torch.cat([sample("camera", size=64), sample("coffee", size=64, mode="gray")])
    jpeg = JPEG(10)
    y = jpeg.observe(x)
    each = jpeg_error_sigma(y, 10).double()
    sigma = noise_sigma(jpeg, y)
    assert isinstance(sigma, float) and sigma == pytest.approx(float(each.pow(2).mean().sqrt()))
    assert noise_sigma(HeldOut(jpeg), y) == sigma
    Discrepancy(sigma)


@pytest.mark.parametrize("wrap", [False, True])
def test_noise_sigma_refuses_inpainting(wrap):
    hole = Inpainting(bernoulli_mask(32, 32))
    y = hole.observe(sample("camera", size=32))
    with pytest.raises(DipkitError, match="needs noise") as err:
        noise_sigma(HeldOut(hole) if wrap else hole, y)
    assert "HeldOutRule" in str(err.value) and "HeldOut(" in str(err.value)


def test_noise_sigma_refuses_unknown_degradations():
    y = sample("camera", size=32)
    with pytest.raises(DipkitError, match="needs noise"):
        noise_sigma(Identity(), y)

    class Blur(Degradation):
        name = "blur"

    with pytest.raises(DipkitError, match="no noise model for Blur"):
        noise_sigma(Blur(), y)
    with pytest.raises(DipkitError, match="must be a dipkit Degradation"):
        noise_sigma("jpeg", y)
