"""dipkit.memory: the peak-memory estimate of a fit and the clear error when it will not fit."""

import pytest
import torch

import dipkit
from dipkit import memory
from dipkit.errors import DipkitError, ShapeError
from dipkit.memory import _saved_activations


def test_estimate_grows_with_size_batch_and_backtracking():
    model = dipkit.decoder(channels=16, depth=4)
    sizes = [memory.estimate(model, s, s) for s in (32, 64, 128, 256)]
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    # activations dominate at large sizes: about 4x the bytes for 2x the side
    assert 3.5 < (sizes[3] - sizes[2]) / (sizes[2] - sizes[1]) < 4.5
    assert memory.estimate(model, 64, 64, batch=3) > 2.5 * memory.estimate(model, 64, 64)
    assert memory.estimate(model, 64, 64, backtrack=True) > memory.estimate(model, 64, 64)


def test_breakdown_sums_to_the_estimate_and_counts_adam():
    model = dipkit.decoder(channels=16, depth=4)
    parts = memory.breakdown(model, 64, 48)
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["total"] == memory.estimate(model, 64, 48)
    assert parts["parameters"] == 4 * 4 * model.n_parameters()  # param, grad, 2 moments; float32
    assert parts["backtrack"] == 0


@pytest.mark.parametrize("make", [lambda: dipkit.decoder(channels=8, depth=3, lipschitz=1.4),
                                  lambda: dipkit.decoder(channels=8, depth=3, upsample="gaussian"),
                                  lambda: dipkit.hourglass(channels=8, depth=3)])
def test_meta_dry_run_counts_what_autograd_saves_on_the_cpu(make):
    model = make()
    saved_meta, _ = _saved_activations(model, 32, 48, 1, torch.float32)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        model(model.make_code(32, 48))
    assert saved_meta == sum(t.numel() * t.element_size() for t in saved)


def test_check_raises_a_clear_error_with_the_largest_size_that_fits():
    model = dipkit.decoder(channels=16, depth=4)
    need = memory.estimate(model, 256, 256)
    assert memory.check(model, 256, 256, limit=2 * need) == need
    limit = memory.estimate(model, 128, 128) / 0.9 + 1
    with pytest.raises(DipkitError, match=r"256x256 image needs about \d+ MiB .* largest square image "
                                          r"that would fit is 128x128"):
        memory.check(model, 256, 256, limit=limit)
    with pytest.raises(DipkitError, match="even the smallest image"):
        memory.check(model, 256, 256, limit=1000)
    side = memory.largest_size(model, limit * 0.9)
    assert side == 128


def test_fit_stops_at_once_when_memory_is_short(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda device=None: 2**20)
    clean = dipkit.images.sample("astronaut", size=64)
    with pytest.raises(DipkitError, match="needs about"):
        dipkit.fit(dipkit.decoder(channels=16, depth=4), clean, steps=1, progress=False)
    with pytest.raises(DipkitError, match="with 3 members needs about"):
        dipkit.fit_many(dipkit.decoder(channels=16, depth=4), clean, seeds=[0, 1, 2], steps=1, progress=False)


def test_available_and_errors():
    assert memory.available() > 0
    assert memory.available("cpu") == memory.available(torch.device("cpu"))
    model = dipkit.decoder(channels=8, depth=3)
    with pytest.raises(ShapeError):
        memory.estimate(model, 30, 30)
    with pytest.raises(DipkitError, match="batch"):
        memory.estimate(model, 32, 32, batch=0)
    with pytest.raises(DipkitError, match="DIPNetwork"):
        memory.estimate(torch.nn.Conv2d(3, 3, 3), 32, 32)
