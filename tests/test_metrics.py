"""dipkit.metrics: PSNR and SSIM in the paper's conventions."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dipkit import images
from dipkit.degradations import GaussianNoise
from dipkit.errors import DipkitError, ShapeError
from dipkit.metrics import mse, psnr, ssim


def test_psnr_of_known_noise():
    sigma = 25 / 255
    x = torch.full((1, 3, 128, 128), 0.5)
    y = GaussianNoise(sigma).observe(x, seed=0)
    expected = 10 * math.log10(1 / sigma ** 2)                  # 20.17 dB
    assert abs(float(psnr(y, x)) - expected) < 0.1


def test_psnr_matches_skimage_and_formula():
    x = images.sample("astronaut", size=40)
    y = GaussianNoise(0.05).observe(x, seed=1)
    ref = peak_signal_noise_ratio(images.to_numpy(x), images.to_numpy(y), data_range=1.0)
    p = psnr(y, x)
    assert p.shape == (1,) and p.dtype == torch.float32
    assert abs(float(p) - ref) < 1e-3
    assert torch.allclose(psnr(y * 255, x * 255, data_range=255), p, atol=1e-3)
    assert torch.allclose(p, 10 * torch.log10(1 / mse(y, x)))


def test_psnr_batched_equals_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g)
    y = (x + 0.05 * torch.randn(4, 3, 16, 16, generator=g)).clamp(0, 1)
    batched = psnr(y, x)
    assert batched.shape == (4,)
    assert torch.allclose(batched, torch.cat([psnr(y[i:i + 1], x[i:i + 1]) for i in range(4)]))
    assert torch.allclose(psnr(y[0], x[0]), batched[:1])                    # (C, H, W) input


def test_psnr_identical_is_inf_and_float64():
    x = torch.rand(2, 1, 8, 8)
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert psnr(x.double(), x.double() + 0.1).dtype == torch.float64


def test_ssim():
    x = images.sample("camera", size=32)
    assert torch.allclose(ssim(x, x), torch.ones(1))
    y = GaussianNoise(0.1).observe(x, seed=0)
    s = ssim(y, x)
    ref = structural_similarity(images.to_numpy(y).astype(np.float64),
                                images.to_numpy(x).astype(np.float64), data_range=1.0)
    assert s.shape == (1,) and abs(float(s) - ref) < 1e-6 and float(s) < 0.9
    rgb = images.sample("astronaut", size=32)
    r = ssim(torch.cat([rgb, rgb.flip(-1)]), torch.cat([rgb, rgb]))
    assert r.shape == (2,) and float(r[0]) == pytest.approx(1.0) and float(r[1]) < 0.9
    ref = structural_similarity(images.to_numpy(rgb.flip(-1)).astype(np.float64),
                                images.to_numpy(rgb).astype(np.float64), data_range=1.0,
                                channel_axis=-1)
    assert abs(float(r[1]) - ref) < 1e-6


def test_metric_errors():
    x = torch.rand(1, 3, 16, 16)
    for metric in (psnr, ssim, mse):
        with pytest.raises(ShapeError, match=r"\(1, 3, 16, 16\).*\(1, 1, 16, 16\)"):
            metric(x, x[:, :1])
    with pytest.raises(DipkitError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ShapeError, match="7x7"):
        ssim(torch.rand(1, 1, 5, 5), torch.rand(1, 1, 5, 5))
    with pytest.raises(DipkitError, match="tensor"):
        psnr(np.zeros((1, 1, 4, 4)), x)
