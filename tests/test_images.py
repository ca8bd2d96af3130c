"""dipkit.images: file round trips, conversions, errors, padding, samples, benchmark folders."""


import numpy as np
import pytest
import torch
from PIL import Image

from dipkit import images
from dipkit.errors import DipkitError, ImageError, ShapeError


def _random_array(shape, bit_depth, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** bit_depth, size=shape).astype(np.uint8 if bit_depth == 8 else np.uint16)


# ---- round trips -----------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip_is_exact(tmp_path, ext, bit_depth, channels):
    shape = (37, 53) if channels == 1 else (37, 53, 3)
    a = _random_array(shape, bit_depth)
    x = images.to_tensor(a)
    assert x.shape == (1, channels, 37, 53) and x.dtype == torch.float32
    path = tmp_path / f"img{ext}"
    images.save(x, path, bit_depth=bit_depth)
    y = images.load(path)
    assert torch.equal(x, y)
    info = images.image_info(path)
    assert (info.width, info.height, info.channels, info.bit_depth, info.has_alpha) == (
        53, 37, channels, bit_depth, False)


def test_16_bit_rgb_png_matches_pillow_and_keeps_precision(tmp_path):
    # a smooth image (all PNG row filters get used) and a random one; Pillow reads the high bytes
    smooth = np.linspace(0, 65535, 40 * 60 * 3).reshape(40, 60, 3).astype(np.uint16)
    for k, a in enumerate([smooth, _random_array((31, 17, 3), 16, seed=1)]):
        path = tmp_path / f"deep{k}.png"
        images.save(images.to_tensor(a), path, bit_depth=16)
        assert torch.equal(images.load(path), images.to_tensor(a))
        assert np.array_equal(np.asarray(Image.open(path)), (a >> 8).astype(np.uint8))


def test_16_bit_alpha_and_planar_files(tmp_path):
    import tifffile
    a = _random_array((9, 11, 4), 16, seed=2)
    images._write_png16(a, tmp_path / "rgba16.png")
    images._write_png16(a[..., :2], tmp_path / "la16.png")
    tifffile.imwrite(tmp_path / "rgba16.tif", a, photometric="rgb", extrasamples=["unassalpha"])
    for name, keep in [("rgba16.png", 3), ("la16.png", 1), ("rgba16.tif", 3)]:
        info = images.image_info(tmp_path / name)
        assert info.bit_depth == 16 and info.has_alpha and info.channels == keep
        with pytest.warns(UserWarning, match="alpha"):
            assert torch.equal(images.load(tmp_path / name), images.to_tensor(a[..., :keep]))
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(a[..., :3], -1, 0), photometric="rgb",
                     planarconfig="separate")
    assert torch.equal(images.load(tmp_path / "planar.tif"), images.to_tensor(a[..., :3]))


def test_save_accepts_chw_and_rounds(tmp_path):
    x = torch.tensor([0.0, 0.5, 1.0, 1.7, -0.2]).view(1, 1, 5).expand(3, 1, 5).contiguous()
    images.save(x, tmp_path / "a.png")
    a = np.asarray(Image.open(tmp_path / "a.png"))
    assert a.shape == (1, 5, 3) and a[0, :, 0].tolist() == [0, 128, 255, 255, 0]


def test_jpeg_and_bmp_load(tmp_path):
    a = _random_array((20, 24, 3), 8)
    Image.fromarray(a).save(tmp_path / "a.bmp")
    assert torch.equal(images.load(tmp_path / "a.bmp"), images.to_tensor(a))
    Image.fromarray(a).save(tmp_path / "a.jpg", quality=90)
    x = images.load(tmp_path / "a.jpg")
    assert x.shape == (1, 3, 20, 24) and 0 <= x.min() and x.max() <= 1
    images.save(x, tmp_path / "b.jpeg")
    assert images.image_info(tmp_path / "b.jpeg").bit_depth == 8


def test_rgba_warns_and_drops_alpha(tmp_path):
    a = _random_array((8, 9, 4), 8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    assert images.image_info(tmp_path / "a.png").has_alpha
    with pytest.warns(UserWarning, match="alpha channel was dropped"):
        x = images.load(tmp_path / "a.png")
    assert torch.equal(x, images.to_tensor(a[..., :3]))
    Image.fromarray(a[..., :2], "LA").save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="alpha"):
        assert images.load(tmp_path / "la.png").shape == (1, 1, 8, 9)


def test_palette_and_one_bit_images(tmp_path):
    a = _random_array((10, 12, 3), 8)
    pal = Image.fromarray(a).convert("P")
    pal.save(tmp_path / "p.png")
    x = images.load(tmp_path / "p.png")
    assert x.shape == (1, 3, 10, 12)
    assert torch.equal(x, images.to_tensor(np.asarray(pal.convert("RGB"))))
    Image.fromarray(a[..., 0] > 127).save(tmp_path / "m.png")
    m = images.load(tmp_path / "m.png")
    assert m.shape == (1, 1, 10, 12) and set(m.unique().tolist()) <= {0.0, 1.0}


