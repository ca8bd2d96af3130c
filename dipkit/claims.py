"""The claim table that ends each chapter: claim | paper | ours | verdict.

A chapter adds a row where it checks a finding, with the numbers it computed (never typed in),
and shows the table at the end. ``verdict`` is a bool (``'holds'`` / ``'does not hold'``) or a
short text for the cases between (``'holds at 128², not at 64²'``).

Examples
--------
>>> from dipkit.claims import ClaimTable
>>> table = ClaimTable("quick profile, 3 seeds")
>>> table.add("the bound removes the decline", "no decline at λ = 2", "drop 0.12 ± 0.05 dB", True)
>>> print(table.markdown())
| claim | paper | ours (quick profile, 3 seeds) | verdict |
| --- | --- | --- | --- |
| the bound removes the decline | no decline at λ = 2 | drop 0.12 ± 0.05 dB | holds |
"""

from __future__ import annotations

from typing import Iterable, Union

import numpy as np

__all__ = ["ClaimTable", "mean_std"]


def mean_std(values: Iterable[float], digits: int = 2, unit: str = "") -> str:
    """``'mean ± std'`` of some numbers (std with ddof 1), for the tables and claims of a chapter.

    One number reads ``'x (n = 1)'``, never ``'x ± 0.00'``: a single value has no spread to show.
    NaN and None are left out; no number at all reads ``'n/a'``.

    >>> mean_std([1.0, 2.0, 3.0], unit=" dB"), mean_std([26.5], unit=" dB"), mean_std([])
    ('2.00 ± 1.00 dB', '26.50 dB (n = 1)', 'n/a')
    """
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return "n/a"
    if v.size == 1:
        return f"{v[0]:.{digits}f}{unit} (n = 1)"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}{unit}"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


class ClaimTable:
    """Rows of (claim, what the paper says, what we measured, verdict), shown as Markdown."""

    def __init__(self, setting: str):
        self.setting = setting
        self.rows = []

    def add(self, claim: str, paper: str, ours: str, verdict: Union[bool, str]) -> None:
        """One claim; a bool verdict reads 'holds' or 'does not hold'."""
        if isinstance(verdict, bool):
            verdict = "holds" if verdict else "does not hold"
        self.rows.append((claim, paper, ours, verdict))

    def markdown(self) -> str:
        lines = [f"| claim | paper | ours ({_cell(self.setting)}) | verdict |", "| --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __len__(self) -> int:
        return len(self.rows)
