"""``dipkit bench``: the paper's protocol over a folder of benchmark images (:mod:`dipkit.bench`).

The folder argument is a folder or the name of one of the paper's sets (``set9``, ``classic5``,
``bernoulli11``), which :func:`dipkit.datasets.path` fetches and caches on first use.

The command checks its options and output files, runs :func:`dipkit.bench.run` with a callback
that appends each row to the CSV as soon as it is measured (so an interrupted run keeps its
rows), and prints the summary table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import bench as benchmark, datasets, images
from ..errors import DipkitError
from ..presets import PAPER, PROFILES, get_profile
from .common import STEPS, add_device, device, listed, number, say

__all__ = ["add_parser", "command", "EXAMPLES"]

EXAMPLES = """\
tasks (the paper's protocol: book/protocol.md of the book; deblock and inpaint convert RGB to gray):
  denoise   Gaussian noise, sigma = 25/255 (e.g. FOLDER = set9)
  deblock   JPEG, quality 10 (e.g. classic5)
  inpaint   the folder's NAME_mask.png masks (white = known), else 50 % Bernoulli (bernoulli11)

methods:
  paper     the paper's decoder with its lambda, stopped by the blurriness/sharpness ratio rule
  dip       the original DIP (hourglass), fixed budget, reported at the end and at its peak

examples:
  dipkit bench denoise set9 -o set9.csv --resize 64 --seeds 0,1
  dipkit bench inpaint bernoulli11 -o b11.csv --methods paper --crop 128
  dipkit bench deblock classic5 -o c5.csv --profile full --device cuda --summary c5.md
  dipkit bench denoise my_images/ -o mine.csv

FOLDER is a folder of images or the name of one of the paper's sets: set9, classic5, bernoulli11.
A set is downloaded from the paper's code release on first use (hashes checked) and cached;
$DIPKIT_DATA names a local copy instead (a folder holding set9/, classic5/, bernoulli11/). An
existing folder of the same name wins over the set.

One CSV row per (image, method, seed), appended as soon as it is measured: an interrupted run
keeps its rows. At the end the mean +- std per method is printed (and written by --summary).
Exit status: 0 done, 2 bad input, 130 interrupted (Ctrl-C).
"""

#: The type of --resize and --crop.
SIDE = number(int, 1, 10 ** 5, "a side in pixels >= 1")


def add_parser(commands) -> None:
    """Add ``bench`` to the subparsers ``commands``."""
    q, f = PROFILES["quick"], PROFILES["full"]
    p = commands.add_parser(
        "bench", help="the paper's protocol over a folder of images, several methods and seeds, to a CSV",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Degrade every image of FOLDER, restore it with each method and seed, and write\n"
                    "one CSV row per run: PSNR/SSIM at the method's stop, the oracle peak, the end,\n"
                    "where ES-WMV would have stopped, and the time.")
    p.add_argument("task", choices=benchmark.BENCH_TASKS, help="what to benchmark (see 'tasks' below)")
    p.add_argument("folder", metavar="FOLDER",
                   help="a folder of images (NAME_mask.png files are inpainting masks), or a set name: "
                        f"{', '.join(datasets.SETS)} (fetched and cached on first use)")
    p.add_argument("-o", "--output", metavar="CSV", required=True, help="the CSV file to write")
    p.add_argument("--methods", type=listed(str, f"a comma-separated list of {', '.join(benchmark.METHODS)}",
                                            benchmark.METHODS),
                   default=benchmark.METHODS, help=f"default {','.join(benchmark.METHODS)}")
    p.add_argument("--seeds", type=listed(int, "a comma-separated list of distinct seeds in 0..2**31-1, e.g. 0,1,2"),
                   default=(0, 1, 2), help="seeds of the degradation, the input code and the weights (default 0,1,2)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resize", type=SIDE, metavar="N",
                   help="shrink each whole image to a shorter side of N (area averaging; masks "
                        "by nearest neighbour)")
    g.add_argument("--crop", type=SIDE, metavar="N", help="centre-crop each image to N x N")
    p.add_argument("--steps", type=STEPS,
                   help=f"step budget of every method (default: the presets' budgets, capped at {q.steps} "
                        f"in the quick profile; full: {PAPER['denoise'].steps} paper, 3000 DIP, 11000 DIP inpainting)")
    p.add_argument("--eswmv-patience", metavar="STEPS", type=STEPS,
                   help=f"patience of the ES-WMV monitor (window 100 steps); default ES-WMV's 1000 "
                        f"scaled by the profile's budget: {benchmark.default_eswmv_patience(q)} quick, "
                        f"{benchmark.default_eswmv_patience(f)} full")
    p.add_argument("--watch", type=listed(str, f"a comma-separated list of {', '.join(benchmark.WATCHABLE)}",
                                          allowed=benchmark.WATCHABLE),
                   default=(), help="more rules that watch every fit besides ES-WMV, each adding its step and "
                                    "PSNR columns: discrepancy (the residual at the noise level; not for inpaint)")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help=f"quick: {q.channels} channels, probes every {q.probe_every}; full (the paper): "
                        f"{f.channels} channels, probes every {f.probe_every}. Default: $DIPKIT_PROFILE, "
                        f"else gpu on CUDA, quick otherwise")
    add_device(p)
    p.add_argument("--summary", metavar="FILE", help="also write the summary table (Markdown) to FILE")
    p.add_argument("--force", action="store_true", help="overwrite the CSV (and --summary) when they exist")
    p.add_argument("--quiet", action="store_true", help="no line per run")
    p.set_defaults(func=command)


def _check_outputs(args) -> list:
    """The files to write; refuses folders, missing parent folders, the same file twice, and
    existing files without --force."""
    files = [Path(args.output)] + ([Path(args.summary)] if args.summary else [])
    if len(files) == 2 and files[0].resolve() == files[1].resolve():
        raise DipkitError("--summary and --output name the same file; choose two file names")
    for path, option in zip(files, ("--output", "--summary")):
        if path.is_dir():
            raise DipkitError(f"{option} '{path}' is a folder; give a file name")
        if path.exists() and not args.force:
            raise DipkitError(f"{option} '{path}' exists; pass --force to overwrite it, or choose another name")
        if not path.parent.is_dir():
            raise DipkitError(f"the folder of {option} '{path}', '{path.parent}', does not exist; create it first")
    return files


def _check_sizes(args, profile) -> None:
    least = 2 ** profile.depth
    for option, side in (("--resize", args.resize), ("--crop", args.crop)):
        if side is not None and side < least:
            raise DipkitError(f"{option} {side} is below {least}, the least side the networks of the "
                              f"{profile.name} profile take; give {option} {least} or more")


def _row_writer(args, out: Path, rows: list, n: int):
    """The on_row callback: append the row to the CSV (the first row starts it afresh) and say it."""
    def on_row(row):
        if not rows and out.exists():
            out.unlink()  # --force: the first row starts the file afresh
        benchmark.append_csv(row, out)
        rows.append(row)
        say(args, f"[{len(rows)}/{n}] {row['image']} {row['method']} seed {row['seed']}: "
                  f"{row['psnr']:.2f} dB at step {row['stop_step']} (peak {row['oracle_psnr']:.2f} dB "
                  f"at {row['oracle_step']}, end {row['final_psnr']:.2f} dB), {row['seconds']:.1f} s")
    return on_row


def command(args) -> int:
    """``dipkit bench``: see :mod:`dipkit.bench` and ``dipkit bench --help``."""
    out, *summary_file = _check_outputs(args)
    profile, dev = get_profile(args.profile), device(args.device)
    _check_sizes(args, profile)
    folder = datasets.resolve(args.folder)
    items = images.load_folder(folder)
    n = len(items) * len(args.methods) * len(args.seeds)
    scale = (f"resized to a shorter side of {args.resize}" if args.resize else
             f"centre-cropped to {args.crop}x{args.crop}" if args.crop else "at full size")
    say(args, f"dipkit bench {args.task}: {len(items)} images of '{args.folder}'"
              f"{'' if folder == Path(args.folder) else f' ({folder})'} {scale}, methods "
              f"{','.join(args.methods)}, seeds {','.join(map(str, args.seeds))}: {n} fits, "
              f"{profile.name} profile, {dev} -> '{out}'")
    rows, interrupted = [], False
    try:
        benchmark.run(args.task, items, methods=args.methods, seeds=args.seeds, profile=profile,
                      size=args.crop, resize=args.resize, steps=args.steps,
                      eswmv_patience=args.eswmv_patience, watch=args.watch, device=dev,
                      on_row=_row_writer(args, out, rows, n))
    except KeyboardInterrupt:
        interrupted = True
        print(f"\ndipkit bench: interrupted after {len(rows)} of {n} runs; "
              f"{'their rows are in ' + repr(str(out)) if rows else 'no row was written'}", file=sys.stderr)
    if not rows:
        return 130 if interrupted else 0
    table = benchmark.format_summary(benchmark.summarize(rows))
    print(f"\n{args.task}: mean ± std per method over {len(rows)} runs in all (PSNR and gaps in dB, "
          f"steps, seconds of wall time per run)\n{table}")
    if summary_file:
        summary_file[0].write_text(table + "\n")
        print(f"wrote {summary_file[0]}")
    print(f"wrote {out} ({len(rows)} rows)")
    return 130 if interrupted else 0