def test_mode_conversion(tmp_path):
    a = _random_array((6, 7, 3), 8)
    Image.fromarray(a).save(tmp_path / "c.png")
    g = images.load(tmp_path / "c.png", mode="gray")
    assert torch.allclose(g, images.rgb_to_gray(images.to_tensor(a)))
    rgb = images.load(tmp_path / "c.png", mode="rgb")
    assert rgb.shape == (1, 3, 6, 7)
    Image.fromarray(a[..., 0]).save(tmp_path / "g.png")
    assert images.load(tmp_path / "g.png", mode="rgb").shape == (1, 3, 6, 7)
    with pytest.raises(DipkitError, match="mode"):
        images.load(tmp_path / "g.png", mode="RGB")


# ---- errors ----------------------------------------------------------------------------------

def test_load_errors_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image at all")
    cases = {tmp_path / "missing.png": "no such file", tmp_path: "is a directory",
             tmp_path / "empty.png": "empty", tmp_path / "notes.png": "not an image"}
    for path, what in cases.items():
        with pytest.raises(ImageError, match=what) as err:
            images.load(path)
        assert str(path) in str(err.value)
        with pytest.raises(ImageError):
            images.image_info(path)


def test_truncated_files_are_errors(tmp_path):
    a = _random_array((40, 40, 3), 8)
    Image.fromarray(a).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        images.load(tmp_path / "cut.png")
    images.save(images.to_tensor(a), tmp_path / "deep.png", bit_depth=16)
    (tmp_path / "cut16.png").write_bytes((tmp_path / "deep.png").read_bytes()[:500])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        images.load(tmp_path / "cut16.png")


def test_save_errors(tmp_path):
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ImageError, match="NaN"):
        images.save(torch.full((1, 1, 4, 4), float("nan")), tmp_path / "a.png")
    with pytest.raises(ImageError, match="does not exist"):
        images.save(x, tmp_path / "no" / "a.png")
    with pytest.raises(ImageError, match="extension"):
        images.save(x, tmp_path / "a.xyz")
    with pytest.raises(ImageError, match="16-bit"):
        images.save(x, tmp_path / "a.jpg", bit_depth=16)
    with pytest.raises(ImageError, match="bit_depth"):
        images.save(x, tmp_path / "a.png", bit_depth=12)
    with pytest.raises(ShapeError, match="2 images"):
        images.save(torch.rand(2, 3, 4, 4), tmp_path / "a.png")
    with pytest.raises(ShapeError, match="channels"):
        images.save(torch.rand(1, 4, 4, 4), tmp_path / "a.png")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("array, error, match", [
    (np.zeros((4, 4), np.int64), ImageError, "uint8 or uint16"),
    (np.full((4, 4), 2.0), ImageError, "scale"),
    (np.full((4, 4), -0.5, np.float32), ImageError, "scale"),
    (np.full((4, 4), np.nan), ImageError, "NaN"),
    (np.zeros((3, 4, 5), np.uint8), ShapeError, "channels-first"),
    (np.zeros((4, 5, 4), np.uint8), ShapeError, "alpha"),
    (np.zeros((2, 2, 2, 2), np.uint8), ShapeError, "shape"),
])
def test_to_tensor_rejects_bad_arrays(array, error, match):
    with pytest.raises(error, match=match):
        images.to_tensor(array)


def test_to_tensor_dtypes_and_to_numpy():
    assert images.to_tensor(np.full((2, 3), 255, np.uint8)).eq(1).all()
    assert images.to_tensor(np.full((2, 3), 65535, np.uint16)).eq(1).all()
    assert images.to_tensor(np.array([[True, False]])).tolist() == [[[[1.0, 0.0]]]]
    f = np.random.default_rng(0).random((5, 6, 3))
    x = images.to_tensor(f)
    assert x.dtype == torch.float32 and x.shape == (1, 3, 5, 6)
    assert np.allclose(images.to_numpy(x), f, atol=1e-7)
    assert images.to_numpy(torch.zeros(2, 1, 5, 6)).shape == (5, 6)
    with pytest.raises(DipkitError, match="already a torch tensor"):
        images.to_tensor(torch.zeros(3, 3))


# ---- padding and cropping --------------------------------------------------------------------

@pytest.mark.parametrize("size", [(5, 7), (33, 31), (64, 64), (1, 3), (97, 2)])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular", "constant"])
def test_pad_to_multiple_and_undo(size, mode):
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    y, padding = images.pad_to_multiple(x, 32, mode=mode)
    assert y.shape[-2] % 32 == 0 and y.shape[-1] % 32 == 0
    assert y.shape[-2] - size[0] < 32 and y.shape[-1] - size[1] < 32
    assert torch.equal(padding.undo(y), x)
    assert abs(padding.top - padding.bottom) <= 1 and abs(padding.left - padding.right) <= 1


