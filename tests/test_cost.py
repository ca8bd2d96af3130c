"""The measured cost model: a few timed steps of a copy of the network, extrapolated."""

import pytest
import torch

import dipkit
from dipkit import cost
from dipkit.errors import DipkitError


def test_the_estimate_times_a_copy_and_leaves_the_fit_alone():
    model = dipkit.decoder(channels=8, depth=3, seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    e = cost.estimate(model, 32, 32, steps=400, probe_every=10)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # weights untouched
    assert torch.equal(rng, torch.get_rng_state())                              # random state untouched
    assert e.seconds == pytest.approx(e.step_seconds * (400 + cost.PROBE_SHARE * 40))
    assert e.step_seconds > 0 and e.device == "cpu"
    assert "400 steps, measured on cpu" in e.describe() and e.describe().startswith("about ")


def test_a_bigger_fit_is_predicted_to_take_longer():
    small = cost.seconds_per_step(dipkit.decoder(channels=8, depth=3), 16, 16, repeats=3)
    big = cost.seconds_per_step(dipkit.decoder(channels=32, depth=3), 96, 96, repeats=3)
    assert big > small


@pytest.mark.parametrize("kwargs, message", [({"steps": 0}, "steps must be a positive integer"),
                                             ({"steps": 10.5}, "steps must be a positive integer")])
def test_bad_budgets_say_what_to_do(kwargs, message):
    with pytest.raises(DipkitError, match=message):
        cost.estimate(dipkit.decoder(channels=4, depth=2), 8, 8, **kwargs)


def test_durations_read_as_a_person_would_say_them():
    assert cost._duration(42) == "42 s" and cost._duration(600) == "10 min" and cost._duration(9000) == "2.5 h"
