"""The benchmark runner: rows, CSV round trip, summary."""

import math

import numpy as np
import torch
import pytest

import dipkit
from dipkit import bench
from dipkit.errors import DipkitError
from dipkit.images import NamedImage
from dipkit.presets import Profile

TINY = Profile("quick", image_size=64, channels=8, depth=4, steps=40, probe_every=5, seeds=2)


@pytest.fixture(scope="module")
def rows():
    items = [NamedImage("astronaut", dipkit.images.sample("astronaut", size=(64, 80))),
             NamedImage("coffee", dipkit.images.sample("coffee", size=64))]
    return bench.run("denoise", items, methods=("paper", "dip"), seeds=(0, 1), profile=TINY, steps=30)


def test_rows_have_every_column(rows):
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert set(r) == set(bench.COLUMNS)
        assert r["oracle_psnr"] >= r["psnr"] - 1e-4  # the oracle is the best probe
        assert 0 < r["ssim"] <= 1 and r["seconds"] > 0
        assert r["steps_run"] <= 30


def test_seeds_differ_and_repeat(rows):
    a = [r for r in rows if r["image"] == "coffee" and r["method"] == "paper"]
    assert a[0]["psnr"] != a[1]["psnr"]
    again = bench.run("denoise", [NamedImage("coffee", dipkit.images.sample("coffee", size=64))],
                      methods=("paper",), seeds=(0,), profile=TINY, steps=30)
    assert again[0]["psnr"] == pytest.approx(a[0]["psnr"], abs=1e-6)


def test_csv_round_trip_and_summary(tmp_path, rows):
    path = tmp_path / "r.csv"
    bench.write_csv(rows, path)
    back = bench.read_csv(path)
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        for k in bench.COLUMNS:
            if isinstance(a[k], float):
                assert b[k] == pytest.approx(a[k], rel=1e-9)
            else:
                assert b[k] == a[k]
    summary = bench.summarize(back)
    paper = [r["psnr"] for r in back if r["method"] == "paper"]
    mean, std, n = summary["paper"]["psnr"]
    assert n == 4 and mean == pytest.approx(np.mean(paper)) and std == pytest.approx(np.std(paper, ddof=1))
    gap = summary["dip"]["gap_paper"][0]
    assert gap == pytest.approx(np.mean([r["oracle_psnr"] - r["psnr"] for r in back if r["method"] == "dip"]))
    table = bench.format_summary(summary)
    assert table.splitlines()[0].startswith("| method | psnr") and len(table.splitlines()) == 4


def test_inpainting_uses_the_folders_mask_and_gray():
    img = dipkit.images.sample("astronaut", size=64)
    mask = dipkit.degradations.block_mask(64, 64, 0.25)
    rows = bench.run("inpaint", [NamedImage("a", img, mask)], methods=("paper",), seeds=(0,), profile=TINY, steps=10)
    assert math.isfinite(rows[0]["psnr"])


def test_bad_task_and_method():
    with pytest.raises(DipkitError, match="tasks"):
        bench.run("enhance", [], profile=TINY)
    with pytest.raises(DipkitError, match="method"):
        bench.run("denoise", [NamedImage("a", dipkit.images.sample("camera", size=64))], methods=("bm3d",), profile=TINY)


def test_downsample_keeps_the_whole_image_and_binary_masks():
    x = torch.zeros(1, 1, 128, 192)
    x[..., :, 96:] = 1.0                                   # right half white
    y = bench.downsample(x, 32)
    assert y.shape == (1, 1, 32, 48) and y.dtype == torch.float32
    assert float(y.mean()) == pytest.approx(0.5)           # area averaging keeps the mean
    assert float(y[..., :, :24].max()) == 0 and float(y[..., :, 24:].min()) == 1
    checker = (torch.arange(128)[:, None] + torch.arange(192)[None, :]) % 2 == 0
    a = bench.downsample(checker[None, None].float(), 32)
    assert torch.allclose(a, torch.full_like(a, 0.5))     # anti-aliased: no aliasing to 0 or 1
    mask = dipkit.degradations.bernoulli_mask(256, 256, 0.5, seed=3)
    m = bench.downsample(mask, 64)
    assert m.dtype == torch.bool and m.shape == (1, 1, 64, 64)
    assert 0.4 < float(m.float().mean()) < 0.6             # still about half known
    assert bench.downsample(x, 128) is x and bench.downsample(x, 500) is x   # never enlarges


def test_resize_and_crop_in_run():
    big = NamedImage("a", dipkit.images.sample("camera", size=(128, 192)),
                     dipkit.degradations.bernoulli_mask(128, 192, 0.5, seed=0))
    seen = []

    def spy(model, y, *args, **kwargs):
        seen.append(tuple(y.shape[-2:]))
        return original(model, y, *args, **kwargs)

    original = bench.fit
    try:
        bench.fit = spy
        bench.run("inpaint", [big], methods=("paper",), seeds=(0,), profile=TINY, steps=2, resize=64)
        bench.run("inpaint", [big], methods=("paper",), seeds=(0,), profile=TINY, steps=2, size=64)
        bench.run("inpaint", [big], methods=("paper",), seeds=(0,), profile=TINY, steps=2, resize=96, size=64)
    finally:
        bench.fit = original
    assert seen == [(64, 96), (64, 64), (64, 64)]
    item = bench.prepare_image(big, "inpaint", None, 64, multiple=16)
    assert item.mask.dtype == torch.bool and item.mask.shape[-2:] == item.image.shape[-2:] == (64, 96)
    assert torch.allclose(item.image, torch.nn.functional.avg_pool2d(big.image, 2))


