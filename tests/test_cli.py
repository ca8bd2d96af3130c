"""``dipkit restore`` end to end, as a user runs it: ``python -m dipkit`` in a subprocess.

Every run starts a Python that imports torch (about 1.5 s), so the runs are started all at once
by one module fixture (one thread each) and collected by the tests that read them; the fits are
20 steps of the quick profile on 64² images. The bad-input cases call :func:`dipkit.cli.main`
in this process (the same code path, milliseconds each) and a few of them also run as a
subprocess, to check what the shell sees: one line on stderr, exit status 2, no traceback.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

import dipkit
from dipkit import images
from dipkit.cli import main
from dipkit.degradations import GaussianNoise, block_mask

ENV = {**os.environ, "DIPKIT_PROFILE": "quick", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
FAST = ["--steps", "20"]


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "dipkit", *map(str, args)], cwd=cwd, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def make_files(d):
    """The test images, in folder d."""
    rgb = images.sample("astronaut", size=64)
    images.save(rgb, d / "rgb.png")
    images.save(GaussianNoise(25 / 255).observe(rgb, seed=1), d / "noisy.png")
    images.save(images.sample("camera", size=(70, 90)), d / "gray_70x90.png")
    images.save(images.sample("camera", size=64), d / "gray.jpg", quality=10)
    images.save(rgb, d / "rgb16.png", bit_depth=16)
    a = np.rint(images.to_numpy(rgb) * 255).astype(np.uint8)
    Image.fromarray(np.dstack([a, np.full(a.shape[:2], 200, np.uint8)])).save(d / "rgba.png")
    images.save(block_mask(64, 64), d / "mask.png")
    images.save(block_mask(32, 32), d / "mask_32.png")
    painted = rgb.clone()
    painted[..., 10:20, 10:30] = torch.tensor([1.0, 0.0, 1.0]).view(1, 3, 1, 1)
    images.save(painted, d / "magenta.png")
    images.save(images.sample("camera", size=40), d / "small.png")
    (d / "text.png").write_text("this is not an image\n")
    (d / "empty.png").write_bytes(b"")
    images.save(rgb, d / "exists.png")
    (d / "sub").mkdir()
    os.symlink(d / "rgb.png", d / "link.png")


#: Bad input: arguments and a word the one-line message must contain.
ERRORS = {
    "missing input": (["denoise", "nope.png", "-o", "o.png"], "no such file"),
    "not an image": (["denoise", "text.png", "-o", "o.png"], "not an image"),
    "empty file": (["denoise", "empty.png", "-o", "o.png"], "empty"),
    "too small": (["denoise", "small.png", "-o", "o.png"], "too small"),
    "mask size": (["inpaint", "rgb.png", "--mask", "mask_32.png", "-o", "o.png"], "mask"),
    "clean size": (["denoise", "rgb.png", "--clean", "gray_70x90.png", "-o", "o.png"], "reference"),
    "no mask": (["inpaint", "rgb.png", "-o", "o.png"], "--mask"),
    "unknown task": (["sharpen", "rgb.png", "-o", "o.png"], "invalid choice"),
    "bad sigma": (["denoise", "rgb.png", "--sigma", "abc", "-o", "o.png"], "--sigma"),
    "bad quality": (["deblock", "rgb.png", "--quality", "500", "-o", "o.png"], "--quality"),
    "bad steps": (["denoise", "rgb.png", "--steps", "0", "-o", "o.png"], "--steps"),
    "bad colour": (["inpaint", "rgb.png", "--mask-color", "notacolour", "-o", "o.png"], "colour"),
    "bad device": (["denoise", "rgb.png", "--device", "tpu", "-o", "o.png"], "--device"),
    "no output": (["denoise", "rgb.png"], "--output"),
    "option of another task": (["denoise", "rgb.png", "--mask", "mask.png", "-o", "o.png"], "inpaint"),
    "simulate and clean": (["denoise", "rgb.png", "--simulate", "--clean", "rgb.png", "-o", "o.png"], "--clean"),
    "output exists": (["denoise", "rgb.png", "-o", "exists.png"], "--force"),
    "output is input": (["denoise", "rgb.png", "-o", "rgb.png", "--force"], "same file"),
    "output is input, relative": (["denoise", "rgb.png", "-o", "sub/../rgb.png", "--force"], "same file"),
    "output is input, symlink": (["denoise", "rgb.png", "-o", "link.png", "--force"], "same file"),
    "output extension": (["denoise", "rgb.png", "-o", "out.xyz"], "extension"),
    "report is a file": (["denoise", "rgb.png", "-o", "o.png", "--report", "rgb.png"], "--report"),
    "no colour match": (["inpaint", "rgb.png", "--mask-color", "#00ff00", "-o", "o.png"], "no pixel"),
}
if not torch.cuda.is_available():
    ERRORS["no cuda"] = (["denoise", "rgb.png", "--device", "cuda", "-o", "o.png"], "CUDA")

#: Runs that succeed: the arguments after ``python -m dipkit``.
RUNS = {
    "denoise simulate": ["denoise", "rgb.png", "--simulate", "--sigma", "25", "-o", "den_sim.png"],
    "denoise clean": ["denoise", "noisy.png", "--clean", "rgb.png", "-o", "den_clean.png", "--report", "report"],
    "deblock": ["deblock", "gray.jpg", "-o", "deblocked.png"],
    "inpaint mask": ["inpaint", "rgb.png", "--simulate", "--mask", "mask.png", "-o", "inp_mask.png"],
    "inpaint colour": ["inpaint", "magenta.png", "--mask-color", "255,0,255", "-o", "inp_colour.png"],
    "enhance": ["enhance", "rgb.png", "-o", "enhanced.png", "--quiet"],
    "gray odd size": ["denoise", "gray_70x90.png", "-o", "gray_out.png", "--quiet"],
    "16 bit": ["denoise", "rgb16.png", "--sigma", "20", "-o", "out16.png", "--quiet"],
    "rgba": ["denoise", "rgba.png", "-o", "rgba_out.png"],
    "force": ["denoise", "rgb.png", "-o", "exists.png", "--force", "--quiet"],
}
RUNS = {name: ["restore", *args, *FAST] for name, args in RUNS.items()}
RUNS.update({"help": ["--help"], "restore help": ["restore", "--help"]})


#: Bad-input cases that also run as a subprocess.
SUBPROCESS_ERRORS = ("unknown task", "not an image", "output is input, symlink", "mask size")


class Runs(dict):
    """{name: Popen}, each collected on first access as (returncode, stdout, stderr)."""

    def __getitem__(self, name):
        value = super().__getitem__(name)
        if isinstance(value, subprocess.Popen):
            stdout, stderr = value.communicate(timeout=600)
            value = self[name] = (value.returncode, stdout, stderr)
        return value


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    make_files(d)
    return d


@pytest.fixture(scope="module")
def results(folder):
    """Every run and the subprocess error cases, started at once."""
    runs = Runs({name: start(*args, cwd=folder) for name, args in RUNS.items()})
    runs.update({name: start("restore", *ERRORS[name][0], cwd=folder) for name in SUBPROCESS_ERRORS})
    return runs, folder


def check_one_line_error(rc, stderr, word):
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert word.lower() in stderr.lower(), stderr


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_one_line_exit_2(folder, case, monkeypatch, capsys):
    monkeypatch.chdir(folder)
    monkeypatch.setenv("DIPKIT_PROFILE", "quick")
    args, word = ERRORS[case]
    rc = main(["restore", *args])
    out, err = capsys.readouterr()
    check_one_line_error(rc, err, word)


@pytest.mark.parametrize("case", SUBPROCESS_ERRORS)
def test_bad_input_in_the_shell(results, case):
    rc, stdout, stderr = results[0][case]
    check_one_line_error(rc, stderr, ERRORS[case][1])


def test_output_is_never_overwritten_by_a_refused_run(results):
    d = results[1]
    assert images.load(d / "rgb.png").shape == (1, 3, 64, 64)
    assert not (d / "o.png").exists()


@pytest.mark.parametrize("case", [c for c in RUNS if "help" not in c])
def test_runs_succeed(results, case):
    rc, stdout, stderr = results[0][case]
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert "wrote" in stdout


@pytest.mark.parametrize("case, name, size, mode, depth", [
    ("denoise simulate", "den_sim.png", (64, 64), "RGB", 8),
    ("deblock", "deblocked.png", (64, 64), "L", 8),
    ("gray odd size", "gray_out.png", (90, 70), "L", 8),
    ("16 bit", "out16.png", (64, 64), "RGB;16", 16),
    ("rgba", "rgba_out.png", (64, 64), "RGB", 8),
    ("inpaint colour", "inp_colour.png", (64, 64), "RGB", 8),
])
def test_output_keeps_size_mode_and_bit_depth(results, case, name, size, mode, depth):
    assert results[0][case][0] == 0
    info = images.image_info(results[1] / name)
    assert (info.width, info.height) == size
    assert (info.mode, info.bit_depth, info.has_alpha) == (mode, depth, False)


def test_metrics_with_a_reference(results):
    for case in ("denoise simulate", "denoise clean", "inpaint mask"):
        stdout = results[0][case][1]
        assert "PSNR" in stdout and "SSIM" in stdout and "observation:" in stdout, stdout
    assert "noise level: σ = 25.0/255 (given)" in results[0]["denoise simulate"][1]


def test_sigma_is_estimated_and_printed(results):
    stdout = results[0]["denoise clean"][1]
    line = next(s for s in stdout.splitlines() if s.startswith("noise level"))
    assert "estimated" in line
    assert 15 < float(line.split("σ = ")[1].split("/")[0]) < 35   # the image has σ = 25


def test_rgba_note(results):
    assert "alpha" in results[0]["rgba"][2]


def test_mask_colour_marks_the_painted_pixels_missing(results):
    stdout = results[0]["inpaint colour"][1]
    assert f"mask: {100 * (1 - 200 / 4096):.1f}% of the pixels known" in stdout


def test_enhance_adds_detail(results):
    """PROTOCOL §6: OUTPUT = clip(x + clip(x − f, 0, 1), 0, 1) ≥ x."""
    d = results[1]
    x, out = images.load(d / "rgb.png"), images.load(d / "enhanced.png")
    assert results[0]["enhance"][1].strip().startswith("wrote")   # --quiet: no notes
    assert bool((out >= x - 0.5 / 255).all()) and float((out - x).abs().max()) > 0


def test_report_files(results):
    d = results[1] / "report"
    settings = json.loads((d / "settings.json").read_text())
    assert settings["command"][:3] == ["dipkit", "restore", "denoise"]
    assert settings["options"]["clean"] == "rgb.png" and settings["seed"] == 0
    assert settings["versions"]["dipkit"] == dipkit.__version__
    assert settings["versions"]["torch"] == torch.__version__
    assert settings["fit"]["steps"] == 20 and settings["device"] == "cpu"
    assert "stop_step" in settings and settings["timings"]["fit_s"] > 0
    header = (d / "history.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss", "psnr", "ratio", "band1", "band5"} <= set(header)
    assert Image.open(d / "curves.png").format == "PNG"


def test_help_has_examples(results):
    rc, stdout, _ = results[0]["help"]
    assert rc == 0 and "restore" in stdout and "examples:" in stdout
    rc, stdout, _ = results[0]["restore help"]
    assert rc == 0 and "examples:" in stdout
    for option in ("--simulate", "--clean", "--sigma", "--quality", "--mask", "--mask-color",
                   "--lambda", "--upsample", "--steps", "--stop", "--seed", "--device",
                   "--profile", "--report", "--quiet", "--force", "--yes"):
        assert option in stdout


def test_ctrl_c_writes_the_output_so_far(tmp_path):
    """A long run on the CPU warns (no TTY: it goes on); SIGINT after the first probes stops it,
    and the output and the report are still written."""
    images.save(images.sample("astronaut", size=64), tmp_path / "in.png")
    p = start("restore", "denoise", "in.png", "-o", "out.png", "--steps", "1000000", "--report",
              "rep", cwd=tmp_path)
    stderr = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: p.stderr.read(1), "")))
    reader.start()
    deadline = time.monotonic() + 120
    while "loss=" not in "".join(stderr) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)            # the progress bar shows the loss after the first probe
    p.send_signal(signal.SIGINT)
    p.wait(timeout=120)
    reader.join(timeout=10)
    stdout = p.stdout.read()
    err = "".join(stderr)
    assert p.returncode == 130, (stdout, err)
    assert "warning:" in err and "min" in err      # the long-run estimate
    assert "interrupted at step" in err and "Traceback" not in err
    assert images.image_info(tmp_path / "out.png").width == 64
    settings = json.loads((tmp_path / "rep" / "settings.json").read_text())
    assert settings["interrupted"] is True and settings["steps_run"] >= 10
    assert len((tmp_path / "rep" / "history.csv").read_text().splitlines()) >= 2
