"""Frequency-band correspondence and the other spectral probes (PROTOCOL.md section 4)."""

import numpy as np
import pytest
import torch
from conftest import to_batch
from reference_probes import fbc_reference, gray_reference

from dipkit.errors import DipkitError, ShapeError
from dipkit.spectral import band_correspondence, band_masks, lowpass, radial_spectrum, spectrum_ratio

FBC_F16 = [0.9326, 0.8110, 0.6252, 0.4195, 0.2666]  # PROTOCOL.md section 4, to 4 decimals
SIZES = [(32, 32), (37, 41), (48, 27), (40, 64)]  # even, odd, non-square
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _random_pair(h, w, c=3, seed=0):
    rng = np.random.RandomState(seed)
    clean = rng.uniform(size=(h, w, c))
    return clean, np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)


# --- the protocol's test vectors -------------------------------------------------------------


def test_fbc_test_vector(f16):
    x, y = f16
    np.testing.assert_allclose(band_correspondence(to_batch(x), to_batch(y))[0], FBC_F16, atol=5e-5)
    np.testing.assert_allclose(fbc_reference(gray_reference(x), gray_reference(y)), FBC_F16, atol=5e-5)


def test_fbc_of_the_observation_with_itself_is_one(f16):
    _, y = f16
    np.testing.assert_allclose(band_correspondence(to_batch(y), to_batch(y))[0], np.ones(5), atol=1e-6)
    np.testing.assert_allclose(fbc_reference(gray_reference(y), gray_reference(y)), np.ones(5), atol=1e-6)


# --- against the direct NumPy version --------------------------------------------------------


@pytest.mark.parametrize("h, w", SIZES)
@pytest.mark.parametrize("channels, n_bands", [(3, 5), (1, 3), (3, 8)])
def test_matches_reference_float64(h, w, channels, n_bands):
    out, obs = _random_pair(h, w, channels, seed=h * w)
    got = band_correspondence(to_batch(out), to_batch(obs), n_bands=n_bands)
    assert got.dtype == torch.float64
    want = fbc_reference(gray_reference(out), gray_reference(obs), n_bands)
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("h, w", SIZES)
def test_float32_matches_float64_reference(h, w):
    out, obs = _random_pair(h, w, seed=1)
    got = band_correspondence(to_batch(out, torch.float32), to_batch(obs, torch.float32))
    assert got.dtype == torch.float32
    want = fbc_reference(gray_reference(out), gray_reference(obs))
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-4)


# --- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w", SIZES)
def test_identity_gives_ones_in_every_band(h, w):
    y = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(band_correspondence(y, y), torch.ones(2, 5))


def test_lowpassed_image_falls_with_band_index():
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    bands = band_correspondence(lowpass(x, 0.5), x)[0]
    assert torch.all(bands[1:] < bands[:-1]), bands
    assert bands[0] > 0.9 and bands[-1] < 0.2


def test_batched_equals_per_image_and_observation_broadcasts():
    gen = torch.Generator().manual_seed(1)
    outs, obs = torch.rand(3, 3, 40, 36, generator=gen), torch.rand(3, 3, 40, 36, generator=gen)
    batched = band_correspondence(outs, obs)
    singles = torch.cat([band_correspondence(outs[i : i + 1], obs[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, singles)
    broadcast = band_correspondence(outs, obs[:1])
    torch.testing.assert_close(broadcast, band_correspondence(outs, obs[:1].expand(3, -1, -1, -1)))
    # a single image (C, H, W) counts as a batch of one
    torch.testing.assert_close(band_correspondence(outs[0], obs[0]), singles[:1])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype_are_kept(device, dtype):
    x = torch.rand(2, 3, 32, 32, dtype=dtype, device=device)
    results = band_correspondence(x, x[:1]), spectrum_ratio(x, x), radial_spectrum(x)[1], lowpass(x, 0.5)
    for result in results:
        assert result.device == x.device and result.dtype == dtype


def test_bands_are_the_ring_means_of_the_spectrum_ratio():
    gen = torch.Generator().manual_seed(3)
    for h, w in SIZES:
        out, obs = torch.rand(1, 3, h, w, generator=gen), torch.rand(1, 3, h, w, generator=gen)
        ratio = spectrum_ratio(out, obs)[0].double()
        means = torch.stack([ratio[mask].mean() for mask in band_masks(h, w, 5)])
        torch.testing.assert_close(band_correspondence(out, obs)[0].double(), means, rtol=0, atol=1e-6)


def test_band_masks_partition_the_disk_and_are_cached():
    masks = band_masks(33, 40, 5)
    assert masks.shape == (5, 33, 40) and masks.dtype == torch.bool
    assert masks.sum(0).max() == 1  # disjoint
    assert masks[0, 33 // 2, 40 // 2]  # DC in band 1
    rows, cols = torch.meshgrid(torch.arange(33) - 16, torch.arange(40) - 20, indexing="ij")
    assert torch.equal(masks.any(0), rows**2 + cols**2 <= 20**2)  # corners in no band
    assert band_masks(33, 40, 5) is masks
    assert band_masks(33, 40, 5, device="cpu") is masks


def test_spectrum_ratio_is_centred_and_clipped():
    gen = torch.Generator().manual_seed(2)
    out, obs = torch.rand(2, 1, 24, 30, generator=gen), torch.rand(1, 1, 24, 30, generator=gen)
    ratio = spectrum_ratio(out, obs)
    assert ratio.shape == (2, 24, 30) and ratio.min() >= 0 and ratio.max() <= 1
    dc = out.sum(dim=(1, 2, 3)) / obs.sum()
    torch.testing.assert_close(ratio[:, 12, 15], dc.clamp(max=1))


def test_radial_spectrum_of_a_constant_image_is_all_in_the_first_bin():
    radii, magnitude = radial_spectrum(torch.full((2, 3, 32, 48), 0.5))
    assert radii.shape == (16,) and magnitude.shape == (2, 16)
    assert 0 < radii[0] < radii[-1] < 0.5
    assert torch.all(magnitude[:, 0] > 0) and torch.all(magnitude[:, 1:].abs() < 1e-6)


def test_lowpass_keeps_shape_and_passes_everything_above_nyquist():
    x = torch.rand(2, 3, 17, 20, dtype=torch.float64)
    torch.testing.assert_close(lowpass(x, 2.0, kind="ideal"), x)
    assert lowpass(x, 0.3).shape == x.shape


# --- errors ----------------------------------------------------------------------------------


def test_errors():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ShapeError, match="32x32 but observation is 32x30"):
        band_correspondence(x, torch.rand(1, 3, 32, 30))
    with pytest.raises(ShapeError, match="batch of 2 for 3 outputs"):
        band_correspondence(torch.rand(3, 3, 32, 32), torch.rand(2, 3, 32, 32))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        band_correspondence(torch.rand(32, 32), torch.rand(32, 32))
    with pytest.raises(DipkitError, match="n_bands must be at least 1"):
        band_correspondence(x, x, n_bands=0)
    with pytest.raises(DipkitError, match="float"):
        band_correspondence(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), x)
    with pytest.raises(DipkitError, match="cutoff"):
        lowpass(x, 0)
