"""The benchmark suite's sections for a GPU (issue 12, item 2); on a CPU they run as well.

- ``syncs``: does the fit loop wait for the device between probes? On CUDA, the host waits that
  ``torch.cuda.set_sync_debug_mode('warn')`` reports in a fit of n steps and one of 2n steps
  (probes only at the end): their difference over n is the waits per step. On any device, the
  operators that would wait (``tests/host_reads.py``) per step, counted the same way.
- ``paper_loop``: dipkit's fit against a loop that does at every step what the paper's script
  does: the exact SVD of every Lipschitz layer, the output to the host, PSNR, FBC and the
  blur/sharpness ratio in NumPy/SciPy (``tests/reference_probes.py``), a copy of the
  parameters to the host for backtracking. Same network, code and steps: the two fits differ
  only by rounding (target: speed-up ≥ 10×, PSNR within 0.2 dB, compared over longer fits, see
  :func:`bench_paper_loop`).
- ``variants``: the fit's options (channels-last, bf16 autocast, ``torch.compile`` in its
  default mode and ``'reduce-overhead'``, i.e. CUDA graphs) against the default: ms per step
  after a warm-up, and the PSNR after the same steps (target: within 0.1 dB). Compiling runs
  in a child process with a deadline.

Each function returns a JSON-ready dict; :mod:`benchmarks.run` calls them.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
import warnings
from collections import Counter

import numpy as np
import torch

import dipkit
import dipkit.layers
from dipkit.callbacks import Callback
from dipkit.degradations import GaussianNoise
from dipkit.fit import default_device
from dipkit.presets import PAPER
from dipkit.stopping import RatioRule
from host_reads import WatchSteps
from reference_probes import blur_reference, fbc_reference, gray_reference, sharpness_reference

__all__ = ["bench_syncs", "bench_paper_loop", "bench_variants", "variant_worker", "variant_in_subprocess",
           "denoising_task", "sync"]


def denoising_task(size: int):
    """The suite's image: astronaut at ``size``² and its noisy version (σ = 25/255, seed 0)."""
    clean = dipkit.images.sample("astronaut", size=size)
    return clean, GaussianNoise(25 / 255).observe(clean, seed=0)


def _device() -> torch.device:
    return default_device()


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a CUDA device; nothing to wait for elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock(Callback):
    """Wall seconds from the end of step ``warm`` (device synchronised) to the end of the fit."""

    def __init__(self, warm: int):
        self.warm, self.start, self.seconds = warm, None, math.nan

    def on_step(self, engine):
        if engine.step == self.warm:
            sync(engine.device)
            self.start = time.perf_counter()

    def on_end(self, engine):  # the engine synchronises the device before on_end
        if self.start is not None:
            self.seconds = time.perf_counter() - self.start


@contextlib.contextmanager
def _spectral_norm(norm):
    """The Lipschitz layers with ``norm(weight)`` as their spectral norm, within the block."""
    saved = dipkit.layers.spectral_norm
    dipkit.layers.spectral_norm = lambda w, method=None: norm(w)
    try:
        yield
    finally:
        dipkit.layers.spectral_norm = saved


def _exact_svd():
    """The paper's exact SVD (torch.linalg.svdvals) in every Lipschitz layer."""
    return _spectral_norm(lambda w: torch.linalg.svdvals(w.reshape(w.shape[0], -1))[0])


# ---------------------------------------------------------------------------------------------
# syncs
# ---------------------------------------------------------------------------------------------


def bench_syncs(size: int, arch: dict, steps: int = 10) -> dict:
    """Host waits per step between probes, with the paper's denoising settings (λ, backtracking,
    the paper's rule watching). ``steps`` and ``2 * steps`` must divide the rule's 100-step window."""
    clean, y = denoising_task(size)
    device = _device()
    kw = dict(PAPER["denoise"].fit_kwargs(), clean=clean, progress=False, stop=None,
              monitor={"paper": RatioRule()})
    kw.pop("steps"), kw.pop("probe_every")

    def one(n, callbacks=()):
        return dipkit.fit(dipkit.decoder(**arch, seed=0), y, steps=n, probe_every=n,
                          callbacks=list(callbacks), **kw)

    one(2)  # warm-up
    counter = WatchSteps(steps - 1)  # the probe is at the last step
    # the norm a GPU computes, on any device (the CPU's exact solver would wait on a GPU)
    squaring = dipkit.layers.spectral_norm
    with _spectral_norm(lambda w: squaring(w, "squaring")):
        one(steps, [counter])
    ops = Counter(counter.found)
    out = dict(image=f"astronaut {size}x{size}", network=f"decoder {arch}", device=str(device),
               spectral_norm="squaring (the GPU's default; forced on a CPU for this count)",
               syncing_ops_per_step=round(sum(ops.values()) / (steps - 2), 3), syncing_ops=dict(ops))
    if device.type == "cuda":
        waits = []
        for n in (steps, 2 * steps):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    one(n)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            waits.append(sum("synchroniz" in str(w.message) for w in caught))
        out.update(cuda_waits={f"{n} steps": w for n, w in zip((steps, 2 * steps), waits)},
                   cuda_waits_per_step=round((waits[1] - waits[0]) / steps, 3))
    return out


