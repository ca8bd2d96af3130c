"""The restoration pipeline (:mod:`dipkit.restore`): padding undone on every output, the task's
degradation and finish, what the Run records, and clear errors for bad input.

The fits are 20 steps of an 8-channel decoder of depth 3 (multiple 8) on images of 50 × 37
pixels: a second or so each on a CPU.
"""

import pytest
import torch

import dipkit
from dipkit.degradations import GaussianNoise, Inpainting, bernoulli_mask
from dipkit.errors import DipkitError, ShapeError
from dipkit.presets import PAPER, Profile
from dipkit.restore import enhance_detail, prepare, preset_for, restore
from dipkit.stopping import StoppingRule

TINY = Profile("quick", image_size=64, channels=8, depth=3, steps=20, probe_every=5, seeds=1)
H, W = 50, 37


class FirstProbe(StoppingRule):
    """A monitored rule that fires at the first probe, so that the Run has a detection output."""

    def update(self, step, output, readings) -> bool:
        self.selected_step = self.stopped_at = step
        return True


@pytest.fixture(scope="module")
def clean():
    return dipkit.images.sample("astronaut", size=(H, W))


@pytest.fixture(scope="module")
def noisy(clean):
    return GaussianNoise(25 / 255).observe(clean, seed=0)


def test_every_output_comes_back_at_the_input_size(clean, noisy):
    run = restore("denoise", noisy, profile=TINY, clean=clean, snapshot_every=10, progress=False,
                  monitor={"first": FirstProbe()})
    shape = (1, 3, H, W)
    assert run.final.shape == run.stopped.shape == run.best.shape == shape
    assert run.snapshots and all(x.shape == shape for x in run.snapshots.values())
    assert run.detections["first"].output.shape == shape
    record = run.config["restore"]
    assert (record["task"], record["method"], record["height"], record["width"]) == ("denoise", "paper", H, W)
    assert record["padding"] == dict(top=3, bottom=3, left=1, right=2)        # 50 x 37 -> 56 x 40
    assert record["sigma_source"] == "estimated" and abs(record["sigma"] - 25 / 255) < 0.2 * 25 / 255
    assert run.steps_run == 20


def test_the_padding_is_reflection_and_undone_exactly(noisy):
    r = prepare("denoise", noisy, profile=TINY)
    assert r.observation.shape == (1, 3, 56, 40)
    assert torch.equal(r.padding.undo(r.observation), noisy)
    assert torch.equal(r.observation[..., 2, 1:38], noisy[..., 1, :])       # row -1 mirrors row 1


def test_a_given_sigma_is_recorded(noisy):
    run = restore("denoise", noisy, sigma=20 / 255, profile=TINY, steps=10, progress=False)
    record = run.config["restore"]
    assert record["sigma"] == pytest.approx(20 / 255) and record["sigma_source"] == "given"
    assert "sigma=0.0784" in run.config["degradation"]


def test_inpainting_pads_the_mask_and_fits(clean):
    mask = bernoulli_mask(H, W, 0.5, seed=1)
    y = Inpainting(mask).observe(clean)
    r = prepare("inpaint", y, mask=mask, profile=TINY, clean=clean)
    assert r.degradation.mask.shape[-2:] == (56, 40)
    assert torch.equal(r.padding.undo(r.degradation.mask), mask.reshape(1, 1, H, W))
    run = r.run(progress=False)
    assert run.stopped.shape == (1, 3, H, W)
    assert run.config["restore"]["known_fraction"] == pytest.approx(float(mask.float().mean()))


def test_held_out_pixels_come_from_the_padded_mask_and_are_recorded(clean):
    from dipkit.degradations import HeldOut
    mask = bernoulli_mask(H, W, 0.5, seed=1)
    r = prepare("inpaint", Inpainting(mask).observe(clean), mask=mask, profile=TINY, heldout=0.1, seed=3)
    assert isinstance(r.degradation, HeldOut) and r.record["heldout"] == 0.1
    held = r.degradation._held(r.observation)
    known = r.degradation.base.mask
    assert held.shape[-2:] == known.shape[-2:] and not (held & ~known).any()   # only known pixels
    assert 0.05 < float(held.sum() / known.sum()) < 0.15                       # about the share asked


def test_the_rules_by_name_take_what_they_need_of_the_task(clean, noisy):
    from dipkit.degradations import JPEG, HeldOut
    from dipkit.stopping import Discrepancy, HeldOutRule
    r = prepare("denoise", noisy, sigma=20 / 255, profile=TINY, stop="discrepancy")
    assert isinstance(r.fit["stop"], Discrepancy) and r.fit["stop"].sigma == pytest.approx(20 / 255)
    gray = dipkit.images.rgb_to_gray(clean)
    r = prepare("deblock", JPEG(10).observe(gray), quality=10, profile=TINY, stop="discrepancy")
    assert 1 / 255 < r.fit["stop"].sigma < 30 / 255                       # a JPEG error, in [0, 1] units
    with pytest.raises(DipkitError, match="give the JPEG quality"):
        prepare("deblock", JPEG(10).observe(gray), profile=TINY, stop="discrepancy")
    mask = bernoulli_mask(H, W, 0.5, seed=1)
    with pytest.raises(DipkitError, match="has none.*HeldOutRule"):
        prepare("inpaint", Inpainting(mask).observe(clean), mask=mask, profile=TINY, stop="discrepancy")
    r = prepare("inpaint", Inpainting(mask).observe(clean), mask=mask, profile=TINY, stop="heldout", steps=400)
    assert isinstance(r.degradation, HeldOut) and r.degradation.fraction == 0.05
    assert isinstance(r.fit["stop"], HeldOutRule) and r.fit["stop"].patience == 100
    # the rule's patience is in the fit's own probe interval, also when the caller changes it
    r = prepare("inpaint", Inpainting(mask).observe(clean), mask=mask, profile=TINY, stop="heldout", steps=400,
                probe_every=7)
    assert r.fit["probe_every"] == 7 and r.fit["stop"].patience % 7 == 0
    r.fit["stop"].bind(7)


