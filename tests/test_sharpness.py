"""Blurriness, MLV sharpness and their ratio (PROTOCOL.md section 5)."""

import numpy as np
import pytest
import torch
from conftest import load_image, to_batch
from reference_probes import blur_reference, gray_reference, ratio_reference, sharpness_reference

from dipkit.errors import ShapeError
from dipkit.sharpness import blur_sharpness_ratio, blurriness, sharpness
from dipkit.spectral import lowpass

# PROTOCOL.md section 5: blur and sharpness to 5 decimals, ρ to 4
VECTORS = {"clean F16": (0.31174, 0.11409, 2.7325), "noisy F16": (0.15766, 0.13638, 1.1560),
           "classic5 peppers": (0.30744, 0.12767, 2.4080)}  # fmt: skip
# even, odd, non-square; the last two have MLV maps of fewer than 1001 values
SIZES = [(64, 64), (45, 51), (70, 38), (20, 31), (12, 12)]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def vector_images(f16, shared_data):
    x, y = f16
    peppers = load_image(shared_data / "classic5" / "peppers.png")
    return {"clean F16": x, "noisy F16": y, "classic5 peppers": peppers}


@pytest.mark.parametrize("name", list(VECTORS))
def test_test_vectors(vector_images, name):
    image = vector_images[name]
    img = to_batch(image, torch.float64)
    blur, sharp, ratio = VECTORS[name]
    gray = gray_reference(image)
    for got, want, atol in [
        (blurriness(img)[0], blur, 5e-6),
        (sharpness(img)[0], sharp, 5e-6),
        (blur_sharpness_ratio(img)[0], ratio, 5e-5),
        (blur_reference(gray), blur, 5e-6),
        (sharpness_reference(gray), sharp, 5e-6),
        (ratio_reference(gray), ratio, 5e-5),
    ]:
        assert abs(float(got) - want) <= atol, (name, float(got), want)


def _random_image(h, w, c, seed):
    # a smooth ramp plus noise: natural-ish statistics, and a map with many distinct values
    rng = np.random.RandomState(seed)
    ramp = np.linspace(0, 0.6, w)[None, :, None] * np.linspace(0.5, 1, h)[:, None, None]
    return np.clip(ramp + rng.uniform(0, 0.4, (h, w, c)), 0, 1)


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_matches_reference_float64(h, w, channels):
    image = _random_image(h, w, channels, seed=h + w)
    img, gray = to_batch(image), gray_reference(image)
    assert abs(float(blurriness(img)[0]) - blur_reference(gray)) < 1e-6
    assert abs(float(sharpness(img)[0]) - sharpness_reference(gray)) < 1e-6
    assert abs(float(blur_sharpness_ratio(img)[0]) - ratio_reference(gray)) < 1e-6


def test_reference_python_sort_equals_numpy_sort():
    """The benchmark's 'paper's code' baseline sorts with Python's sorted: the same value."""
    gray = gray_reference(_random_image(40, 52, 3, seed=3))
    assert sharpness_reference(gray, sort="python") == sharpness_reference(gray, sort="numpy")


@pytest.mark.parametrize("h, w", SIZES)
def test_float32_matches_float64_reference(h, w):
    image = _random_image(h, w, 3, seed=7)
    img, gray = to_batch(image, torch.float32), gray_reference(image)
    assert abs(float(blurriness(img)[0]) - blur_reference(gray)) < 1e-4
    assert abs(float(sharpness(img)[0]) - sharpness_reference(gray)) < 1e-4


def test_batched_equals_per_image():
    imgs = torch.from_numpy(np.stack([_random_image(40, 48, 3, s) for s in range(3)])).permute(0, 3, 1, 2)
    for probe in (blurriness, sharpness, blur_sharpness_ratio):
        batched = probe(imgs)
        assert batched.shape == (3,)
        torch.testing.assert_close(batched, torch.cat([probe(imgs[i : i + 1]) for i in range(3)]))
        torch.testing.assert_close(probe(imgs[0]), batched[:1])  # (C, H, W) is a batch of one


def test_blurring_raises_blur_and_lowers_sharpness():
    img = to_batch(_random_image(64, 64, 3, seed=3))
    blurred = lowpass(img, 0.3).clamp(0, 1)
    assert blurriness(blurred) > blurriness(img)
    assert sharpness(blurred) < sharpness(img)
    assert blur_sharpness_ratio(blurred) > blur_sharpness_ratio(img)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype_are_kept(device, dtype):
    img = torch.rand(2, 3, 40, 40, dtype=dtype, device=device)
    for probe in (blurriness, sharpness, blur_sharpness_ratio):
        result = probe(img)
        assert result.shape == (2,) and result.device == img.device and result.dtype == dtype


def test_errors():
    with pytest.raises(ShapeError, match="at least 12x12 pixels, got 11x40"):
        blurriness(torch.rand(1, 1, 11, 40))
    with pytest.raises(ShapeError, match="at least 12x12"):
        blur_sharpness_ratio(torch.rand(1, 3, 40, 11))
    with pytest.raises(ShapeError, match="at least 5x5 pixels, got 4x40"):
        sharpness(torch.rand(1, 1, 4, 40))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        sharpness(torch.rand(40, 40))
    assert sharpness(torch.rand(1, 1, 5, 5)).isfinite().all()  # the smallest size works


@pytest.mark.parametrize("levels", [None, 255, 4])
def test_prefiltered_top_values_equal_topk(levels):
    """The CPU pre-filter of the MLV sort returns exactly topk's values, ties included."""
    from dipkit.sharpness import _top_values

    gen = torch.Generator().manual_seed(levels or 0)
    flat = torch.rand(3, 300 * 300, generator=gen) ** 4  # skewed, like an MLV map
    if levels:
        flat = (flat * levels).round() / levels  # many ties at the threshold
    assert torch.equal(_top_values(flat, 1001), flat.topk(1001, dim=1).values)
    assert torch.equal(_top_values(flat[:, :5000], 1001), flat[:, :5000].topk(1001, dim=1).values)
