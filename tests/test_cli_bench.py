"""``dipkit bench`` end to end: the CSV it appends, the summary it prints, Ctrl-C, bad input.

The runs are 20-step fits of the quick profile on two generated 64² images (a few seconds each);
bad input is checked in this process through :func:`dipkit.cli.main` (the same code path) and
once in a subprocess, for what the shell sees.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dipkit import bench, images
from dipkit.cli import main
from dipkit.degradations import bernoulli_mask
from test_cli import check_one_line_error as check_restore_error  # the same one-line error checks

ENV = {**os.environ, "DIPKIT_PROFILE": "quick", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "dipkit", "bench", *map(str, args)], cwd=cwd, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """imgs/ (two RGB images, one 64x96), masked/ (a gray image 128² and its mask), empty/, and an
    existing results file."""
    d = tmp_path_factory.mktemp("bench")
    (d / "imgs").mkdir()
    images.save(images.sample("astronaut", size=64), d / "imgs" / "astronaut.png")
    images.save(images.sample("coffee", size=(64, 96)), d / "imgs" / "coffee.png")
    (d / "imgs" / "notes.txt").write_text("not an image, ignored\n")
    (d / "masked").mkdir()
    images.save(images.sample("camera", size=128), d / "masked" / "camera.png")
    images.save(bernoulli_mask(128, 128, 0.5, seed=1), d / "masked" / "camera_mask.png")
    (d / "empty").mkdir()
    (d / "old.csv").write_text("keep me\n")
    return d


@pytest.fixture(scope="module")
def denoise_run(folder):
    p = start("denoise", "imgs", "-o", "r.csv", "--steps", "20", "--seeds", "0,1", "--summary", "s.md",
              cwd=folder)
    stdout, stderr = p.communicate(timeout=600)
    return p.returncode, stdout, stderr


def cell_means(table: str) -> dict:
    """{method: {column: mean}} from a summary table's 'mean ± std' cells."""
    lines = table.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = {h: float(c.split("±")[0]) for h, c in zip(header[1:], cells[1:]) if c != "–"}
    return out


def test_run_writes_csv_and_summary(folder, denoise_run):
    rc, stdout, stderr = denoise_run
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    rows = bench.read_csv(folder / "r.csv")
    assert len(rows) == 2 * 2 * 2                                   # images × methods × seeds
    assert {(r["image"], r["method"], r["seed"]) for r in rows} == {
        (i, m, s) for i in ("astronaut", "coffee") for m in ("paper", "dip") for s in (0, 1)}
    assert all(r["task"] == "denoise" and r["steps_run"] <= 20 for r in rows)
    assert len(re.findall(r"^\[\d/8\] ", stdout, flags=re.M)) == 8   # one line per run as it ends


def test_csv_matches_the_summary(folder, denoise_run):
    """The means recomputed from the CSV are the summary's, in the file and on stdout."""
    rows = bench.read_csv(folder / "r.csv")
    written = (folder / "s.md").read_text()
    assert written.strip() in denoise_run[1]
    means = cell_means(written)
    assert set(means) == {"paper", "dip"}
    for method in ("paper", "dip"):
        mine = [r for r in rows if r["method"] == method]
        for column in ("psnr", "oracle_psnr", "final_psnr", "stop_step", "seconds"):
            assert means[method][column] == pytest.approx(np.mean([r[column] for r in mine]), abs=0.0051)
        gap = np.mean([r["oracle_psnr"] - r["psnr"] for r in mine])
        assert means[method]["gap_paper"] == pytest.approx(gap, abs=0.0051)


def test_the_two_sizes_and_the_mask(folder, capsys, monkeypatch):
    """--resize shrinks the whole 128² image (and its mask) to 64²; --crop 64 cuts its centre:
    two different observations, so different PSNRs."""
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    for option in ("--resize", "--crop"):
        rc = main(["bench", "inpaint", "masked", "-o", f"inp{option}.csv", option, "64", "--steps", "5",
                   "--methods", "paper", "--seeds", "3", "--quiet"])
        assert rc == 0, capsys.readouterr().err
    resized, cropped = bench.read_csv(folder / "inp--resize.csv"), bench.read_csv(folder / "inp--crop.csv")
    assert len(resized) == len(cropped) == 1 and resized[0]["seed"] == 3
    assert resized[0]["psnr"] != pytest.approx(cropped[0]["psnr"], abs=1e-3)
    assert "| paper |" in capsys.readouterr().out


