"""An experiment sweep dispatched through Dask: the records of the sequential loop, resumable,
with the worker in the provenance; clear errors for bad arguments, a failed fit and no Dask."""

import json
import subprocess
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")  # before dask.config.set: it loads its defaults
import dask  # noqa: E402

from dipkit.errors import DipkitError  # noqa: E402
from dipkit.experiments import Experiment, Store, run, setting_key  # noqa: E402

BASE = {"image": "astronaut", "task": "denoise", "sigma": 25, "network": "decoder",
        "probes": ["bands"], "steps": 20, "size": 32, "channels": 8, "depth": 3}
SWEEP = Experiment("cluster-sweep", base=BASE, axes={"lipschitz": [None, 1.4]}, seeds=2)

# The two runs execute the same code, but in other processes (spawned Dask workers, one thread
# each) than the test's: torch may pick other kernels or reduction orders there, and a fit
# amplifies the last-bit differences step by step (DESIGN.md: tests compare within measured
# tolerances, never digit for digit). Measured: bit-identical on a 2-core AVX2 CPU; these bounds
# (1e-4 relative is ~0.001 dB) leave room for CPUs where they are not, over only 20 steps.
PSNR_RTOL = 1e-4
HISTORY_RTOL, HISTORY_ATOL = 1e-3, 1e-6


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The sweep run sequentially into one store and on a 2-process local cluster into another."""
    root = tmp_path_factory.mktemp("stores")
    sequential = run(SWEEP, "quick", store=Store(root / "sequential"), log=None)
    store = Store(root / "dask")
    parallel = run(SWEEP, "quick", store=store, workers=2, log=None)
    return sequential, parallel, store


def _by_key(records) -> dict:
    return {r.key: r for r in records}


def test_dask_run_stores_the_sequential_records(sweeps):
    sequential, parallel, _ = sweeps
    seq, par = _by_key(sequential), _by_key(parallel)
    assert len(seq) == 4 and set(seq) == set(par) == {setting_key(s) for s in SWEEP.settings("quick")}
    for key, a in seq.items():
        b = par[key]
        assert (b.steps_run, b.peak_step) == (a.steps_run, a.peak_step), key
        for field in ("psnr_best", "psnr_final"):
            assert b.get(field) == pytest.approx(a.get(field), rel=PSNR_RTOL), (key, field)
        ha, hb = a.history, b.history
        assert set(ha) == set(hb)
        for column in set(ha) - {"time"}:  # wall-clock times differ, of course
            np.testing.assert_allclose(hb[column], ha[column], rtol=HISTORY_RTOL,
                                       atol=HISTORY_ATOL, err_msg=f"{key} {column}")


def test_dask_provenance_names_the_worker(sweeps):
    sequential, parallel, _ = sweeps
    assert all("worker" not in r.provenance for r in sequential)
    for r in parallel:
        assert r.provenance["worker"].startswith("tcp://")
        assert r.provenance["worker_threads"] == 1 and r.provenance["threads"] >= 1
        assert r.experiment == SWEEP.name and r.profile == "quick"


def test_second_dask_run_adds_nothing(sweeps):
    _, _, store = sweeps
    path = store.path(SWEEP.name, "quick")
    before = path.read_text()
    again = run(SWEEP, "quick", store=store, workers=2, log=None)
    assert path.read_text() == before and len(again) == 4
    assert all(json.loads(line)["provenance"]["worker"] for line in before.splitlines())


@pytest.fixture(scope="module")
def threads_cluster():
    """A running cluster to pass by address: in-process workers, so it starts in a second."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_scheduler_address_runs_there_and_adds(threads_cluster, tmp_path):
    store = Store(tmp_path)
    first = run(SWEEP, "quick", store=store, scheduler=threads_cluster.scheduler_address, limit=1, log=None)
    assert len(first) == 1 and first[0].provenance["worker"] in threads_cluster.scheduler_info["workers"]
    assert len(run(SWEEP, "quick", store=store, seeds=[0], log=None)) == 2  # the loop adds to it


def test_failed_fit_is_one_error_naming_its_setting(threads_cluster, tmp_path):
    bad = Experiment("cluster-bad", base={**BASE, "network": "nope"}, seeds=1)
    with pytest.raises(DipkitError, match=r'fit of \{.*"network":"nope".*\} failed.*unknown network'):
        run(bad, "quick", store=Store(tmp_path), scheduler=threads_cluster.scheduler_address, log=None)
    assert len(Store(tmp_path).load(bad.name, "quick")) == 0


@pytest.mark.parametrize("options, message", [
    ({"workers": 0}, "at least 1"), ({"workers": -2}, "at least 1"), ({"workers": 1.5}, "whole number"),
    ({"workers": 2, "scheduler": "tcp://127.0.0.1:8786"}, "not both"),
    ({"scheduler": ""}, "an address"), ({"scheduler": "nonsense://x"}, "unknown address scheme"),
    ({"scheduler": "tcp://127.0.0.1:1"}, "could not connect"),
])
def test_bad_cluster_arguments(options, message, tmp_path):
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(DipkitError, match=message):
            run(SWEEP, "quick", store=Store(tmp_path), log=None, **options)
    assert not list(tmp_path.iterdir())


def test_without_distributed_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    with pytest.raises(DipkitError, match=r'pip install "dipkit\[cluster\]"'):
        run(SWEEP, "quick", store=Store(tmp_path), workers=2, log=None)


def test_dipkit_imports_without_dask():
    code = ("import sys; sys.modules['distributed'] = sys.modules['dask'] = None\n"
            "import dipkit, dipkit.experiments, dipkit.cli; dipkit.cli.build_parser()\n"
            "assert 'distributed' not in [m for m in sys.modules if sys.modules[m] is not None]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_passes_the_cluster_options(tmp_path, capsys):
    from dipkit.cli import main

    assert main(["experiments", "run", "lipschitz", "--profile", "quick", "--results", str(tmp_path),
                 "--workers", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
    assert main(["experiments", "run", "lipschitz", "--workers", "2", "--scheduler", "tcp://h:1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
