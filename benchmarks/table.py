"""Print the benchmark results as markdown tables: ``.venv/bin/python -m benchmarks.table``.

Reads ``benchmarks/results/*.json`` (written by ``python -m benchmarks.run``): by default every
full (not ``--quick``) run, oldest first; ``--latest`` only the newest per device; or the files
given.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _machine(r: dict) -> str:
    m = r["machine"]
    where = r["device"].upper() if r["device"] != "cpu" else f"{m['processor']}, {m['cores']} cores"
    load = r.get("load_average_start") or []
    busy = f", load avg {load[0]:g}" if load else ""
    return f"{where}, torch {r['torch']}, {r['threads']} thread(s){busy}, {r['date'][:10]}"


def _fmt(v, digits=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _probes(r: dict, p_all: dict) -> list:
    one = r["threads"] > 1  # else the "1 thread" figures repeat the main ones
    paper = all("paper_code" in p["ms"] for p in p_all.values())
    lines = ["| probes (FBC + blur + sharpness), RGB | NumPy/SciPy reference (np.sort) "
             + ("| the paper's code (Python sort) " if paper else "") + "| dipkit | speed-up "
             + ("| speed-up vs the paper's code " if paper else "")
             + ("| dipkit, 1 thread | speed-up, 1 thread " if one else "") + "| max abs. difference |",
             "| --- | --- | --- | --- |" + (" --- | --- |" if paper else "") + (" --- | --- |" if one else "") + " --- |"]
    for size, p in p_all.items():
        diff = max(v for k, v in p["max_abs_difference"].items() if k != "ratio_relative")
        single = (f"{p['ms']['dipkit_1thread']:.3f} ms | {p['speedup_1thread']:.1f}× | " if one else "")
        code = f"{p['ms']['paper_code']:.2f} ms | " if paper else ""
        code_speedup = f"{p['speedup_vs_paper_code']:.1f}× | " if paper else ""
        lines.append(f"| {size}² | {p['ms']['reference']:.2f} ms | {code}{p['ms']['dipkit']:.3f} ms | "
                     f"{p['speedup']:.1f}× | {code_speedup}{single}{diff:.1e} |")
    return lines


def _fit(r: dict, f: dict) -> list:
    lines = ["| fit, paper's decoder (128 ch.) | steps/s, no probes | probes every 1 | every 10 "
             "| every 100 | cost of probing every 10 (timed; from the probe's cost) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for size, p in f.items():
        s = p["steps_per_second"]
        lines.append(f"| {size}² ({p['steps_per_measurement']} steps × {p['repeats']}) | "
                     f"{s['none']:.2f} | {s['every 1']:.2f} | {s['every 10']:.2f} | "
                     f"{s['every 100']:.2f} | {100 * p['overhead_vs_none']['every 10']:+.1f} %; "
                     f"{100 * p['overhead_from_probe_cost']['every 10']:.2f} % |")
    return lines


def _options(r: dict, o: dict) -> list:
    lines = ["| fit options, " + o["image"].split()[-1] + " | ms/step | speed-up | PSNR difference |",
             "| --- | --- | --- | --- |",
             f"| default | {o['default']['ms_per_step']:.1f} | 1 | – |",
             f"| channels_last | {o['channels_last']['ms_per_step']:.1f} | "
             f"{o['channels_last']['speedup']:.2f}× | {o['channels_last']['psnr_difference_db']:+.3f} dB |"]
    c = o.get("compile")
    if c and c.get("status", "").startswith("on"):
        lines.append(f"| compile (warm-up {c['warm_up_s']:.0f} s) | {c['ms_per_step']:.1f} | "
                     f"{c['speedup']:.2f}× | {c['psnr_difference_db']:+.3f} dB |")
    elif c:
        lines.append(f"| compile | {c['status'][:160]} | | |")
    return lines


def _variants(r: dict, v: dict) -> list:
    lines = [f"| fit variants, {v['image'].split()[-1]}, {v['steps']} steps | ms/step | speed-up "
             "| PSNR difference | what ran |", "| --- | --- | --- | --- | --- |"]
    for name, x in v["variants"].items():
        if x.get("status") != "measured":
            lines.append(f"| {name} | {x.get('status', '')[:160]} | | | |")
            continue
        ran = ", ".join(f"{k} {val}" for k, val in x["config"].items() if val not in (None, False, "off"))
        lines.append(f"| {name} | {x['ms_per_step']:.2f} | {_fmt(x.get('speedup', 1.0))}× | "
                     f"{'–' if name == 'default' else format(x['psnr_difference_db'], '+.3f') + ' dB'} | {ran or 'plain'} |")
    return lines


def _batched(r: dict, b: dict) -> list:
    ks = [k for k in b if k.startswith("K=")]
    lines = [f"| {b['network'].split('{')[0].strip()} {b['network'].split(':')[1].split(',')[0].strip()} "
             f"ch., {b['image'].split()[-1]}: ms per member-step | sequential fits | fit_many 'loop' "
             f"| fit_many 'vmap' |", "| --- | --- | --- | --- |"]
    for k in ks:
        ms, sp = b[k]["ms_per_member_step"], b[k]["speedup_vs_sequential"]
        lines.append(f"| {k} | {ms['sequential']:.1f} | {ms['fit_many loop']:.1f} "
                     f"({sp['fit_many loop']:.2f}×) | {ms['fit_many vmap']:.1f} ({sp['fit_many vmap']:.2f}×) |")
    return lines


def _network(text: str) -> str:
    """"decoder {'channels': 128, 'depth': 5, 'lipschitz': 1.4}" → "decoder, 128 ch., depth 5, λ = 1.4"."""
    kind, _, arch = text.partition(" ")
    try:
        a = ast.literal_eval(arch)
    except (ValueError, SyntaxError):
        return text
    return f"{kind}, {a.get('channels')} ch., depth {a.get('depth')}, λ = {a.get('lipschitz')}"


def _paper_loop(r: dict, p: dict) -> list:
    c = p["psnr_comparison"]
    return [f"| {p['image'].split(',')[0]}, {_network(p['network'])} | ms/step | 10 000 steps | PSNR after {p['steps']} steps |",
            "| --- | --- | --- | --- |",
            f"| the paper's loop (exact SVD, NumPy probes, host copies, every step) | {p['paper_loop']['ms_per_step']:.1f} "
            f"| {p['paper_loop_10000_steps_s']:.0f} s | {p['paper_loop']['psnr']:.2f} dB |",
            f"| dipkit.fit (probes every {10 if p['steps'] % 10 == 0 else 1}) | {p['dipkit']['ms_per_step']:.1f} "
            f"| {p['dipkit_10000_steps_s']:.0f} s | {p['dipkit']['psnr']:.2f} dB |",
            "",
            f"Speed-up {p['speedup']:.2f}×. Over {c['steps']} steps, dipkit's fit against the same fit with "
            f"the paper's exact SVD: final {c['final_db'][0]:.2f} vs {c['final_db'][1]:.2f} dB, peak "
            f"{c['peak_db'][0]:.2f} vs {c['peak_db'][1]:.2f} dB."]


def _syncs(r: dict, s: dict) -> list:
    line = (f"Host waits between probes ({s['image']}): {s['syncing_ops_per_step']:g} waiting operators "
            f"per step")
    if "cuda_waits_per_step" in s:
        line += f"; CUDA's sync debug mode: {s['cuda_waits_per_step']:g} waits per step"
    return [line + "."]


SECTIONS = {"probes": _probes, "fit": _fit, "options": _options, "variants": _variants,
            "batched": _batched, "paper_loop": _paper_loop, "syncs": _syncs}


def tables(records: list) -> str:
    lines = []
    for r in records:
        lines.append(f"**{_machine(r)}** (suite wall time {r['wall_s']:.0f} s)\n")
        for name, table in SECTIONS.items():
            if name in r["figures"]:
                lines += table(r, r["figures"][name]) + [""]
        if r.get("skipped"):
            lines.append("Skipped: " + "; ".join(f"{k} ({v})" for k, v in r["skipped"].items()) + ".\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--latest", action="store_true", help="only the newest full run per device")
    args = parser.parse_args(argv)
    files = args.files or sorted(RESULTS.glob("*.json"))
    records = [json.loads(p.read_text()) for p in files]
    if not args.files:
        records = sorted((r for r in records if not r.get("quick")), key=lambda r: r["date"])
    if args.latest:
        newest = {r["device"]: r for r in records}  # sorted by date: the last one wins
        records = list(newest.values())
    if not records:
        print("no benchmark results: run python -m benchmarks.run first", file=sys.stderr)
        return 1
    print(tables(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
