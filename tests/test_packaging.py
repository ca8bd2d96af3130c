"""The package carries what the chapters read: a wheel holds every stored result of the book."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dipkit
from dipkit.experiments.store import default_root

REPO = Path(__file__).resolve().parents[1]


def test_the_stored_results_are_the_package_s_own(monkeypatch):
    monkeypatch.delenv("DIPKIT_RESULTS", raising=False)
    assert default_root() == Path(dipkit.__file__).resolve().parent / "results"


def test_a_wheel_carries_every_stored_result(tmp_path):
    # build from a copy, so that nothing is written into the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "dipkit", src / "dipkit", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(src)], check=True, timeout=300)
    wheel, = (tmp_path / "wheel").glob("dipkit-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    stored = {p.relative_to(REPO).as_posix() for p in (REPO / "dipkit" / "results").rglob("*") if p.is_file()}
    assert stored, "no stored results found"
    assert stored <= inside, f"missing from the wheel: {sorted(stored - inside)}"
    assert any(n.startswith("dipkit/results/quick/") for n in inside)
    assert "dipkit/results/bench/meta.json" in inside
