"""The experiment runner and the results store: specs, records, resuming, provenance, the CLI.

The fits are 30-step runs of a 16-channel decoder on 64² images (a second or two each), written
to a temporary store.
"""

import json

import numpy as np
import pytest
import torch

import dipkit.experiments as ex
from dipkit.cli import main
from dipkit.errors import DipkitError
from dipkit.presets import Profile

TINY = Profile("quick", image_size=64, channels=16, depth=5, steps=30, probe_every=10, seeds=2)
SWEEP = ex.Experiment("sweep", base={"image": "astronaut", "task": "denoise", "sigma": 25,
                                     "monitor": ["paper", "eswmv"], "probes": ["bands", "ratio"]},
                      axes={"lipschitz": [None, 1.4]}, seeds=2, keep_images=1)


@pytest.fixture
def store(tmp_path):
    return ex.Store(tmp_path / "results")


def test_settings_are_the_grid_times_the_seeds():
    exp = ex.Experiment("e", base={"a": 1}, axes={"x": [1, 2], "y": ["u"]}, seeds=2,
                        variants=[{"x": 3}], per_profile={"full": {"a": 2, "seeds": 1}})
    quick = exp.settings("quick")
    assert [(s["x"], s["seed"]) for s in quick] == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert all(s["a"] == 1 for s in quick)
    assert [(s["a"], s["seed"]) for s in exp.settings("full")] == [(2, 0), (2, 0), (2, 0)]
    assert ex.setting_key({"b": 1, "a": None}) == '{"a":null,"b":1}'
    only = ex.Experiment("v", base={"a": 1}, variants=[{"x": 1}, {"x": 2}], seeds=1)
    assert [s["x"] for s in only.settings("quick")] == [1, 2]              # no point of the base alone
    with pytest.raises(DipkitError, match="unknown profile"):
        exp.settings("huge")


def test_run_stores_one_record_per_fit_with_provenance(store):
    records = ex.run(SWEEP, TINY, store=store, log=None)
    assert len(records) == 4
    rec = records.one(lipschitz=1.4, seed=0)
    assert rec.steps_run == 30 and rec.history["step"].tolist() == [10, 20, 30]
    assert rec.psnr_best == pytest.approx(np.nanmax(rec.history["psnr"]), abs=1e-4)
    assert set(rec.detections) == {"paper", "eswmv"}
    prov = rec.provenance
    assert prov["torch"] == torch.__version__ and prov["threads"] >= 1
    assert prov["cpu_capability"] and prov["date"].endswith("Z") and prov["wall_seconds"] > 0
    # images only for the seeds below keep_images
    assert rec.image("best").shape == (1, 3, 64, 64)
    assert records.one(lipschitz=1.4, seed=1).image("best") is None


def test_run_is_resumable_and_additive(store, monkeypatch):
    ex.run(SWEEP, TINY, store=store, seeds=[0], log=None)
    assert len(store.load("sweep", "quick")) == 2
    fitted = []
    original = ex.runner.fit_setting
    monkeypatch.setattr(ex.runner, "fit_setting", lambda s, *a, **k: (fitted.append(s), original(s, *a, **k))[1])
    ex.run(SWEEP, TINY, store=store, log=None)
    assert [s["seed"] for s in fitted] == [1, 1]  # only the seed not stored yet
    fitted.clear()
    ex.run(SWEEP, TINY, store=store, log=None)
    assert fitted == []
    lines = store.path("sweep", "quick").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["experiment"] == "sweep" for line in lines)


def test_the_log_says_each_fit_and_its_predicted_time_before_it_runs(store):
    import io
    log = io.StringIO()
    ex.run(SWEEP, TINY, store=store, seeds=[0], limit=1, log=log)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith('  fitting {"image":"astronaut"')
    assert "about " in lines[0] and "30 steps, measured on cpu" in lines[0]
    assert lines[1].startswith("[sweep quick] 1/1 ")                # then the record's line


