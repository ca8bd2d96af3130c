"""dipkit.images.convert: NumPy conversion, gray conversion, colour modes and their errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from dipkit import images
from dipkit.errors import DipkitError, ImageError, ShapeError


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


def test_rgb_to_gray_weights_and_errors():
    x = torch.zeros(1, 3, 2, 2)
    x[:, 1] = 1
    assert torch.allclose(images.rgb_to_gray(x), torch.full((1, 1, 2, 2), 0.5870))
    with pytest.raises(ShapeError):
        images.rgb_to_gray(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError):         # ShapeError is a ValueError, as before
        images.rgb_to_gray(torch.zeros(1, 4, 2, 2))


def test_mode_conversion(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, size=(6, 7, 3)).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "c.png")
    g = images.load(tmp_path / "c.png", mode="gray")
    assert torch.allclose(g, images.rgb_to_gray(images.to_tensor(a)))
    rgb = images.load(tmp_path / "c.png", mode="rgb")
    assert rgb.shape == (1, 3, 6, 7)
    Image.fromarray(a[..., 0]).save(tmp_path / "g.png")
    assert images.load(tmp_path / "g.png", mode="rgb").shape == (1, 3, 6, 7)
    with pytest.raises(DipkitError, match="mode"):
        images.load(tmp_path / "g.png", mode="RGB")
