"""The networks: parameter counts, shapes, codes, size checks."""

import pytest
import torch

import dipkit
from dipkit.errors import DipkitError, ShapeError
from dipkit.models import INPUT_CODES, UPSAMPLERS, make_code


def test_parameter_counts_of_the_paper():
    assert dipkit.decoder().n_parameters() == 1_662_339
    assert dipkit.hourglass().n_parameters() == 2_217_831
    assert dipkit.convnet().n_parameters() == 1_662_339


@pytest.mark.parametrize("upsample", UPSAMPLERS)
def test_decoder_output_shape_and_range(upsample):
    m = dipkit.decoder(out_channels=1, channels=8, depth=3, upsample=upsample)
    z = m.make_code(32, 48, seed=1)
    assert z.shape == (1, 32, 4, 6)
    y = m(z)
    assert y.shape == (1, 1, 32, 48)
    assert 0 <= float(y.detach().min()) and float(y.detach().max()) <= 1


def test_hourglass_and_convnet_shapes():
    for m in (dipkit.hourglass(channels=8, depth=3), dipkit.convnet(channels=8, depth=2)):
        z = m.make_code(32, 40 if m.multiple == 1 else 32)
        assert m(z).shape[-2:] == z.shape[-2:]


@pytest.mark.parametrize("kind", INPUT_CODES)
def test_codes_are_seeded(kind):
    ch = 2 if kind == "meshgrid" else 8
    a, b = make_code(kind, ch, 5, 6, seed=3), make_code(kind, ch, 5, 6, seed=3)
    assert torch.equal(a, b) and a.shape == (1, ch, 5, 6)
    if kind != "meshgrid":
        assert not torch.equal(a, make_code(kind, ch, 5, 6, seed=4))


def test_fourier_code_is_sin_cos_of_uniform():
    z = make_code("fourier", 32, 4, 4, seed=0)
    assert torch.allclose(z[:, :16] ** 2 + z[:, 16:] ** 2, torch.ones(1, 16, 4, 4), atol=1e-6)


def test_weights_are_seeded():
    a, b, c = dipkit.decoder(channels=8, seed=1), dipkit.decoder(channels=8, seed=1), dipkit.decoder(channels=8, seed=2)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_lipschitz_is_applied_to_every_3x3_conv():
    m = dipkit.decoder(channels=16, depth=2, lipschitz=1.0)
    norms = m.spectral_norms()
    assert len(norms) == 2 + 2 * 2
    assert all(v <= 1.0 + 1e-4 for v in norms.values())


def test_gaussian_sigmas_per_layer():
    m = dipkit.decoder(channels=8, upsample="gaussian")
    assert m.config["sigma"] == [0.1, 0.1, 0.1, 0.5, 0.5]
    assert dipkit.decoder(channels=8, upsample="gaussian", sigma=1.0).config["sigma"] == [1.0] * 5
    with pytest.raises(DipkitError, match="one per up-block"):
        dipkit.decoder(channels=8, upsample="gaussian", sigma=[0.5, 0.5])


def test_image_too_small_or_not_a_multiple():
    m = dipkit.decoder(channels=8)
    with pytest.raises(ShapeError, match="too small.*at least 64x64"):
        m.make_code(32, 32)
    with pytest.raises(ShapeError, match="multiple of 32.*pad_to_multiple"):
        m.make_code(100, 128)


def test_unknown_names_are_refused():
    with pytest.raises(DipkitError, match="upsampler"):
        dipkit.decoder(upsample="bicubic")
    with pytest.raises(DipkitError, match="input code"):
        make_code("gaussian", 4, 2, 2)
    with pytest.raises(DipkitError, match="channels"):
        dipkit.decoder(channels=0)