def test_reflect_padding_matches_torch_and_repeats_beyond_the_image():
    x = torch.rand(1, 1, 6, 9)
    y, p = images.pad_to_multiple(x, 4)
    ref = torch.nn.functional.pad(x, (p.left, p.right, p.top, p.bottom), mode="reflect")
    assert torch.equal(y, ref)
    row = torch.arange(3.0).view(1, 1, 1, 3)        # pad of 30 columns on a 3-wide image
    y, p = images.pad_to_multiple(row, 32)
    assert y.shape[-1] == 32 and set(y.unique().tolist()) == {0.0, 1.0, 2.0}
    assert torch.equal(y[..., p.top:p.top + 1, p.left:p.left + 3], row)
    assert (y[..., p.left - 1] == 1).all() and (y[..., p.left + 3] == 1).all()   # mirrored
    assert (y == y[..., :1, :]).all()                                            # 1 row: replicated


def test_crop_to_multiple_is_a_centre_crop():
    x = torch.rand(1, 3, 70, 65)
    y, crop = images.crop_to_multiple(x, 32)
    assert y.shape == (1, 3, 64, 64) and crop.kind == "crop"
    assert torch.equal(y, x[..., 3:67, 0:64])
    assert crop.undo(y).shape == x.shape                      # reflection fills the cut borders
    assert torch.equal(crop.undo(y, original=x), x)           # or the original pixels come back
    with pytest.raises(ShapeError, match="pad"):
        images.crop_to_multiple(torch.rand(1, 1, 20, 40), 32)


def test_padding_errors():
    x = torch.rand(1, 1, 10, 10)
    with pytest.raises(DipkitError, match="multiple"):
        images.pad_to_multiple(x, 0)
    with pytest.raises(DipkitError, match="mode"):
        images.pad_to_multiple(x, 4, mode="mirror")
    _, p = images.pad_to_multiple(x, 4)
    with pytest.raises(ShapeError, match="10x10"):
        p.undo(torch.rand(1, 1, 16, 16))


# ---- samples and folders ---------------------------------------------------------------------

@pytest.mark.parametrize("name, channels", [("astronaut", 3), ("camera", 1), ("coffee", 3),
                                            ("chelsea", 3)])
def test_samples(name, channels):
    full = images.sample(name)
    assert full.ndim == 4 and full.shape[1] == channels and full.dtype == torch.float32
    small = images.sample(name, size=32)
    assert small.shape == (1, channels, 32, 32)
    assert 0 <= small.min() and small.max() <= 1
    assert torch.equal(small, images.sample(name, size=32))                 # deterministic
    assert images.sample(name, size=(24, 40), mode="gray").shape == (1, 1, 24, 40)
    small.zero_()                                                           # a fresh copy
    assert images.sample(name, size=32).max() > 0


def test_unknown_sample_lists_names():
    with pytest.raises(DipkitError, match="astronaut"):
        images.sample("lena")
    with pytest.raises(DipkitError, match="size"):
        images.sample("camera", size=0)


def test_load_folder_pairs_masks(shared_data):
    items = images.load_folder(shared_data / "bernoulli11")
    names = [i.name for i in items]
    assert len(items) == 11 and names == sorted(names) and "house" in names
    assert not any(n.endswith("_mask") for n in names)
    for item in items:
        assert item.image.shape[:2] == (1, 1)
        assert item.mask.dtype == torch.bool and item.mask.shape == (1, 1) + item.image.shape[-2:]
        assert 0.45 < item.mask.float().mean() < 0.55


def test_load_folder_own_files_and_errors(tmp_path):
    a = _random_array((8, 8, 3), 8)
    Image.fromarray(a).save(tmp_path / "b.png")
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray((a[..., 0] > 100).astype(np.uint8) * 255).save(tmp_path / "a_mask.png")
    (tmp_path / "README.txt").write_text("ignored")
    items = images.load_folder(tmp_path, mode="gray")
    assert [i.name for i in items] == ["a", "b"]
    assert items[0].mask is not None and items[1].mask is None
    assert torch.equal(items[0].mask[0, 0], torch.from_numpy(a[..., 0] > 100))
    assert items[0].image.shape == (1, 1, 8, 8)
    Image.fromarray(a[:4]).save(tmp_path / "b_mask.png")
    with pytest.raises(ShapeError, match="same size"):
        images.load_folder(tmp_path)
    with pytest.raises(ImageError, match="no such folder"):
        images.load_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images"):
        images.load_folder(tmp_path / "empty")


def test_rgb_to_gray_weights_and_errors():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 1] = 1
    assert torch.allclose(images.rgb_to_gray(x), torch.full((1, 1, 2, 2), 0.5870))
    with pytest.raises(ShapeError):
        images.rgb_to_gray(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError):         # ShapeError is a ValueError, as before
        images.rgb_to_gray(torch.zeros(1, 4, 2, 2))
