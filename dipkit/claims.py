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

from typing import Union

__all__ = ["ClaimTable"]


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
