"""The benchmark runner: rows, CSV round trip, summary."""

import math

import numpy as np
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