# ---------------------------------------------------------------------------------------------
# the paper's loop
# ---------------------------------------------------------------------------------------------


def _psnr_np(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def paper_style_fit(arch: dict, y: torch.Tensor, clean: torch.Tensor, steps: int, device) -> dict:
    """``steps`` steps of the paper's denoising fit, the way its script runs them (see the module
    docstring); the network, code and Adam are dipkit's, with the same seeds as ``dipkit.fit``."""
    preset = PAPER["denoise"]
    model = dipkit.decoder(**arch, seed=0).to(device).train()
    h, w = y.shape[-2:]
    code = model.make_code(h, w, 0).to(device)
    y_dev = y.to(device)
    y_np, clean_np = y[0].permute(1, 2, 0).numpy(), clean[0].permute(1, 2, 0).numpy()
    y_gray = gray_reference(y_np)
    opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
    saved, last_psnr, out_np = None, None, None
    sync(device)
    start = time.perf_counter()
    with _exact_svd():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            out = model(code)
            torch.mean((out - y_dev) ** 2).backward()
            opt.step()
            out_np = out.detach()[0].permute(1, 2, 0).cpu().numpy().astype(np.float64)
            psnr_obs = _psnr_np(out_np, y_np)
            _psnr_np(out_np, clean_np)
            gray = gray_reference(out_np)
            fbc_reference(gray, y_gray), blur_reference(gray) / sharpness_reference(gray)
            if last_psnr is not None and psnr_obs - last_psnr < -5:  # the paper's backtracking
                with torch.no_grad():
                    for p, s in zip(model.parameters(), saved):
                        p.copy_(s)
            else:
                saved = [p.detach().cpu().clone() for p in model.parameters()]
                last_psnr = psnr_obs
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, psnr=_psnr_np(out_np, clean_np))


def _timed_fit(arch: dict, y, clean, steps: int, device, **overrides):
    """dipkit's fit with the paper's denoising settings (its rule watching, not stopping):
    (Run, wall seconds of the call, the device synchronised)."""
    kw = dict(PAPER["denoise"].fit_kwargs(), clean=clean, progress=False, stop=None,
              monitor={"paper": RatioRule()})
    kw.update(steps=steps, probe_every=10 if steps % 10 == 0 else 1, **overrides)
    sync(device)
    start = time.perf_counter()
    run = dipkit.fit(dipkit.decoder(**arch, seed=0), y, **kw)
    return run, time.perf_counter() - start