def test_limit_runs_a_sweep_in_pieces(store):
    assert len(ex.run(SWEEP, TINY, store=store, limit=1, log=None)) == 1
    assert len(ex.run(SWEEP, TINY, store=store, limit=2, log=None)) == 3


def test_an_interrupted_last_line_is_skipped(store):
    ex.run(SWEEP, TINY, store=store, seeds=[0], log=None)
    path = store.path("sweep", "quick")
    path.write_text(path.read_text() + '{"key": "cut in the mid')
    assert len(store.load("sweep", "quick")) == 2
    path.write_text('not json\n' + path.read_text())
    with pytest.raises(DipkitError, match="line 1: not a JSON record"):
        store.load("sweep", "quick")


def test_records_statistics(store):
    records = ex.run(SWEEP, TINY, store=store, log=None)
    values = records.values("psnr_best", lipschitz=None)
    assert values.shape == (2,)
    s = records.stat("psnr_best", lipschitz=None)
    assert s["n"] == 2 and s["mean"] == pytest.approx(values.mean()) and s["std"] == pytest.approx(values.std(ddof=1))
    assert "± " in records.fmt("psnr_best", lipschitz=None)
    assert records.fmt("psnr_best", lipschitz=None, seed=0).endswith("(n = 1)")
    assert "(n =" not in records.fmt("psnr_best", count=False, lipschitz=None)
    assert records.fmt("psnr_best", count=False, lipschitz=None).count(" ± ") == 1
    assert records.seeds(lipschitz=1.4) == [0, 1]
    # a rule that never fired has no step: NaN and None are left out of the statistics, not averaged
    assert ex.stat([2.0, float("nan"), None, 4.0]) == {"mean": 3.0, "std": pytest.approx(2 ** 0.5), "min": 2.0,
                                                        "max": 4.0, "n": 2}
    assert ex.stat([float("nan")])["n"] == 0
    with pytest.raises(DipkitError, match="2 records match"):
        records.one(lipschitz=1.4)
    with pytest.raises(DipkitError, match="did not watch"):
        records[0].detection("nope")
    rec = records[0]
    rule_psnr = rec.rule_psnr("paper")
    assert rule_psnr == (rec.detection("paper")["psnr"] if rec.detection("paper")["fired_at"] else rec.psnr_final)


def test_a_record_reads_back_as_a_run(store):
    rec = ex.run(SWEEP, TINY, store=store, seeds=[0], log=None).one(lipschitz=None, seed=0)
    run = rec.as_run()
    assert run.best_psnr == rec.psnr_best and run.psnr_final == pytest.approx(rec.psnr_final, abs=1e-4)
    assert run.history.bands.shape == (3, 5) and run.best.shape == (1, 3, 64, 64)
    assert set(run.detections) == {"paper", "eswmv"}


def test_decline_reads_the_running_mean_so_one_low_probe_is_not_a_decline():
    rising = np.linspace(20.0, 25.0, 30)
    dipped = np.full(30, 25.0)
    dipped[-1] -= 0.6  # a level fit with one low last probe, as a bounded fit at 128² has
    falling = np.concatenate([rising, rising[::-1][1:16]])  # up by 5 dB, then down for 15 probes
    as_record = lambda psnr: ex.Record({"history": {"psnr": psnr.tolist()}})
    assert as_record(rising).decline() == 0.0
    assert as_record(dipped).decline() == pytest.approx(0.06)  # the dip / 10 probes, not 0.6
    assert as_record(dipped).decline(window=1) == pytest.approx(0.6)
    # the running mean peaks over probes 25-34 and ends over probes 35-44
    expected = np.convolve(falling, np.ones(10) / 10, "valid")
    assert as_record(falling).decline() == pytest.approx(expected.max() - expected[-1])
    assert as_record(falling).decline(window=1) == pytest.approx(falling.max() - falling[-1])
    np.testing.assert_allclose(as_record(rising).smoothed_psnr(3), rising[1:-1], atol=1e-9)
    with pytest.raises(DipkitError, match="window must be between 1 and the 30 probes"):
        as_record(rising).decline(window=31)


