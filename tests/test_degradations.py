"""dipkit.degradations: seeded observations, operators, losses, masks, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from dipkit import images
from dipkit.degradations import (JPEG, Degradation, GaussianNoise, Identity, Inpainting,
                                 bernoulli_mask, block_mask, text_mask)
from dipkit.errors import DipkitError, ShapeError


@pytest.fixture(scope="module")
def clean():
    return images.sample("astronaut", size=48)


# ---- Gaussian noise --------------------------------------------------------------------------

def test_noise_is_seeded(clean):
    noise = GaussianNoise(25 / 255)
    a, b, c = noise.observe(clean, seed=0), noise.observe(clean, seed=0), noise.observe(clean, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == clean.shape and a.dtype == torch.float32
    assert 0 <= a.min() and a.max() <= 1
    g = torch.Generator().manual_seed(0)
    assert torch.equal(noise.observe(clean, seed=g), a)
    assert torch.equal(noise(clean, 0), a)                                  # deepinv style call


def test_noise_std_matches_sigma():
    sigma = 25 / 255
    x = torch.full((1, 1, 256, 256), 0.5)
    y = GaussianNoise(sigma).observe(x, seed=3)       # mid-gray: clipping is 4 sigma away
    assert abs(float((y - x).std()) - sigma) < 0.02 * sigma
    assert abs(float((y - x).mean())) < 5 * sigma / 256          # 5 standard errors
    unclipped = GaussianNoise(0.9, clip=False).observe(x, seed=3)
    assert unclipped.min() < 0 and unclipped.max() > 1


def test_noise_batches_get_different_noise():
    x = torch.full((2, 1, 16, 16), 0.5)
    y = GaussianNoise(0.1).observe(x, seed=0)
    assert not torch.equal(y[0], y[1])
    assert GaussianNoise(0.1).observe(x[0], seed=0).shape == (1, 16, 16)


def test_noise_errors(clean):
    with pytest.raises(DipkitError, match=">= 0"):
        GaussianNoise(-0.1)
    with pytest.raises(DipkitError, match="sigma/255"):
        GaussianNoise(25)
    with pytest.raises(DipkitError, match="finite"):
        GaussianNoise(float("nan"))
    with pytest.raises(DipkitError, match="in \\[0, 1\\]"):
        GaussianNoise(0.1).observe(clean * 255)
    with pytest.raises(DipkitError, match="seed"):
        GaussianNoise(0.1).observe(clean, seed=0.5)
    with pytest.raises(DipkitError, match="tensor"):
        GaussianNoise(0.1).observe(np.zeros((1, 1, 4, 4)))


# ---- JPEG ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["rgb", "gray"])
def test_jpeg_is_deterministic_and_lossy(clean, mode):
    x = clean if mode == "rgb" else images.rgb_to_gray(clean)
    jpeg = JPEG(10)
    y = jpeg.observe(x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert not torch.equal(x, y) and torch.equal(y, jpeg.observe(x, seed=5))
    assert float((x - y).abs().mean()) < 0.1
    assert float((JPEG(90).observe(x) - x).abs().mean()) < float((y - x).abs().mean())


def test_jpeg_matches_pillow_with_the_papers_options(clean):
    import io
    a = np.rint(images.to_numpy(clean) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=10, optimize=True, progressive=True)
    ref = images.to_tensor(np.asarray(Image.open(buf)))
    assert torch.equal(JPEG(10).observe(clean), ref)


def test_jpeg_batch_and_errors(clean):
    batch = torch.cat([clean, clean.flip(-1)])
    y = JPEG(20).observe(batch)
    assert torch.equal(y[1:], JPEG(20).observe(batch[1:]))
    for q in (0, 101, 1.5, "10", True):
        with pytest.raises(DipkitError, match="1..100"):
            JPEG(q)
    with pytest.raises(ShapeError, match="channels"):
        JPEG(10).observe(torch.rand(1, 2, 8, 8))


# ---- inpainting and masks --------------------------------------------------------------------

def test_inpainting_observe_forward_loss(clean):
    m = bernoulli_mask(48, 48, seed=0)
    op = Inpainting(m)
    y = op.observe(clean)
    assert torch.equal(y, clean * m)
    f = torch.rand(2, 3, 48, 48, requires_grad=True)
    assert torch.equal(op.forward(f), f * m)
    loss = op.loss(f, y)
    manual = ((f * m.float() - clean * m.float()) ** 2).mean()
    assert torch.allclose(loss, manual)
    loss.backward()
    assert torch.equal(f.grad != 0, m.expand(2, 3, 48, 48) & (f.grad != 0))   # no gradient where unknown
    # an observation with junk at the unknown pixels gives the same loss
    junk = torch.where(m, y, torch.rand_like(y))
    assert torch.allclose(op.loss(f, junk), loss)
    assert op.loss(f, y, reduction="none").shape == (2,)


@pytest.mark.parametrize("shape", [(16, 16), (1, 16, 16), (1, 1, 16, 16)])
def test_inpainting_mask_shapes_and_dtypes(shape):
    m = bernoulli_mask(16, 16, seed=1).reshape(shape)
    for mask in (m, m.float(), m.numpy(), m.to(torch.uint8)):
        op = Inpainting(mask)
        assert op.mask.shape == (1, 1, 16, 16) and op.mask.dtype == torch.bool
        assert torch.equal(op.mask, m.reshape(1, 1, 16, 16))
    assert 0.3 < op.p_known < 0.7 and "Inpainting" in repr(op)


def test_inpainting_errors():
    op = Inpainting(bernoulli_mask(16, 16))
    with pytest.raises(ShapeError, match="16x16.*20x24"):
        op.observe(torch.rand(1, 1, 20, 24))
    with pytest.raises(ShapeError, match="16x16.*20x24"):
        op.forward(torch.rand(1, 1, 20, 24))
    with pytest.raises(DipkitError, match="no known pixel"):
        Inpainting(torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(DipkitError, match="0/1"):
        Inpainting(torch.full((8, 8), 0.5))
    with pytest.raises(ShapeError, match="one mask"):
        Inpainting(torch.ones(3, 8, 8, dtype=torch.bool))


@pytest.mark.parametrize("name", ["house", "Lena512"])
def test_bernoulli_mask_equals_the_benchmark_masks(shared_data, name):
    ref = np.asarray(Image.open(shared_data / "bernoulli11" / f"{name}_mask.png")) > 0
    m = bernoulli_mask(*ref.shape)
    assert m.shape == (1, 1) + ref.shape and m.dtype == torch.bool
    assert np.array_equal(m[0, 0].numpy(), ref)


def test_bernoulli_mask_probability_and_seeds():
    m = bernoulli_mask(64, 64, p_known=0.2, seed=3)
    assert 0.15 < m.float().mean() < 0.25
    assert torch.equal(m, bernoulli_mask(64, 64, p_known=0.2, seed=3))
    assert not torch.equal(m, bernoulli_mask(64, 64, p_known=0.2, seed=4))
    g = bernoulli_mask(64, 64, seed=torch.Generator().manual_seed(0))
    assert g.shape == (1, 1, 64, 64)
    with pytest.raises(DipkitError, match="p_known"):
        bernoulli_mask(8, 8, p_known=1.5)


def test_block_mask():
    m = block_mask(8, 8, block=0.5)
    assert m.shape == (1, 1, 8, 8) and int((~m).sum()) == 16 and not m[0, 0, 2:6, 2:6].any()
    assert int((~block_mask(10, 20, block=(2, 4))).sum()) == 8
    corner = block_mask(10, 10, block=4, center=(0, 0))
    assert int((~corner).sum()) == 4 and not corner[0, 0, :2, :2].any()
    with pytest.raises(DipkitError, match="no known"):
        block_mask(8, 8, block=1.0)
    with pytest.raises(DipkitError, match="fraction"):
        block_mask(8, 8, block=1.5)


def test_text_mask():
    m = text_mask(64, 96)
    assert m.shape == (1, 1, 64, 96) and m.dtype == torch.bool
    assert 0.5 < m.float().mean() < 0.99
    assert torch.equal(m, text_mask(64, 96))
    assert torch.equal(text_mask(64, 96, seed=1), text_mask(64, 96, seed=1))
    assert not torch.equal(text_mask(64, 96, seed=1), m)
    assert text_mask(64, 96, stroke_width=1).float().mean() < m.float().mean()
    with pytest.raises(DipkitError, match="text"):
        text_mask(8, 8, text="  ")


# ---- identity and the base class -------------------------------------------------------------

def test_identity_and_loss_is_mse(clean):
    op = Identity()
    y = op.observe(clean)
    assert torch.equal(y, clean) and y is not clean
    f = torch.rand_like(clean)
    for d in (op, GaussianNoise(0.1), JPEG(10)):
        assert torch.equal(d.forward(f), f) and torch.equal(d.A(f), f)
        assert torch.allclose(d.loss(f, y), ((f - clean) ** 2).mean())
        assert isinstance(d, Degradation) and d.name and repr(d).startswith(type(d).__name__)
        assert d.to("cpu") is d
    with pytest.raises(ShapeError, match="differ in shape"):
        op.loss(f, clean[:, :1])
    assert op.loss(torch.cat([f, f]), y).ndim == 0                         # y broadcast over N
    with pytest.raises(DipkitError, match="reduction"):
        op.loss(f, y, reduction="sum")


def test_loaded_observation_is_used_as_is(tmp_path, clean):
    noisy = GaussianNoise(25 / 255).observe(clean, seed=0)
    images.save(noisy, tmp_path / "noisy.png")
    y = images.load(tmp_path / "noisy.png")                 # a user's own noisy photo
    f = torch.rand_like(clean)
    assert torch.allclose(GaussianNoise(0.5).loss(f, y), ((f - y) ** 2).mean())


def test_held_out_pixels_leave_the_loss_and_give_a_reading():
    from dipkit.degradations import HeldOut

    clean = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = GaussianNoise(0.1).observe(clean, seed=0)
    op = HeldOut(GaussianNoise(0.1), fraction=0.1, seed=1)
    out = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    held = op._held(out)
    assert 0.05 < float(held.float().mean()) < 0.15 and held.shape == (1, 1, 32, 32)
    changed = out.clone()
    changed[:, :, held[0, 0]] += 0.5           # only the held-out pixels change
    assert torch.equal(op.loss(changed, y, reduction="none"), op.loss(out, y, reduction="none"))
    expected = ((out - y) ** 2)[:, :, held[0, 0]].flatten(1).mean(1)
    torch.testing.assert_close(op.readings(out, y)["heldout"], expected)
    assert op.known_fraction(y) == pytest.approx(0.9)


def test_held_out_pixels_are_chosen_among_the_known_ones():
    from dipkit.degradations import HeldOut

    mask = bernoulli_mask(32, 32)
    op = HeldOut(Inpainting(mask), fraction=0.2, seed=0)
    held = op._held(torch.zeros(1, 1, 32, 32))
    assert not (held & ~mask).any() and held.any()
    with pytest.raises(DipkitError, match="fraction"):
        HeldOut(Inpainting(mask), fraction=0.9)