def bench_paper_loop(size: int, arch: dict, seconds: float, min_steps: int = 3) -> dict:
    """dipkit's fit against :func:`paper_style_fit`, within about ``seconds``.

    Time: both over the same n steps (n from the loop's cost and a third of ``seconds``).
    PSNR: a fit is chaotic, so rounding alone moves its PSNR at a given early step by tenths of a
    dB; the PSNRs are compared over longer fits (as many steps as the rest of ``seconds``
    allows): dipkit's, and dipkit's with the paper's exact SVD in every layer, which is the
    paper loop's arithmetic (its host metrics do not change the fit; checked: after n steps
    the two agree to the rounding of the SVD)."""
    clean, y = denoising_task(size)
    device = _device()
    deadline = time.perf_counter() + seconds
    probe = paper_style_fit(arch, y, clean, 2, device)  # warm-up, and the cost of a step
    n = max(min_steps, min(2000, int(seconds / 3 / max(probe["seconds"] / 2, 1e-6))))
    paper = paper_style_fit(arch, y, clean, n, device)
    _timed_fit(arch, y, clean, 2, device)  # warm-up
    run, ours = _timed_fit(arch, y, clean, n, device)
    with _exact_svd():
        svd_run, svd_s = _timed_fit(arch, y, clean, n, device)
    per_pair = (ours + svd_s) / n
    m = int(max(n, min(3000, (deadline - time.perf_counter()) / per_pair)) // 10 * 10) or n
    long_run, _ = _timed_fit(arch, y, clean, m, device)
    with _exact_svd():
        long_svd, _ = _timed_fit(arch, y, clean, m, device)
    out = dict(image=f"astronaut {size}x{size}, sigma 25/255", network=f"decoder {arch}",
               device=str(device), steps=n,
               paper_loop=dict(seconds=round(paper["seconds"], 3),
                               ms_per_step=round(1e3 * paper["seconds"] / n, 3),
                               psnr=round(paper["psnr"], 3)),
               dipkit=dict(seconds=round(ours, 3), ms_per_step=round(1e3 * ours / n, 3),
                           psnr=round(float(run.history.psnr[-1]), 3)),
               dipkit_exact_svd=dict(seconds=round(svd_s, 3), psnr=round(float(svd_run.history.psnr[-1]), 3)))
    out["speedup"] = round(paper["seconds"] / ours, 2)
    # the claim that the exact-SVD fit is the paper loop's arithmetic (0 but for backtracking)
    out["paper_loop_minus_exact_svd_fit_db"] = round(paper["psnr"] - float(svd_run.history.psnr[-1]), 4)
    out["paper_loop_10000_steps_s"] = round(10000 * paper["seconds"] / n, 1)
    out["dipkit_10000_steps_s"] = round(10000 * ours / n, 1)
    out["psnr_comparison"] = dict(
        steps=m, note="dipkit's fit and the same fit with the paper's exact SVD (the paper loop's arithmetic)",
        final_db=[round(float(r.history.psnr[-1]), 3) for r in (long_run, long_svd)],
        peak_db=[round(float(r.best_psnr), 3) for r in (long_run, long_svd)])
    c = out["psnr_comparison"]
    out["psnr_difference_db"] = round(c["final_db"][0] - c["final_db"][1], 3)
    out["peak_psnr_difference_db"] = round(c["peak_db"][0] - c["peak_db"][1], 3)
    return out


# ---------------------------------------------------------------------------------------------
# variants of the fit
# ---------------------------------------------------------------------------------------------

#: The fit's options measured against the default; the compiled ones run in a child process.
VARIANTS = {"default": {}, "channels_last": dict(channels_last=True), "bf16": dict(autocast="bf16"),
            "compile": dict(compile=True), "compile reduce-overhead": dict(compile="reduce-overhead")}
COMPILED = ("compile", "compile reduce-overhead")


def _variant_fit(size: int, arch: dict, steps: int, warm: int, options: dict) -> dict:
    clean, y = denoising_task(size)
    clock = StepClock(warm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        run = dipkit.fit(dipkit.decoder(**arch, seed=0), y, steps=steps, probe_every=steps, probes=(),
                         clean=clean, progress=False, callbacks=[clock], **options)
    return dict(ms_per_step=round(1e3 * clock.seconds / (steps - warm), 3),
                warm_up_s=round(run.seconds - clock.seconds, 2) if math.isfinite(clock.seconds) else None,
                total_s=round(time.perf_counter() - start, 2), psnr=round(float(run.history.psnr[-1]), 4),
                config={k: run.config.get(k) for k in ("channels_last", "compile", "autocast")},
                warnings=sorted({str(w.message)[:300] for w in caught}))


def variant_worker(spec: str) -> None:
    """Child process: one variant's fit; prints a JSON line."""
    spec = json.loads(spec)
    print(json.dumps(_variant_fit(spec["size"], spec["arch"], spec["steps"], spec["warm"],
                                  VARIANTS[spec["variant"]])))


def variant_in_subprocess(spec: dict, timeout: float, root) -> dict:
    if timeout < 20:
        return dict(status="skipped: no time left in the budget")
    cmd = [sys.executable, "-m", "benchmarks.run", "--variant-worker", json.dumps(spec),
           "--threads", str(torch.get_num_threads())]
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(status=f"timed out after {timeout:.0f} s (compiling counts): not measured")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return dict(status=f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return dict(status="measured", **json.loads(lines[-1]))


def bench_variants(size: int, arch: dict, steps: int, seconds: float, root, variants=tuple(VARIANTS)) -> dict:
    """Each variant's ms per step (after ``steps // 5`` warm-up steps) and PSNR after ``steps``,
    against the default's; compiled variants in a child process, each within its share of
    ``seconds``."""
    warm = max(1, steps // 5)
    deadline = time.perf_counter() + seconds
    results = {}
    for name in variants:
        spec = dict(size=size, arch=arch, steps=steps, warm=warm, variant=name)
        if name in COMPILED:
            left = [v for v in variants if v in COMPILED and v not in results]
            results[name] = variant_in_subprocess(spec, (deadline - time.perf_counter()) / len(left), root)
        else:
            results[name] = dict(status="measured", **_variant_fit(size, arch, steps, warm, VARIANTS[name]))
    base = results["default"]
    for name, r in results.items():
        if name != "default" and r.get("status") == "measured":
            r["speedup"] = round(base["ms_per_step"] / r["ms_per_step"], 3)
            r["psnr_difference_db"] = round(r["psnr"] - base["psnr"], 4)
    return dict(image=f"astronaut {size}x{size}", network=f"decoder {arch}", steps=steps, warm_up_steps=warm,
                device=str(_device()), variants=results)