def test_images_round_trip_to_8_bits():
    x = torch.rand(1, 3, 8, 8)
    assert (ex.decode_image(ex.encode_image(x)) - x).abs().max() <= 0.5 / 255 + 1e-6
    g = torch.rand(1, 1, 8, 8)
    assert ex.decode_image(ex.encode_image(g)).shape == (1, 1, 8, 8)


@pytest.mark.parametrize("settings, message", [
    ({"task": "denoise"}, "needs at least 'image' and 'task'"),
    ({"image": "astronaut", "task": "blur"}, "unknown task"),
    ({"image": "astronaut", "task": "inpaint", "mask": "stars"}, "unknown mask"),
    ({"image": "astronaut", "task": "denoise", "method": "mine"}, "unknown method"),
    ({"image": "astronaut", "task": "denoise", "network": "unet"}, "unknown network"),
    ({"image": "astronaut", "task": "denoise", "monitor": ["oracle"]}, "unknown monitored rule"),
    ({"image": "astronaut", "task": "inpaint", "monitor": ["discrepancy"]}, "needs a known noise level"),
])
def test_bad_settings_say_what_to_do(settings, message):
    with pytest.raises(DipkitError, match=message):
        ex.prepare({"seed": 0, **settings}, TINY)


def test_the_settings_choose_the_operator_and_the_preset():
    p = ex.prepare({"image": "astronaut", "task": "inpaint", "mask": "block", "method": "paper",
                    "mode": "gray", "seed": 0}, TINY)
    assert p.observation.shape == (1, 1, 64, 64) and type(p.degradation).__name__ == "Inpainting"
    assert p.kwargs["stop"] == "paper" and p.kwargs["steps"] == 30 and p.kwargs["backtrack"] is False
    o = ex.prepare({"image": "astronaut", "task": "denoise", "method": "original", "seed": 0}, TINY)
    assert o.kwargs["lr"] == 1e-2 and o.kwargs["ema"] == 0.99
    # rule parameters are in steps (the fit converts them: 10 and 20 probes of 10 steps)
    rules = ex.monitor_rules(["eswmv"], steps=2000, probe_every=10)
    assert rules["eswmv"].window == 100 and rules["eswmv"].patience == 200


def test_measures_are_stored(store):
    exp = ex.Experiment("holes", base={"image": "astronaut", "task": "inpaint", "mask": "block",
                                       "measures": ["hole_psnr", "observation_psnr"]}, seeds=1)
    rec = ex.run(exp, TINY, store=store, log=None)[0]
    assert {"hole_psnr_final", "observation_psnr_final"} <= set(rec.measures)
    assert rec.get("hole_psnr_final") < rec.psnr_final  # the holes are the hard part
    bad = ex.Experiment("bad", base={"image": "astronaut", "task": "denoise", "measures": ["nope"]}, seeds=1)
    with pytest.raises(DipkitError, match="unknown measure"):
        ex.run(bad, TINY, store=store, log=None)


def test_load_computes_only_when_nothing_is_stored(store, monkeypatch):
    monkeypatch.delenv("DIPKIT_RECOMPUTE", raising=False)
    assert len(ex.load(SWEEP, TINY, store=store, log=None)) == 4      # nothing stored: computed
    lines = store.path("sweep", "quick").read_text().splitlines()
    store.path("sweep", "quick").write_text("\n".join(lines[:3]) + "\n")
    assert len(ex.load(SWEEP, TINY, store=store, log=None)) == 3      # partial: served as is
    assert len(ex.load(SWEEP, TINY, store=store, compute_missing=True, log=None)) == 4
    monkeypatch.setenv("DIPKIT_RECOMPUTE", "1")
    ex.load(SWEEP, TINY, store=store, log=None)
    assert len(store.path("sweep", "quick").read_text().splitlines()) == 8  # all fitted again


