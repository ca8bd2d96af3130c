"""dipkit.images.padding: padding and cropping to a multiple, and undoing it."""

import pytest
import torch

from dipkit import images
from dipkit.errors import DipkitError, ShapeError


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