def test_too_small_and_unknown_method_fail_before_any_fit():
    calls = []
    original = bench.fit
    try:
        bench.fit = lambda *a, **k: calls.append(1)
        items = [NamedImage("a", dipkit.images.sample("camera", size=64))]
        with pytest.raises(DipkitError, match="least side"):
            bench.run("denoise", items, methods=("paper",), seeds=(0,), profile=TINY, resize=8)
        with pytest.raises(DipkitError, match="method"):
            bench.run("denoise", items, methods=("paper", "bm3d"), seeds=(0,), profile=TINY)
    finally:
        bench.fit = original
    assert calls == []


def test_append_csv_writes_the_header_once(tmp_path, rows):
    path = tmp_path / "a.csv"
    for r in rows[:3]:
        bench.append_csv(r, path)
    back = bench.read_csv(path)
    assert len(back) == 3 and [b["psnr"] for b in back] == pytest.approx([r["psnr"] for r in rows[:3]])
    assert path.read_text().count("task,image") == 1


def test_eswmv_patience_scales_with_the_profile_and_can_be_set(monkeypatch):
    assert bench.default_eswmv_patience(dipkit.presets.PROFILES["full"]) == 1000
    assert bench.default_eswmv_patience(dipkit.presets.PROFILES["quick"]) == 200
    made = []
    monkeypatch.setattr(bench, "ESWMV", lambda **kw: made.append(kw) or dipkit.stopping.ESWMV(**kw))
    items = [NamedImage("a", dipkit.images.sample("camera", size=64))]
    bench.run("denoise", items, methods=("paper",), seeds=(0,), profile=TINY, steps=2)
    bench.run("denoise", items, methods=("paper",), seeds=(0,), profile=TINY, steps=2, eswmv_patience=50)
    # in steps: TINY fits 40 steps with probes every 5; the patience is at least 100 steps
    assert made == [dict(window=100, patience=100), dict(window=100, patience=50)]


def test_observations_are_the_fitted_observations():
    item = NamedImage("a", dipkit.images.sample("astronaut", size=(128, 192)))
    rows = bench.observations("denoise", [item], seeds=(0, 1), profile=TINY, resize=64)
    assert [(r["seed"], r["height"], r["width"]) for r in rows] == [(0, 64, 96), (1, 64, 96)]
    assert 19.5 < rows[0]["psnr"] < 21.5 and rows[0]["psnr"] != rows[1]["psnr"]   # σ = 25/255
    clean = bench.downsample(item.image, 64)
    y = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=1)
    assert rows[1]["psnr"] == pytest.approx(float(dipkit.metrics.psnr(y, clean)[0]))
    gray = bench.observations("deblock", [item], seeds=(0,), profile=TINY, size=64)
    assert (gray[0]["height"], gray[0]["width"]) == (64, 64) and 15 < gray[0]["psnr"] < 40


def _row(image, method, seed=0, psnr=25.0, oracle=26.0, final=24.0, eswmv=None):
    return dict(task="denoise", image=image, method=method, seed=seed, psnr=psnr, oracle_psnr=oracle,
                final_psnr=final, eswmv_psnr=eswmv)


def test_rows_pair_up_by_fit_and_give_each_rule_its_gaps():
    rows = [_row("a", "paper", eswmv=25.5), _row("a", "dip", oracle=27.0, final=23.0),
            _row("b", "paper", psnr=24.0, oracle=26.5), _row("b", "dip", eswmv=26.0, oracle=27.0, final=22.0)]
    pairs = bench.by_fit(rows)
    assert list(pairs) == [("a", 0), ("b", 0)] and set(pairs["b", 0]) == {"paper", "dip"}
    gaps = bench.detection_gaps(rows)
    assert gaps["paper's rule, controlled DIP"].tolist() == [1.0, 2.5]
    assert gaps["paper's rule, same fits as ES-WMV"].tolist() == [1.0]      # only where ES-WMV fired
    assert gaps["ES-WMV, controlled DIP"].tolist() == [0.5]
    assert gaps["ES-WMV, plain DIP"].tolist() == [1.0]
    assert gaps["no rule, plain DIP (end)"].tolist() == [4.0, 5.0]


def test_one_value_reads_n_equals_1_not_plus_minus_zero():
    rows = [dict(_row("a", "paper"), ssim=0.8, stop_step=100, oracle_step=90, eswmv_step=None, seconds=1.0)]
    table = bench.format_summary(bench.summarize(rows))
    assert "(n = 1)" in table and "± 0.00" not in table


def test_a_watched_discrepancy_adds_its_columns_its_gap_and_survives_the_csv(tmp_path):
    items = [NamedImage("coffee", dipkit.images.sample("coffee", size=64))]
    rows = bench.run("denoise", items, methods=("paper",), seeds=(0,), profile=TINY, steps=30,
                     watch=("discrepancy",))
    assert {"discrepancy_step", "discrepancy_psnr"} <= set(rows[0])
    path = tmp_path / "w.csv"
    bench.write_csv(rows, path)
    back = bench.read_csv(path)
    assert back[0]["discrepancy_step"] == rows[0]["discrepancy_step"]      # None or an int again
    table = bench.format_summary(bench.summarize(back))
    assert "gap_discrepancy" in table.splitlines()[0]
    with pytest.raises(DipkitError, match="inpainting's known pixels are exact"):
        bench.run("inpaint", items, methods=("paper",), seeds=(0,), profile=TINY, watch=("discrepancy",))
    with pytest.raises(DipkitError, match="can watch the rules"):
        bench.run("denoise", items, methods=("paper",), seeds=(0,), profile=TINY, watch=("heldout",))
