"""Pin every chapter's Colab badge and set-up install to one release: ``v`` + pyproject's version.

The committed outputs of the chapters were made by the dipkit of this repository at its version
(every stored record carries it in its provenance), so a chapter opened in Colab must install
that version, not whatever the main branch holds by then. One place says which: the ``version``
in ``pyproject.toml``; the release tag is ``v<version>`` (``make release`` creates it), and the
repository's address is ``_config.yml``'s ``repository.url``. This script writes both into each
chapter (the badge opens the chapter at that tag; the set-up cell installs dipkit from it);
``tests/test_chapters.py`` checks that every chapter agrees with it.

Usage: ``python book/colab.py`` (``make pin``) after changing the version.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BADGE = re.compile(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
                   r"\(https://colab\.research\.google\.com/github/[^)]*\)")
# the install line as it stands in the notebook's JSON (its quotes escaped)
INSTALL = re.compile(r'%pip install --quiet \\"dipkit @ git\+[^"\\]*\\"')


def version() -> str:
    """The project's version, from pyproject.toml."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    if not match:
        raise SystemExit("pyproject.toml has no version = \"...\" line")
    return match.group(1)


def repository() -> str:
    """``owner/name`` of the book's repository, from _config.yml's repository.url."""
    match = re.search(r"^\s*url:\s*https://github\.com/([^/\s]+/[^/\s]+?)/?\s*$",
                      (REPO / "_config.yml").read_text(), re.M)
    if not match:
        raise SystemExit("_config.yml has no repository url: https://github.com/OWNER/NAME")
    return match.group(1)


def tag() -> str:
    return f"v{version()}"


def badge(notebook: str) -> str:
    """The chapter's Colab badge, opening it at the release tag."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{repository()}/blob/{tag()}/notebooks/{notebook})")


def install() -> str:
    """The set-up cell's install line: dipkit at the release tag."""
    return f'%pip install --quiet "dipkit @ git+https://github.com/{repository()}@{tag()}"'


def pin(path: Path) -> bool:
    """Rewrite one chapter's badge and install line; True when it changed."""
    text = path.read_text()
    new = BADGE.sub(lambda m: badge(path.name), text)
    new = INSTALL.sub(lambda m: json.dumps(install())[1:-1], new)
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = [p.name for p in sorted((REPO / "notebooks").glob("[0-9]*.ipynb")) if pin(p)]
    print(f"pinned to {tag()} of {repository()}: " + (", ".join(changed) if changed else "nothing changed"))
    sys.exit(0)
