"""The prepared GPU run, ``benchmarks/device.sh``, end to end as its CPU dry run (``DRY_RUN=1``).

One run of the script (about 1.5 minutes on one loaded core: 12 toy fits of the benchmark
protocol, 2 pieces of the λ sweep, the suite's quick mode), shared by the tests below: every step
logs success, the benchmark CSVs hold 2 images × 2 methods per set, the sweep's records are in the
store under OUT, and what comes back from the device (files under OUT) stays within its limits of
8 files, 2 folders deep.
"""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device.sh"
SETS = {"set9-denoise.csv": "denoise", "classic5-deblock.csv": "deblock", "bernoulli11-inpaint.csv": "inpaint"}


@pytest.fixture(scope="module")
def dry_run(shared_data, tmp_path_factory):
    """``DRY_RUN=1 bash benchmarks/device.sh`` with OUT in a temporary folder: (process, OUT)."""
    missing = [tool for tool in ("bash", "timeout", "tar") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the device script needs {', '.join(missing)}, absent here")
    out = tmp_path_factory.mktemp("device") / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICE_")}
    env.update(DRY_RUN="1", OUT=str(out), DIPKIT_DATA=str(shared_data), DIPKIT_PYTHON=sys.executable,
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=420)
    return done, out


def _log(out: Path) -> str:
    return (out / "device.log").read_text()


def _archive(out: Path) -> dict:
    """{name in the archive: bytes} of device-results.tar.gz."""
    with tarfile.open(out / "device-results.tar.gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_exits_zero_and_every_step_logs_success(dry_run):
    done, out = dry_run
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-3000:]}"
    status = dict(re.findall(r" step ([0abc]): (\w+)", _log(out)))
    assert status == {"0": "ok", "a": "ok", "b": "ok", "c": "ok"}, _log(out)
    assert re.search(r"done in \d+ s: no step failed", _log(out))
    assert "DRY RUN" in _log(out)


def test_bench_csvs_have_two_images_times_two_methods(dry_run):
    _, out = dry_run
    files = _archive(out)
    for name, task in SETS.items():
        rows = list(csv.DictReader(io.StringIO(files[name].decode())))
        assert len(rows) == 4, (name, rows)
        assert {r["task"] for r in rows} == {task}
        assert len({r["image"] for r in rows}) == 2
        assert sorted(r["method"] for r in rows) == ["dip", "dip", "paper", "paper"]
        assert all(r["seed"] == "0" and r["steps_run"] == "20" for r in rows)


def test_sweep_pieces_go_to_the_store_under_out(dry_run):
    _, out = dry_run
    lines = _archive(out)["store/quick/lipschitz.jsonl"].decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 2  # the dry run's 2 pieces of --limit 1
    assert {r["experiment"] for r in records} == {"lipschitz"}
    assert all(r["settings"]["seed"] == 0 and r["settings"]["steps"] == 20 for r in records)
    assert len({r["settings"]["lipschitz"] for r in records}) == 2


def test_suite_result_and_summary(dry_run):
    _, out = dry_run
    files = _archive(out)
    suites = [name for name in files if name.startswith("suite/") and name.endswith(".json")]
    assert len(suites) == 1
    suite = json.loads(files[suites[0]])
    # every section of the GPU's run, at toy sizes on the CPU, and the targets
    assert suite["complete"] and suite["device"] == "cpu"
    assert {"probes", "fit", "variants", "batched", "syncs", "paper_loop"} <= set(suite["figures"])
    assert {"paper_loop_10x", "variants_within_0_1_db", "no_host_waits_between_probes"} <= set(suite["targets"])
    assert suite["figures"]["syncs"]["syncing_ops_per_step"] == 0
    summary = (out / "summary.txt").read_text()
    assert "no_host_waits_between_probes: " in summary
    for name in SETS:
        assert f"{name}: 4 rows" in summary
    assert "store/quick/lipschitz.jsonl: 2 records" in summary


def test_what_comes_back_fits_the_device_limits(dry_run):
    _, out = dry_run
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)  # at most 2 folders down
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", part) for p in files for part in p.relative_to(out).parts)
