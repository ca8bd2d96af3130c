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
4. ``syncs`` and ``paper_loop`` (:mod:`benchmarks.gpu`): host waits per step between probes, and
   dipkit's fit against a loop doing at every step what the paper's script does.

On CUDA the same suite runs at the paper's scale on the GPU (issue 12): probes at 256² and 512²
on the device, fit throughput at 256² and 512², ``variants`` (channels-last, bf16 autocast,
``torch.compile`` default and ``'reduce-overhead'``: CUDA graphs) in place of ``options`` and
``compile``, K = 1, 8, 32 at 256², the paper's loop at 512²; its ``targets`` are the issue's
(≤ 30 s for 10 000 steps at 512², K = 8 ≥ 3× sequential, ≥ 10× the paper's loop at ±0.2 dB,
variants within 0.1 dB, no host wait between probes).

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
from dipkit.metrics import psnr  # noqa: E402
from dipkit.sharpness import blur_sharpness_ratio, blurriness, sharpness  # noqa: E402
from dipkit.spectral import BandCorrespondence, band_correspondence  # noqa: E402
from reference_probes import (blur_reference, fbc_reference, gray_reference,  # noqa: E402
                              sharpness_reference)
from benchmarks import gpu  # noqa: E402

# Shares of the budget per section (they need not sum to 1: sections that finish early leave time).
SHARES = {"probes": 0.05, "fit": 0.40, "options": 0.08, "compile": 0.22, "batched": 0.20, "syncs": 0.03,
          "paper_loop": 0.12, "variants": 0.30}
# on CUDA (variants replace options and compile; compiling takes most of the variants' time)
GPU_SHARES = {"fit": 0.15, "batched": 0.15, "paper_loop": 0.15, "variants": 0.40}
SECTIONS = {"cpu": "probes,fit,options,compile,batched,syncs,paper_loop",
            "cuda": "probes,fit,variants,batched,syncs,paper_loop"}


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

    def __init__(self, seconds: float, shares: dict = SHARES):
        self.total, self.shares = seconds, shares
        self.start = time.perf_counter()

    def left(self) -> float:
        return self.total - (time.perf_counter() - self.start)

    def share(self, section: str) -> float:
        return min(self.left(), self.shares[section] * self.total)


# ---------------------------------------------------------------------------------------------
# 1. probes
# ---------------------------------------------------------------------------------------------