def test_a_benchmark_set_image_is_prepared_as_the_benchmark_prepares_it(shared_data, monkeypatch):
    from dipkit import bench, datasets
    monkeypatch.setenv("DIPKIT_DATA", str(shared_data))
    p = ex.prepare({"set": "bernoulli11", "image": "barbara", "task": "inpaint", "seed": 0,
                    "monitor": ["paper"]}, TINY)
    item = bench.prepare_image({i.name: i for i in datasets.load("bernoulli11")}["barbara"], "inpaint",
                               None, TINY.image_size, multiple=2 ** TINY.depth)
    assert torch.equal(p.clean, item.image) and p.clean.shape == (1, 1, 64, 64)
    assert torch.equal(p.degradation.mask, item.mask)          # the set's own mask, not a new one
    d = ex.prepare({"set": "set9", "image": "kodim12", "task": "denoise", "sigma": 25, "seed": 0,
                    "monitor": ["discrepancy"]}, TINY)
    assert d.clean.shape == (1, 3, 64, 96)                      # shorter side 64, aspect kept
    assert d.kwargs["monitor"]["discrepancy"].sigma == pytest.approx(25 / 255)
    with pytest.raises(DipkitError, match="has no image 'lena'.*image_Lena512rgb"):
        ex.prepare({"set": "set9", "image": "lena", "task": "denoise", "seed": 0}, TINY)


def test_a_held_out_setting_fits_without_those_pixels_and_is_watched_at_their_minimum(store):
    from dipkit.degradations import HeldOut
    settings = {"image": "astronaut", "task": "denoise", "sigma": 25, "heldout": 0.05, "seed": 0,
                "monitor": ["heldout", "discrepancy"]}
    p = ex.prepare(settings, TINY)
    assert isinstance(p.degradation, HeldOut) and p.degradation.fraction == 0.05
    assert p.kwargs["monitor"]["heldout"].patience == ex.monitor_rules(["eswmv"], 30, 10)["eswmv"].patience
    exp = ex.Experiment("held", base={k: v for k, v in settings.items() if k != "seed"}, seeds=1)
    rec = ex.run(exp, TINY, store=store, log=None)[0]
    assert set(rec.detections) == {"heldout", "discrepancy"}
    with pytest.raises(DipkitError, match="needs a known noise level"):
        ex.prepare({**settings, "task": "inpaint", "monitor": ["discrepancy"]}, TINY)


def test_the_benchmark_experiments_name_every_image_of_their_set(shared_data, monkeypatch):
    from dipkit import datasets
    monkeypatch.setenv("DIPKIT_DATA", str(shared_data))
    for name, images in ex.SET_IMAGES.items():
        assert sorted(images) == sorted(i.name for i in datasets.load(name))
    exp = ex.EXPERIMENTS["classic5_deblocking"]
    first = exp.settings("cpu")
    assert [s["method"] for s in first[:5]] == ["paper"] * 5   # the paper's method first
    assert {s["seed"] for s in first} == {0} and len(first) == 10
    assert all(s["stop"] == "none" and "paper" in s["monitor"] for s in first)


def test_the_book_declares_every_chapter_experiment(shared_data, monkeypatch):
    monkeypatch.setenv("DIPKIT_DATA", str(shared_data))
    assert {"spectral_bias", "architectures", "lipschitz", "gaussian_upsampling", "denoising",
            "deblocking", "inpainting", "set9_denoising", "classic5_deblocking",
            "bernoulli11_inpainting", "enhancement"} <= set(ex.EXPERIMENTS)
    for exp in ex.EXPERIMENTS.values():
        settings = exp.settings("quick")
        assert len(settings) == len({ex.setting_key(s) for s in settings})  # no fit twice
        seeds = {s["seed"] for s in settings}
        if exp.name == "benchmark_seeds":   # its seed 0 is stored by the set's own experiment
            seeds |= {s["seed"] for s in ex.EXPERIMENTS["set9_denoising"].settings("cpu")}
        assert len(seeds) >= 3                                               # claims over ≥ 3 seeds
        ex.prepare(settings[-1], TINY)                                       # every setting is valid


