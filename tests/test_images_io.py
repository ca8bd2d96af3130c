"""dipkit.images.io and .folders: file round trips (Pillow, pypng, tifffile), errors, folders."""

import warnings

import numpy as np
import png
import pytest
import torch
from PIL import Image

from dipkit import images
from dipkit.errors import ImageError, ShapeError


def _random_array(shape, bit_depth, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** bit_depth, size=shape).astype(np.uint8 if bit_depth == 8 else np.uint16)


def _write_png16_with_pypng(a, path, interlace=False):
    """Write uint16 (H, W, C), C = 1..4, as a 16-bit PNG with pypng itself (not through dipkit)."""
    h, w, ch = a.shape
    writer = png.Writer(w, h, greyscale=ch <= 2, alpha=ch in (2, 4), bitdepth=16,
                        interlace=interlace)
    with open(path, "wb") as f:
        writer.write(f, a.reshape(h, w * ch).tolist())


def _read_png16_with_pypng(path):
    """uint16 (H, W, C) of a 16-bit PNG, read with pypng itself."""
    w, h, rows, info = png.Reader(filename=str(path)).read()
    return np.array([list(r) for r in rows], dtype=np.uint16).reshape(h, w, info["planes"])


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
    _write_png16_with_pypng(a, tmp_path / "rgba16.png")
    _write_png16_with_pypng(a[..., :2], tmp_path / "la16.png")
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


def test_16_bit_rgb_png_is_bit_exact_for_dipkit_and_pypng(tmp_path):
    a = _random_array((23, 41, 3), 16, seed=3)
    a[0, 0], a[-1, -1] = 0, 65535                     # both ends of the range
    path = tmp_path / "rgb16.png"
    images.save(images.to_tensor(a), path, bit_depth=16)
    assert torch.equal(images.load(path), images.to_tensor(a))
    w, h, rows, info = png.Reader(filename=str(path)).read()
    assert (w, h, info["bitdepth"], info["planes"], info["greyscale"], info["alpha"]) == (
        41, 23, 16, 3, False, False)
    assert np.array_equal(_read_png16_with_pypng(path), a)
    assert np.array_equal(np.rint(images.to_numpy(images.load(path)).astype(np.float64) * 65535), a)
    info = images.image_info(path)
    assert (info.width, info.height, info.channels, info.bit_depth, info.mode) == (
        41, 23, 3, 16, "RGB;16")


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_interlaced_16_bit_png_is_read_at_16_bits(tmp_path, channels):
    a = _random_array((13, 10, channels), 16, seed=4)
    path = tmp_path / "adam7.png"
    _write_png16_with_pypng(a, path, interlace=True)
    keep = 1 if channels == 2 else 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # no "read at 8 bits" warning
        warnings.filterwarnings("ignore", "'.*': the alpha channel was dropped")
        assert torch.equal(images.load(path), images.to_tensor(a[..., :keep]))
    assert images.image_info(path).bit_depth == 16


def test_truncated_or_corrupt_16_bit_png_is_an_image_error(tmp_path):
    a = _random_array((30, 40, 3), 16, seed=5)
    images.save(images.to_tensor(a), tmp_path / "deep.png", bit_depth=16)
    data = (tmp_path / "deep.png").read_bytes()
    idat = data.index(b"IDAT")
    cuts = {"header": data[:40], "in IDAT": data[:idat + 200], "no IEND": data[:-12],
            "bad CRC": data[:idat + 10] + bytes([data[idat + 10] ^ 0xFF]) + data[idat + 11:]}
    for what, cut in cuts.items():
        path = tmp_path / f"cut {what}.png"
        path.write_bytes(cut)
        with pytest.raises(ImageError, match="truncated or corrupt PNG file") as err:
            images.load(path)
        assert str(path) in str(err.value) and "export it again" in str(err.value), what


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


# ---- benchmark folders -----------------------------------------------------------------------

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