def test_force_overwrites(folder, capsys, monkeypatch):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    (folder / "again.csv").write_text("old\n")
    rc = main(["bench", "deblock", "imgs", "-o", "again.csv", "--force", "--steps", "2", "--methods", "paper",
               "--seeds", "0", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    rows = bench.read_csv(folder / "again.csv")
    assert [r["image"] for r in rows] == ["astronaut", "coffee"] and rows[0]["task"] == "deblock"


def test_ctrl_c_keeps_the_rows(tmp_path):
    """SIGINT after two rows: exit 130, the rows measured so far are in the CSV, no traceback."""
    images.save(images.sample("astronaut", size=64), tmp_path / "a.png")
    csv = tmp_path / "r.csv"
    p = start("denoise", tmp_path, "-o", csv, "--steps", "20", "--methods", "paper", "--seeds",
              ",".join(map(str, range(50))), cwd=tmp_path)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) >= 3:   # header + two rows
            break
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, (stdout, stderr)
    assert "interrupted after" in stderr and "Traceback" not in stderr
    rows = bench.read_csv(csv)
    assert 2 <= len(rows) < 50 and [r["seed"] for r in rows] == list(range(len(rows)))
    assert f"wrote {csv} ({len(rows)} rows)" in stdout                # the partial summary


#: Bad input: arguments after ``dipkit bench`` and a word the one-line message must contain.
ERRORS = {
    "missing folder": (["denoise", "nope", "-o", "x.csv"], "no such folder"),
    "no images": (["denoise", "empty", "-o", "x.csv"], "no images"),
    "folder is a file": (["denoise", "old.csv", "-o", "x.csv"], "not a folder"),
    "unknown method": (["denoise", "imgs", "-o", "x.csv", "--methods", "paper,bm3d"], "'bm3d'"),
    "empty method": (["denoise", "imgs", "-o", "x.csv", "--methods", "paper,"], "--methods"),
    "seeds not numbers": (["denoise", "imgs", "-o", "x.csv", "--seeds", "0,one"], "--seeds"),
    "negative seed": (["denoise", "imgs", "-o", "x.csv", "--seeds", "-1"], "--seeds"),
    "repeated seed": (["denoise", "imgs", "-o", "x.csv", "--seeds", "1,1"], "repeats"),
    "output exists": (["denoise", "imgs", "-o", "old.csv"], "--force"),
    "summary exists": (["denoise", "imgs", "-o", "x.csv", "--summary", "old.csv"], "--force"),
    "same file twice": (["denoise", "imgs", "-o", "x.csv", "--summary", "x.csv"], "same file"),
    "output folder missing": (["denoise", "imgs", "-o", "no/x.csv"], "does not exist"),
    "output is a folder": (["denoise", "imgs", "-o", "imgs"], "folder"),
    "resize and crop": (["denoise", "imgs", "-o", "x.csv", "--resize", "64", "--crop", "64"], "not allowed"),
    "resize too small": (["denoise", "imgs", "-o", "x.csv", "--resize", "16"], "--resize"),
    "unknown task": (["enhance", "imgs", "-o", "x.csv"], "invalid choice"),
    "bad steps": (["denoise", "imgs", "-o", "x.csv", "--steps", "0"], "--steps"),
    "no output": (["denoise", "imgs"], "--output"),
}


def check_one_line_error(rc, stderr, word):
    check_restore_error(rc, stderr, word)
    assert stderr.startswith("dipkit bench: error: ")


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_one_line_exit_2(folder, case, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    args, word = ERRORS[case]
    rc = main(["bench", *args])
    out, err = capsys.readouterr()
    check_one_line_error(rc, err, word)
    assert out == ""                                   # refused before anything ran
    assert (folder / "old.csv").read_text() == "keep me\n" and not (folder / "x.csv").exists()


def test_bad_input_in_the_shell(folder):
    p = start("denoise", "imgs", "-o", "x.csv", "--methods", "bm3d", cwd=folder)
    _, stderr = p.communicate(timeout=120)
    check_one_line_error(p.returncode, stderr, "bm3d")


def test_help_lists_the_options():
    p = start("--help", cwd=".")
    stdout, _ = p.communicate(timeout=120)
    assert p.returncode == 0 and "examples:" in stdout
    for option in ("--methods", "--seeds", "--resize", "--crop", "--steps", "--profile", "--device",
                   "--summary", "--force", "--quiet", "--eswmv-patience"):
        assert option in stdout