def test_the_second_image_sweep_is_chapter_3s_sweep_on_chelsea():
    # the same fits as the astronaut sweep but for the image, one seed at cpu
    for profile in ("quick", "cpu"):
        first, second = (ex.EXPERIMENTS[name].settings(profile) for name in ("lipschitz", "lipschitz_chelsea"))
        assert {s["image"] for s in first} == {"astronaut"} and {s["image"] for s in second} == {"chelsea"}
        drop = lambda settings: {ex.setting_key({**s, "image": None, "seed": None}) for s in settings}
        assert drop(first) == drop(second)
    assert {s["seed"] for s in ex.EXPERIMENTS["lipschitz_chelsea"].settings("cpu")} == {0}
    assert [s["lipschitz"] for s in ex.EXPERIMENTS["lipschitz_chelsea"].settings("cpu")] == [1.0, 1.2, 1.4, 2.0, None]


def test_the_subset_seeds_extend_the_sets_fits_of_the_paper_s_method():
    # seeds 1 and 2 on the first three images of each set, with exactly the settings the set's
    # own experiment gives seed 0: together three seeds on a stated subset
    extra = ex.EXPERIMENTS["benchmark_seeds"].settings("cpu")
    assert {s["seed"] for s in extra} == {1, 2} and {s["method"] for s in extra} == {"paper"}
    for set_name, images in ex.book.HELDOUT_IMAGES.items():
        own = ex.EXPERIMENTS[ex.book.BENCHMARKS[set_name].experiment].settings("cpu")
        assert {s["seed"] for s in own} == {0}
        first = {ex.setting_key({**s, "seed": None}) for s in own if s["method"] == "paper" and s["image"] in images}
        assert {ex.setting_key({**s, "seed": None}) for s in extra if s["set"] == set_name} == first
        assert len(first) == 3


def test_an_experiment_takes_its_seeds_as_a_list():
    exp = ex.Experiment("demo", base={"image": "astronaut"}, seeds=(1, 2), per_profile={"cpu": {"seeds": [4]}})
    assert [s["seed"] for s in exp.settings("quick")] == [1, 2]
    assert [s["seed"] for s in exp.settings("cpu")] == [4]
    assert [s["seed"] for s in ex.Experiment("d", seeds=2, base={"image": "astronaut"}).settings("quick")] == [0, 1]


def test_cli_list_and_run(tmp_path, capsys):
    results = str(tmp_path / "r")
    assert main(["experiments", "run", "nope", "--results", results]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    # argparse's usage error, naming every profile
    assert main(["experiments", "run", "lipschitz", "--profile", "big", "--results", results]) == 2
    assert "choose from 'cpu', 'full', 'gpu', 'quick'" in capsys.readouterr().err
    assert main(["experiments", "list"]) == 0
    out = capsys.readouterr().out
    assert "lipschitz" in out and "quick: " in out
    # the hours of a stored fit: its wall time, summed per experiment and per profile
    store = ex.Store(results)
    exp = ex.EXPERIMENTS["spectral_bias"]
    record = {"key": ex.setting_key(exp.settings("quick")[0]), "seconds": 5400.0, "settings": {}}
    store.path("spectral_bias", "quick").parent.mkdir(parents=True)
    store.path("spectral_bias", "quick").write_text(json.dumps(record) + "\n")
    assert main(["experiments", "list", "--results", results]) == 0
    out = capsys.readouterr().out
    assert "quick: 1/3 (1.5 h)" in out and "cpu: 0/3," in out
    assert out.strip().endswith("compute stored, in hours of wall time of the fits: quick 1.5, cpu 0.0, gpu 0.0, full 0.0")