def test_auto_is_the_stopping_studys_rule_per_task_and_keeps_a_fixed_budget(clean, noisy):
    import inspect
    from dipkit.degradations import JPEG
    from dipkit.presets import TASKS
    from dipkit.restore import AUTO_STOP
    from dipkit.stopping import Discrepancy
    assert set(AUTO_STOP) == set(TASKS)
    assert inspect.signature(restore).parameters["stop"].default == "auto"   # what a user gets
    r = prepare("denoise", noisy, profile=TINY, stop="auto")
    assert isinstance(r.fit["stop"], Discrepancy) and r.record["sigma_source"] == "estimated"
    assert r.record["stop"] == "auto" and r.record["stop_used"] == AUTO_STOP["denoise"] == "discrepancy"
    gray = dipkit.images.rgb_to_gray(clean)
    assert prepare("deblock", JPEG(10).observe(gray), profile=TINY, stop="auto").fit["stop"] == AUTO_STOP["deblock"]
    mask = bernoulli_mask(H, W, 0.5, seed=1)
    r = prepare("inpaint", Inpainting(mask).observe(clean), mask=mask, profile=TINY, stop="auto")
    assert r.record["stop_used"] == AUTO_STOP["inpaint"]
    # the original DIP and enhance run a fixed budget: 'auto' leaves it
    assert prepare("denoise", noisy, method="dip", profile=TINY, stop="auto").fit["stop"] == "none"
    assert prepare("enhance", clean, profile=TINY, stop="auto").fit["stop"] == "none"
    # prepare's own default is the preset's rule, as the experiments and the benchmark use it
    r = prepare("denoise", noisy, profile=TINY)
    assert r.fit["stop"] == "paper" and r.record["stop"] is None


def test_enhance_adds_the_detail_to_every_output():
    x = dipkit.images.sample("camera", size=(H, W))
    run = restore("enhance", x, profile=TINY, steps=10, snapshot_every=5, progress=False)
    assert run.config["restore"]["finish"] is not None
    for out in (run.final, run.stopped, *run.snapshots.values()):
        assert out.shape == x.shape and bool((out >= x - 1e-6).all())
    f = torch.full_like(x, 0.5)
    assert torch.equal(enhance_detail(x, f), (x + (x - f).clamp(0, 1)).clamp(0, 1))


def test_inpainting_without_a_mask_says_what_to_pass(noisy):
    with pytest.raises(DipkitError, match=r"inpainting needs the mask of known pixels: pass mask=\.\.\. "
                                          r"\(1 = known\)"):
        restore("inpaint", noisy, profile=TINY, progress=False)


def test_a_mask_of_another_size_is_a_shape_error(noisy):
    with pytest.raises(ShapeError, match="the mask is 32x32 .* the observation is 50x37"):
        restore("inpaint", noisy, mask=bernoulli_mask(32, 32, 0.5), profile=TINY, progress=False)


@pytest.mark.parametrize("call, error, message", [
    (dict(task="sharpen"), DipkitError, "unknown task 'sharpen'"),
    (dict(method="bm3d"), DipkitError, "unknown method 'bm3d'"),
    (dict(mask=torch.ones(H, W, dtype=torch.bool)), DipkitError, "mask= is for 'inpaint'"),
    (dict(task="deblock", sigma=0.1), DipkitError, "sigma= is for 'denoise'"),
    (dict(degradation=Inpainting(torch.ones(H, W))), DipkitError, "degradation="),
    (dict(clean=torch.rand(1, 3, 8, 8)), ShapeError, "clean image"),
])
def test_bad_arguments_fail_before_any_fit(noisy, call, error, message):
    kwargs = {"task": "denoise", "profile": TINY, **call}
    with pytest.raises(error, match=message):
        prepare(kwargs.pop("task"), noisy, **kwargs)


def test_an_image_smaller_than_the_network_takes():
    with pytest.raises(ShapeError, match="too small: restore needs at least 16x16"):
        prepare("denoise", torch.rand(1, 1, 12, 40), profile=TINY)


def test_methods_presets_and_models():
    assert preset_for("denoise") is PAPER["denoise"]
    dip = preset_for("deblock", "dip")
    assert dip.network == "hourglass" and dip.task == "deblock"
    x = torch.rand(1, 1, 32, 32)
    assert prepare("deblock", x, method="dip", profile=TINY).model.config["kind"] == "hourglass"
    own = dipkit.decoder(out_channels=1, channels=4, depth=2)
    r = prepare("deblock", x, quality=10, profile=TINY, model=own, steps=7, lr=0.01)
    assert r.model is own and r.observation.shape == x.shape and r.padding.is_identity
    assert (r.fit["steps"], r.fit["lr"]) == (7, 0.01) and repr(r.degradation) == "JPEG(quality=10)"
    assert prepare("deblock", x, profile=TINY).record["quality"] is None


def test_restore_is_exported():
    assert dipkit.restore is restore and "restore" in dipkit.__all__
