"""Every chapter opens in Colab at the release its outputs were made with, and installs it."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))

_spec = importlib.util.spec_from_file_location("colab", REPO / "book" / "colab.py")
colab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(colab)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_the_pin_comes_from_the_project_version():
    import dipkit
    assert colab.tag() == f"v{dipkit.__version__}"
    assert colab.install().endswith(f'@v{dipkit.__version__}"')


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_a_chapter_opens_and_installs_the_pinned_release(path):
    cells = _cells(path)
    assert colab.badge(path.name) in "".join(cells[0]["source"]), "run `make pin` (python book/colab.py)"
    setup = next(c for c in cells if c["cell_type"] == "code")
    source = "".join(setup["source"])
    assert colab.install() in source, "run `make pin` (python book/colab.py)"
    assert 'if "google.colab" in sys.modules:' in source     # installs only in Colab


def test_pinning_rewrites_an_old_badge_and_install(tmp_path):
    old = REPO / "notebooks" / CHAPTERS[0].name
    text = old.read_text().replace(colab.tag(), "main").replace(f'@{colab.tag()}\\"', '\\"')
    copy = tmp_path / CHAPTERS[0].name
    copy.write_text(text)
    assert colab.pin(copy) and copy.read_text() == old.read_text()
    assert not colab.pin(copy)                                 # a pinned chapter stays as it is
