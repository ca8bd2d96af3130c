"""dipkit's benchmark suite (issue 5). Run: ``.venv/bin/python -m benchmarks.run``.

Sections (each timed with interleaved repeats; the figure reported is the median):

1. ``probes``: FBC + blurriness + MLV sharpness (the ratio) of one RGB output at 256² and 512²:
   dipkit (torch, on the CPU) against the direct NumPy/SciPy versions of ``tests/reference_probes.py``
   (the paper's per-step metrics), with the values compared.
2. ``fit``: optimizer steps per second of the paper's decoder (128 channels, depth 5, λ = 1.4) at
   128² and 256² with probes every 1, 10 and 100 steps and with none; plus, at 128², the fit
   options ``channels_last`` and ``compile`` against the default.
3. ``batched``: K = 1, 4, 8 seeds at 128²: K sequential ``fit`` calls against ``fit_many``
   ('loop' and 'vmap' engines), in seconds per member-step.
4. GPU sections: skipped without CUDA (recorded as skipped).

Every section fits its measurements into a share of a time budget (``--budget``, default 840 s):
it times one step first and picks the number of steps per measurement from that, never fewer
than a floor; the JSON file records the steps used. The results go to
``benchmarks/results/<device>-<date>.json``; ``python -m benchmarks.table`` prints them as the
README's table.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT / "tests"))

import dipkit  # noqa: E402
from dipkit.batched import member_models  # noqa: E402
from dipkit.degradations import GaussianNoise  # noqa: E402
from dipkit.metrics import psnr  # noqa: E402
from dipkit.sharpness import blur_sharpness_ratio, blurriness, sharpness  # noqa: E402
from dipkit.spectral import BandCorrespondence, band_correspondence  # noqa: E402
from reference_probes import (blur_reference, fbc_reference, gray_reference,  # noqa: E402
                              sharpness_reference)

# Shares of the budget per section (they need not sum to 1: sections that finish early leave time).
SHARES = {"probes": 0.05, "fit": 0.40, "options": 0.08, "compile": 0.22, "batched": 0.20}


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def machine() -> dict:
    """What ran the benchmark."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = dict(platform=platform.platform(), processor=cpu, machine=platform.machine(),
                cores=os.cpu_count(), python=platform.python_version())
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load() -> list:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def per_call(fn, number: int) -> float:
    """Seconds per call of ``fn`` over ``number`` calls in a row."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def median(values) -> float:
    return float(statistics.median(values))


class Budget:
    """Seconds left for the whole suite and the share of a section."""

    def __init__(self, seconds: float):
        self.total = seconds
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def share(self, section: str) -> float:
        return min(self.left(), SHARES[section] * self.total)


# ---------------------------------------------------------------------------------------------
# 1. probes
# ---------------------------------------------------------------------------------------------


def bench_probes(sizes, budget: Budget, rounds: int) -> dict:
    results = {}
    seconds = budget.share("probes") / len(sizes)
    for size in sizes:
        clean = dipkit.images.sample("astronaut", size=size)
        obs = GaussianNoise(25 / 255).observe(clean, seed=0)
        out = clean  # the "network output" being probed
        fbc = BandCorrespondence(obs)
        batch8 = torch.cat([out] * 8)

        def reference(sort="numpy"):
            # the paper's formulas at every step: to NumPy, gray, FBC, blur, MLV sharpness
            g = gray_reference(out[0].permute(1, 2, 0).numpy())
            g0 = gray_reference(obs[0].permute(1, 2, 0).numpy())
            return fbc_reference(g, g0), blur_reference(g), sharpness_reference(g, sort=sort)

        def paper_code():  # the same, sorting the MLV map with Python's sorted as the paper's code does
            return reference(sort="python")

        def in_fit():  # what dipkit.fit computes at a probe (the observation's spectrum made once)
            return fbc(out), blur_sharpness_ratio(out)

        def standalone():
            return band_correspondence(out, obs), blur_sharpness_ratio(out)

        for fn in (reference, paper_code, in_fit, standalone):
            fn()
        t_ref = per_call(reference, 1)
        n_ref = max(1, int(0.05 / t_ref))
        n_dk = max(5, int(0.05 / max(per_call(in_fit, 3), 1e-5)))
        times = {"reference": [], "paper_code": [], "dipkit": [], "dipkit_function": [],
                 "dipkit_1thread": [], "dipkit_batch8_per_image": []}
        threads = torch.get_num_threads()
        deadline = time.perf_counter() + seconds
        r = 0
        while r < rounds and (r < 3 or time.perf_counter() < deadline):
            times["reference"].append(per_call(reference, n_ref))
            times["paper_code"].append(per_call(paper_code, 1))
            times["dipkit"].append(per_call(in_fit, n_dk))
            times["dipkit_function"].append(per_call(standalone, n_dk))
            torch.set_num_threads(1)
            times["dipkit_1thread"].append(per_call(in_fit, n_dk))
            torch.set_num_threads(threads)
            times["dipkit_batch8_per_image"].append(
                per_call(lambda: (fbc(batch8), blur_sharpness_ratio(batch8)), max(1, n_dk // 8)) / 8)
            r += 1
        ms = {k: round(1e3 * median(v), 4) for k, v in times.items()}
        # values: dipkit on the float32 output vs the float64 reference on the same pixels
        ref_bands, ref_blur, ref_sharp = reference()
        bands = fbc(out)[0].double().numpy()
        blur, sharp = float(blurriness(out)), float(sharpness(out))
        ratio = float(blur_sharpness_ratio(out))
        diff = dict(bands=float(np.abs(bands - ref_bands).max()), blur=abs(blur - ref_blur),
                    sharpness=abs(sharp - ref_sharp), ratio=abs(ratio - ref_blur / ref_sharp),
                    ratio_relative=abs(ratio / (ref_blur / ref_sharp) - 1))
        results[f"{size}"] = dict(
            image=f"astronaut {size}x{size} RGB (output) vs its noisy version (observation)",
            ms=ms, rounds=r, calls_per_round=dict(reference=n_ref, dipkit=n_dk),
            speedup=round(ms["reference"] / ms["dipkit"], 2),
            speedup_function=round(ms["reference"] / ms["dipkit_function"], 2),
            speedup_1thread=round(ms["reference"] / ms["dipkit_1thread"], 2),
            speedup_vs_paper_code=round(ms["paper_code"] / ms["dipkit"], 2),
            max_abs_difference=diff, values_within_1e_4=bool(max(v for k, v in diff.items()
                                                                  if k != "ratio_relative") < 1e-4))
        log(f"probes {size}²: reference {ms['reference']:.2f} ms (paper's code, Python sort: "
            f"{ms['paper_code']:.2f} ms), dipkit {ms['dipkit']:.3f} ms (x{results[f'{size}']['speedup']}; "
            f"x{results[f'{size}']['speedup_vs_paper_code']} vs the paper's code), max diff {max(diff.values()):.2e}")
    return results


# ---------------------------------------------------------------------------------------------
# 2. fit throughput
# ---------------------------------------------------------------------------------------------

PAPER = dict(channels=128, depth=5, lipschitz=1.4)


def _task(size: int):
    clean = dipkit.images.sample("astronaut", size=size)
    return clean, GaussianNoise(25 / 255).observe(clean, seed=0)


def _probe_cost(out, clean, obs, repeats: int) -> float:
    """Seconds of the work fit does at one probe (PSNRs, best output, FBC, ratio), measured alone."""
    fbc = BandCorrespondence(obs)
    best, best_psnr = torch.zeros_like(out), torch.full((), -math.inf)

    def probe():
        p_obs = psnr(out, obs)[0]
        p = psnr(out, clean)[0]
        torch.where(p > best_psnr, out, best)
        return p_obs, p, fbc(out)[0], blur_sharpness_ratio(out)[0]

    probe()
    return median([per_call(probe, 5) for _ in range(repeats)])


def bench_fit(sizes, budget: Budget, repeats: int, min_steps: dict, arch: dict) -> dict:
    results = {}
    seconds = budget.share("fit")
    weights = {s: s * s for s in sizes}
    for size in sizes:
        share = seconds * weights[size] / sum(weights.values())
        clean, obs = _task(size)
        model = dipkit.decoder(**arch, seed=0)
        configs = {
            "none": lambda n: dict(probes=(), probe_every=n, clean=None),
            "every 1": lambda n: dict(probe_every=1, clean=clean),
            "every 10": lambda n: dict(probe_every=10, clean=clean),
            "every 100": lambda n: dict(probe_every=100, clean=clean),
        }
        warm = dipkit.fit(model, obs, steps=2, probe_every=1, clean=clean, progress=False)
        step_s = warm.seconds / 2
        n = int(share / (len(configs) * repeats * step_s))
        n = max(min_steps[size], min(n, 100))
        log(f"fit {size}²: ~{step_s:.2f} s/step, {n} steps x {len(configs)} configs x {repeats} repeats")
        times = {k: [] for k in configs}
        for r in range(repeats):
            names = list(configs)
            names = names[r % len(names):] + names[: r % len(names)]  # rotate the order
            for name in names:
                run = dipkit.fit(model, obs, steps=n, progress=False, **configs[name](n))
                times[name].append(run.seconds / run.steps_run)
        step = {k: median(v) for k, v in times.items()}
        probe_s = _probe_cost(warm.final, clean, obs, repeats=max(5, repeats))
        results[f"{size}"] = dict(
            network=f"decoder {arch}", image=f"astronaut {size}x{size}, sigma 25/255",
            steps_per_measurement=n, repeats=repeats,
            steps_per_second={k: round(1 / v, 3) for k, v in step.items()},
            ms_per_step={k: round(1e3 * v, 2) for k, v in step.items()},
            overhead_vs_none={k: round(step[k] / step["none"] - 1, 4) for k in step if k != "none"},
            probe_ms=round(1e3 * probe_s, 3),
            overhead_from_probe_cost={f"every {k}": round(probe_s / (k * step["none"]), 5)
                                      for k in (1, 10, 100)},
            note=("every 100 probes only at the last step when fewer than 100 steps are run"
                  if n < 100 else ""))
        log(f"fit {size}²: {results[f'{size}']['steps_per_second']} steps/s; probe {probe_s * 1e3:.2f} ms")
    return results


def bench_options(size: int, budget: Budget, repeats: int, arch: dict, compile_timeout) -> dict:
    """channels_last (and compile, in a subprocess with a deadline) against the default, at size²."""
    clean, obs = _task(size)
    share = budget.share("options")

    def one(**options):
        model = dipkit.decoder(**arch, seed=0)  # same initial weights each time
        run = dipkit.fit(model, obs, steps=n, probe_every=1, probes=(), clean=clean, progress=False, **options)
        gaps = np.diff(np.concatenate([[0.0], run.history.time]))
        return dict(first_step_s=float(gaps[0]), step_s=float(np.median(gaps[1:])),
                    psnr=float(run.history.psnr[-1]))

    n = 3
    probe = one()
    n = max(4, min(30, int(share / (2 * repeats * probe["step_s"]))))
    rows = {"default": [], "channels_last": []}
    for r in range(repeats):
        for name in (("default", "channels_last") if r % 2 == 0 else ("channels_last", "default")):
            rows[name].append(one(channels_last=name == "channels_last"))
    out = {}
    for name, runs in rows.items():
        out[name] = dict(ms_per_step=round(1e3 * median([x["step_s"] for x in runs]), 2),
                         psnr_after=round(runs[0]["psnr"], 4))
    out["channels_last"]["speedup"] = round(out["default"]["ms_per_step"] / out["channels_last"]["ms_per_step"], 3)
    out["channels_last"]["psnr_difference_db"] = round(out["channels_last"]["psnr_after"] - out["default"]["psnr_after"], 4)
    out["steps_per_measurement"], out["repeats"] = n, repeats
    out["image"], out["network"] = f"astronaut {size}x{size}", f"decoder {arch}"
    log(f"options {size}²: {out}")
    if compile_timeout is not None:
        out["compile"] = _compile_in_subprocess(size, n, arch, compile_timeout)
        if out["compile"].get("status", "").startswith("on"):
            c = out["compile"]
            c["speedup"] = round(out["default"]["ms_per_step"] / c["ms_per_step"], 3)
            c["psnr_difference_db"] = round(c["psnr_after"] - out["default"]["psnr_after"], 4)
        log(f"compile {size}²: {out['compile']}")
    return out


def _compile_in_subprocess(size: int, steps: int, arch: dict, timeout: float) -> dict:
    if timeout < 60:
        return dict(status="skipped: no time left in the budget")
    cmd = [sys.executable, "-m", "benchmarks.run", "--compile-worker", json.dumps(dict(size=size, steps=steps, arch=arch)),
           "--threads", str(torch.get_num_threads())]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(status=f"timed out: still compiling after {timeout:.0f} s (the budget's share); "
                           f"not measured", seconds=round(time.perf_counter() - start, 1))
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return dict(status=f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:] }")
    return json.loads(lines[-1])


def compile_worker(spec: str) -> None:
    """Child process: one fit with compile=True; prints a JSON line."""
    import warnings

    spec = json.loads(spec)
    clean, obs = _task(spec["size"])
    model = dipkit.decoder(**spec["arch"], seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = dipkit.fit(model, obs, steps=spec["steps"], probe_every=1, probes=(), clean=clean,
                         progress=False, compile=True)
    gaps = np.diff(np.concatenate([[0.0], run.history.time]))
    print(json.dumps(dict(status=run.config["compile"], warm_up_s=round(float(gaps[0]), 1),
                          ms_per_step=round(1e3 * float(np.median(gaps[1:])), 2),
                          psnr_after=round(float(run.history.psnr[-1]), 4),
                          warnings=sorted({str(w.message)[:300] for w in caught}))))


# ---------------------------------------------------------------------------------------------
# 3. batched vs sequential
# ---------------------------------------------------------------------------------------------


def bench_batched(size: int, ks, budget: Budget, repeats: int, arch: dict) -> dict:
    clean, obs = _task(size)
    share = budget.share("batched")
    kw = dict(probe_every=10, clean=clean, progress=False)
    warm = dipkit.fit(dipkit.decoder(**arch, seed=0), obs, steps=2, **kw)
    step_s = warm.seconds / 2
    member_steps = sum(ks) * 3 * repeats  # three ways of running each K
    n = max(2, min(20, int(share / (member_steps * step_s))))
    log(f"batched {size}²: ~{step_s:.3f} s/step, {n} steps, K in {ks}, {repeats} repeats")
    dipkit.fit_many(dipkit.decoder(**arch), obs, seeds=[0, 1], steps=2, method="vmap", **kw)  # warm up

    def sequential(k):
        models = member_models(dipkit.decoder(**arch), range(k))
        start = time.perf_counter()
        for seed, m in enumerate(models):
            dipkit.fit(m, obs, steps=n, seed=seed, **kw)
        return time.perf_counter() - start

    def batched(k, method):
        models = member_models(dipkit.decoder(**arch), range(k))
        start = time.perf_counter()
        dipkit.fit_many(models, obs, seeds=list(range(k)), steps=n, method=method, **kw)
        return time.perf_counter() - start

    results = {}
    for k in ks:
        ways = {"sequential": lambda: sequential(k), "fit_many loop": lambda: batched(k, "loop"),
                "fit_many vmap": lambda: batched(k, "vmap")}
        times = {w: [] for w in ways}
        for r in range(repeats):
            order = list(ways)
            order = order[r % 3:] + order[: r % 3]
            for w in order:
                times[w].append(ways[w]() / (k * n))
        ms = {w: round(1e3 * median(v), 2) for w, v in times.items()}
        results[f"K={k}"] = dict(ms_per_member_step=ms,
                                 speedup_vs_sequential={w: round(ms["sequential"] / ms[w], 3)
                                                        for w in ms if w != "sequential"})
        log(f"batched K={k}: {ms}")
    results.update(steps_per_measurement=n, repeats=repeats, image=f"astronaut {size}x{size}",
                   network=f"decoder {arch}", probes="every 10 steps, with the clean image")
    return results


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=840, help="seconds for the whole suite (default 840)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each fit measurement")
    parser.add_argument("--only", default="probes,fit,options,compile,batched",
                        help="comma-separated sections to run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the suite runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    parser.add_argument("--compile-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.compile_worker:
        compile_worker(args.compile_worker)
        return 0
    only = set(args.only.split(","))
    budget = Budget(args.budget)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = _dt.datetime.now()
    record = dict(date=started.isoformat(timespec="seconds"), device=device, machine=machine(),
                  torch=torch.__version__, numpy=np.__version__, dipkit=dipkit.__version__,
                  threads=torch.get_num_threads(), load_average_start=load(), budget_s=args.budget,
                  quick=args.quick, figures={}, targets={}, skipped={})
    if args.quick:
        probe_sizes, fit_sizes, arch_fit, arch_batched = [64], [64], dict(channels=16, depth=4, lipschitz=1.4), \
            dict(channels=8, depth=4, lipschitz=1.4)
        min_steps, batched_size, ks = {64: 3}, 64, [1, 2]
    else:
        probe_sizes, fit_sizes, arch_fit = [256, 512], [128, 256], PAPER
        arch_batched = dict(channels=dipkit.presets.PROFILES["quick"].channels, depth=5, lipschitz=1.4)
        min_steps, batched_size, ks = {128: 10, 256: 4}, 128, [1, 4, 8]
    figures = record["figures"]
    if "probes" in only:
        figures["probes"] = bench_probes(probe_sizes, budget, rounds=15)
        big = figures["probes"][str(probe_sizes[-1])]
        record["targets"]["probes_20x_at_512"] = dict(
            target=">= 20x faster than the NumPy/SciPy reference at 512², same values to 1e-4",
            measured=big["speedup"], measured_1thread=big["speedup_1thread"],
            met=bool(big["speedup"] >= 20 and big["values_within_1e_4"]))
    if "fit" in only:
        figures["fit"] = bench_fit(fit_sizes, budget, args.repeats, min_steps, arch_fit)
        worst = max(v["overhead_vs_none"]["every 10"] for v in figures["fit"].values())
        record["targets"]["probe_every_10_under_10pct"] = dict(
            target="probing every 10 steps costs < 10 % over no probes", measured=worst,
            from_probe_cost=max(v["overhead_from_probe_cost"]["every 10"] for v in figures["fit"].values()),
            met=bool(worst < 0.10))
    if "options" in only or "compile" in only:
        # compile runs in a child process with a deadline: its share, or what is left when the
        # batched section does not follow
        timeout = None if "compile" not in only else (
            min(budget.share("compile"), budget.left() - 0.5 * SHARES["batched"] * budget.total)
            if "batched" in only else budget.left() - 60)
        figures["options"] = bench_options(fit_sizes[0], budget, args.repeats, arch_fit, timeout)
    if "batched" in only:
        figures["batched"] = bench_batched(batched_size, ks, budget, max(2, args.repeats - 1), arch_batched)
    if device == "cpu":
        reason = "no CUDA device on this machine"
        record["skipped"] = {"probes on GPU": reason, "fit throughput on GPU (channels_last, compile, bf16 "
                             "autocast, host syncs)": reason, "batched fitting on GPU": reason,
                             "section 4 (GPU only)": reason}
    record["load_average_end"] = load()
    record["wall_s"] = round(time.perf_counter() - budget.start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{device}-{started:%Y-%m-%d}" + ("-quick" if args.quick else "")
    path = args.out / f"{stem}.json"
    if path.exists():
        path = args.out / f"{stem}-{started:%H%M%S}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} in {record['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
