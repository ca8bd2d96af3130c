"""The chapters' claim table."""

from dipkit.claims import ClaimTable


def test_rows_and_verdicts():
    t = ClaimTable("quick, 3 seeds")
    t.add("a | b", "x", "1.0 ± 0.1", True)
    t.add("c", "y", "2", False)
    t.add("d", "z", "3", "holds at 128² only")
    md = t.markdown().splitlines()
    assert md[0] == "| claim | paper | ours (quick, 3 seeds) | verdict |"
    assert md[2] == "| a \\| b | x | 1.0 ± 0.1 | holds |"
    assert md[3].endswith("| does not hold |") and md[4].endswith("| holds at 128² only |")
    assert len(t) == 3 and t._repr_markdown_() == t.markdown()
