"""dipkit.images.samples: the scikit-image test images, cropped and resized."""

import pytest
import torch

from dipkit import images
from dipkit.errors import DipkitError


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
