"""Shared test helpers: where the benchmark images live (``../shared/data``), and loading them."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def shared_data_dir() -> Path:
    """The shared benchmark images: ``$DIPKIT_SHARED_DATA``, else ``<repo>/../shared/data``."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("DIPKIT_SHARED_DATA", default))


def load_image(path) -> np.ndarray:
    """An image file as float32 (H, W, C) in [0, 1] (C = 1 for gray)."""
    x = np.asarray(Image.open(path), dtype=np.float32) / 255
    return x[:, :, None] if x.ndim == 2 else x


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test when it is absent (set ``DIPKIT_SHARED_DATA``)."""
    folder = shared_data_dir()
    if not folder.is_dir():
        pytest.skip(f"shared benchmark data folder absent: {folder} (set DIPKIT_SHARED_DATA)")
    return folder


@pytest.fixture(scope="session")
def f16(shared_data):
    """Clean F16 and its noisy observation of PROTOCOL.md section 4, float32 (H, W, 3)."""
    x = load_image(shared_data / "set9" / "image_F16_512rgb.png")
    y = np.clip(x + np.random.RandomState(0).normal(0, 25 / 255, x.shape), 0, 1).astype(np.float32)
    return x, y


def to_batch(a: np.ndarray, dtype=None):
    """A NumPy (H, W, C) image as a torch batch (1, C, H, W), optionally cast to ``dtype``."""
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
    return t if dtype is None else t.to(dtype)


@pytest.fixture(scope="session")
def tiny_run():
    """A 20-step fit of a tiny decoder to noisy astronaut (64²), probed every 5 steps with a
    clean reference and snapshots at steps 1, 10 and 20: ``(run, clean, noisy)``."""
    import dipkit
    from dipkit.degradations import GaussianNoise

    clean = dipkit.images.sample("astronaut", size=64)
    noisy = GaussianNoise(25 / 255).observe(clean, seed=0)
    run = dipkit.fit(dipkit.decoder(channels=8, depth=4), noisy, steps=20, probe_every=5, clean=clean,
                     snapshot_every=10, progress=False)
    return run, clean, noisy
