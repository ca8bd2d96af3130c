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


def test_mean_std_never_shows_a_spread_for_one_value():
    from dipkit.claims import mean_std
    assert mean_std([1.0, 2.0, 3.0], unit=" dB") == "2.00 ± 1.00 dB"
    assert mean_std([26.456], 1, " dB") == "26.5 dB (n = 1)"
    assert mean_std([float("nan"), None, 2.0]) == "2.00 (n = 1)" and mean_std([]) == "n/a"