def bench_probes(sizes, budget: Budget, rounds: int, device=torch.device("cpu")) -> dict:
    """dipkit's probes on ``device`` (the NumPy reference on the host)."""
    results = {}
    seconds = budget.share("probes") / len(sizes)
    for size in sizes:
        clean, obs = gpu.denoising_task(size)
        out = clean  # the "network output" being probed
        out_d, obs_d = out.to(device), obs.to(device)
        fbc = BandCorrespondence(obs_d)
        batch8 = torch.cat([out_d] * 8)

        def reference(sort="numpy"):
            # the paper's formulas at every step: to NumPy, gray, FBC, blur, MLV sharpness
            g = gray_reference(out[0].permute(1, 2, 0).numpy())
            g0 = gray_reference(obs[0].permute(1, 2, 0).numpy())
            return fbc_reference(g, g0), blur_reference(g), sharpness_reference(g, sort=sort)

        def paper_code():  # the same, sorting the MLV map with Python's sorted as the paper's code does
            return reference(sort="python")

        def in_fit():  # what dipkit.fit computes at a probe (the observation's spectrum made once)
            values = fbc(out_d), blur_sharpness_ratio(out_d)
            gpu.sync(device)
            return values

        def standalone():
            values = band_correspondence(out_d, obs_d), blur_sharpness_ratio(out_d)
            gpu.sync(device)
            return values

        def batched8():
            values = fbc(batch8), blur_sharpness_ratio(batch8)
            gpu.sync(device)
            return values

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
                per_call(batched8, max(1, n_dk // 8)) / 8)
            r += 1
        ms = {k: round(1e3 * median(v), 4) for k, v in times.items()}
        # values: dipkit on the float32 output vs the float64 reference on the same pixels
        ref_bands, ref_blur, ref_sharp = reference()
        bands = fbc(out_d)[0].double().cpu().numpy()
        blur, sharp = float(blurriness(out_d)), float(sharpness(out_d))
        ratio = float(blur_sharpness_ratio(out_d))
        diff = dict(bands=float(np.abs(bands - ref_bands).max()), blur=abs(blur - ref_blur),
                    sharpness=abs(sharp - ref_sharp), ratio=abs(ratio - ref_blur / ref_sharp),
                    ratio_relative=abs(ratio / (ref_blur / ref_sharp) - 1))
        results[f"{size}"] = dict(
            image=f"astronaut {size}x{size} RGB (output) vs its noisy version (observation)",
            dipkit_device=str(device),
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
        clean, obs = gpu.denoising_task(size)
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
    clean, obs = gpu.denoising_task(size)
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
    """``fit(compile=True)`` in a child process with a deadline (the variants' worker)."""
    if timeout < 60:
        return dict(status="skipped: no time left in the budget")
    r = gpu.variant_in_subprocess(dict(size=size, arch=arch, steps=steps + 1, warm=1, variant="compile"),
                                  timeout, ROOT)
    if r["status"] != "measured":
        return dict(status=r["status"])
    return dict(status=r["config"]["compile"], warm_up_s=r["warm_up_s"], ms_per_step=r["ms_per_step"],
                psnr_after=r["psnr"], warnings=r["warnings"])


# ---------------------------------------------------------------------------------------------
# 3. batched vs sequential
# ---------------------------------------------------------------------------------------------


def bench_batched(size: int, ks, budget: Budget, repeats: int, arch: dict) -> dict:
    clean, obs = gpu.denoising_task(size)
    share = budget.share("batched")
    kw = dict(probe_every=10, clean=clean, progress=False)
    # a step's cost from two fits (their difference leaves out the first steps' one-off costs)
    short, longer = (dipkit.fit(dipkit.decoder(**arch, seed=0), obs, steps=s, **kw).seconds for s in (2, 12))
    step_s = max((longer - short) / 10, longer / 12 / 4)
    member_steps = sum(ks) * 3 * repeats  # three ways of running each K
    n = max(2, min(50, int(share / (member_steps * step_s))))
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


def sizes(quick: bool, device: str) -> dict:
    """Image sizes, networks and counts of each section: quick (a check that the suite runs), a
    CPU's, a GPU's (the paper's scale)."""
    if quick:
        small, tiny = dict(channels=16, depth=4, lipschitz=1.4), dict(channels=8, depth=4, lipschitz=1.4)
        return dict(probes=[64], fit=[64], arch=small, min_steps={64: 3}, batched=(64, [1, 2], tiny),
                    syncs=(64, tiny, 10), paper_loop=(64, tiny), variants=(64, small, 10, ("default", "bf16")))
    quick_width = dict(channels=dipkit.presets.PROFILES["quick"].channels, depth=5, lipschitz=1.4)
    if device == "cuda":
        return dict(probes=[256, 512], fit=[256, 512], arch=PAPER, min_steps={256: 100, 512: 100},
                    batched=(256, [1, 8, 32], PAPER), syncs=(256, PAPER, 10), paper_loop=(512, PAPER),
                    variants=(256, PAPER, 200, tuple(gpu.VARIANTS)))
    return dict(probes=[256, 512], fit=[128, 256], arch=PAPER, min_steps={128: 10, 256: 4},
                batched=(128, [1, 4, 8], quick_width), syncs=(128, PAPER, 10), paper_loop=(128, PAPER),
                variants=(128, PAPER, 10, ("default", "channels_last", "bf16")))


def targets(figures: dict, device: str) -> dict:
    """The issues' targets, each with what was measured and whether it was met."""
    out = {}
    if "probes" in figures:
        big = figures["probes"][max(figures["probes"], key=int)]
        out["probes_20x_at_512"] = dict(
            target=">= 20x faster than the NumPy/SciPy reference at 512², same values to 1e-4",
            measured=big["speedup"], measured_1thread=big["speedup_1thread"],
            met=bool(big["speedup"] >= 20 and big["values_within_1e_4"]))
    if "fit" in figures:
        worst = max(v["overhead_vs_none"]["every 10"] for v in figures["fit"].values())
        out["probe_every_10_under_10pct"] = dict(
            target="probing every 10 steps costs < 10 % over no probes", measured=worst,
            from_probe_cost=max(v["overhead_from_probe_cost"]["every 10"] for v in figures["fit"].values()),
            met=bool(worst < 0.10))
        if device == "cuda" and "512" in figures["fit"]:
            seconds = 10 * figures["fit"]["512"]["ms_per_step"]["every 10"]
            out["full_denoising_512_under_30s"] = dict(
                target="10 000 steps at 512², probes every 10, in <= 30 s (from the measured rate)",
                measured_s=round(seconds, 1), met=bool(seconds <= 30))
    if device == "cuda" and "batched" in figures and "K=8" in figures["batched"]:
        speedup = figures["batched"]["K=8"]["speedup_vs_sequential"]
        out["batched_K8_3x"] = dict(target="fit_many with K = 8 >= 3x the throughput of 8 sequential fits",
                                    measured=speedup, met=bool(max(speedup.values()) >= 3))
    if "paper_loop" in figures:
        f = figures["paper_loop"]
        out["paper_loop_10x"] = dict(
            target=">= 10x faster end to end than the paper's per-step loop, PSNR within 0.2 dB",
            measured=f["speedup"], psnr_difference_db=f["psnr_difference_db"],
            peak_psnr_difference_db=f["peak_psnr_difference_db"], psnr_compared_over_steps=f["psnr_comparison"]["steps"],
            met=bool(f["speedup"] >= 10 and abs(f["psnr_difference_db"]) <= 0.2))
    if "variants" in figures:
        v = {k: r for k, r in figures["variants"]["variants"].items() if "psnr_difference_db" in r}
        out["variants_within_0_1_db"] = dict(
            target="each option's PSNR within 0.1 dB of the default's after the same steps",
            measured={k: r["psnr_difference_db"] for k, r in v.items()},
            speedup={k: r["speedup"] for k, r in v.items()},
            met={k: bool(abs(r["psnr_difference_db"]) <= 0.1) for k, r in v.items()})
    if "syncs" in figures:
        f = figures["syncs"]
        waits = f.get("cuda_waits_per_step", f["syncing_ops_per_step"])
        out["no_host_waits_between_probes"] = dict(
            target="no host wait between probes" + ("" if device == "cuda" else
                                                     " (on a CPU: no operator that would wait on a GPU)"),
            measured=waits, met=bool(waits == 0))
    return out


SECTION_ORDER = ("probes", "fit", "options", "variants", "batched", "syncs", "paper_loop")


def run_section(section: str, figures: dict, z: dict, budget: Budget, args, device: str) -> None:
    """Measure one section into ``figures`` (``z``: the sizes of :func:`sizes`)."""
    if section == "probes":
        figures["probes"] = bench_probes(z["probes"], budget, rounds=15, device=torch.device(device))
    elif section == "fit":
        figures["fit"] = bench_fit(z["fit"], budget, args.repeats, z["min_steps"], z["arch"])
    elif section == "options":
        # compile runs in a child process with a deadline: its share, or what is left when the
        # batched section does not follow
        timeout = None if not args.compile else (
            min(budget.share("compile"), budget.left() - 0.5 * SHARES["batched"] * budget.total)
            if args.batched else budget.left() - 60)
        figures["options"] = bench_options(z["fit"][0], budget, args.repeats, z["arch"], timeout)
    elif section == "variants":
        size, arch, steps, names = z["variants"]
        figures["variants"] = gpu.bench_variants(size, arch, steps, budget.share("variants"), ROOT, names)
        log(f"variants {size}²: {json.dumps(figures['variants']['variants'])[:2000]}")
    elif section == "batched":
        size, ks, arch = z["batched"]
        figures["batched"] = bench_batched(size, ks, budget, max(2, args.repeats - 1), arch)
    elif section == "syncs":
        size, arch, steps = z["syncs"]
        figures["syncs"] = gpu.bench_syncs(size, arch, steps)
        log(f"syncs {size}²: {figures['syncs']}")
    elif section == "paper_loop":
        size, arch = z["paper_loop"]
        figures["paper_loop"] = gpu.bench_paper_loop(size, arch, budget.share("paper_loop"))
        log(f"paper loop {size}²: {figures['paper_loop']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=840, help="seconds for the whole suite (default 840)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each fit measurement")
    parser.add_argument("--only", default=None, help="comma-separated sections to run (default: on a CPU "
                        f"{SECTIONS['cpu']}; on CUDA {SECTIONS['cuda']})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that the suite runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    parser.add_argument("--variant-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant_worker:
        gpu.variant_worker(args.variant_worker)
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # --quick checks every section's code, the GPU's variants too
    only = set((args.only or SECTIONS[device] + (",variants" if args.quick else "")).split(","))
    args.compile, args.batched = "compile" in only, "batched" in only
    if args.compile:
        only.add("options")
    budget = Budget(args.budget, {**SHARES, **GPU_SHARES} if device == "cuda" else SHARES)
    started = _dt.datetime.now()
    record = dict(date=started.isoformat(timespec="seconds"), device=device, machine=machine(),
                  torch=torch.__version__, numpy=np.__version__, dipkit=dipkit.__version__,
                  threads=torch.get_num_threads(), load_average_start=load(), budget_s=args.budget,
                  quick=args.quick, sections=sorted(only), figures={}, targets={}, skipped={})
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{device}-{started:%Y-%m-%d}" + ("-quick" if args.quick else "")
    path = args.out / f"{stem}.json"
    if path.exists():
        path = args.out / f"{stem}-{started:%H%M%S}.json"
    if device == "cpu":
        reason = "no CUDA device on this machine"
        record["skipped"] = {"the GPU's run (probes, fit at 512², variants with CUDA graphs, K = 8 and 32, "
                             "CUDA host waits, the paper's loop at 512²)": reason}
    z = sizes(args.quick, device)
    figures = record["figures"]

    def save(complete: bool) -> None:  # after every section: a run cut short keeps what it measured
        record.update(targets=targets(figures, device), complete=complete, load_average_end=load(),
                      wall_s=round(time.perf_counter() - budget.start, 1))
        path.write_text(json.dumps(record, indent=1) + "\n")

    for section in SECTION_ORDER:
        if section in only:
            run_section(section, figures, z, budget, args, device)
            save(complete=False)
    save(complete=True)
    log(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} in {record['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
