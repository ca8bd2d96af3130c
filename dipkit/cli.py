"""The command line: ``dipkit restore`` runs the paper's Deep Image Prior on your own image;
``dipkit bench`` runs the paper's protocol over a folder of benchmark images (:mod:`dipkit.bench`).

One helper per concern: the parser, the option checks, the paths, loading, the mask, the
observation, the long-run warning, the fit (Ctrl-C keeps the output so far), the output and the
report. Bad input ends in one line on stderr and exit status 2, never a traceback. Another
command is one more ``_add_<name>(commands)`` in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from . import __version__, bench as benchmark, cli_experiments, images, memory
from .degradations import JPEG, GaussianNoise, Inpainting, bernoulli_mask
from .errors import DipkitError, ImageError, ShapeError
from .fit import History, Run, default_device, fit
from .metrics import psnr, ssim
from .presets import PAPER, PROFILES, TASKS, get_profile
from .stopping import StoppingRule

__all__ = ["main", "build_parser", "restore", "bench"]

#: CPU-seconds of one step of the decoder of width w on p pixels: p · (STEP_LINEAR · w +
#: STEP_CONV · w²) on one thread; the estimate divides by torch's threads. Measured with
#: process_time on a 2-core machine (widths 32, 64, 128; 128² and 256²; probes every 10 steps).
STEP_LINEAR, STEP_CONV = 3.6e-8, 6.9e-10
#: Warn (and ask) before a CPU run estimated to take longer than this many seconds.
LONG_RUN = 300
#: --mask-color: a pixel is missing when each of its channels is within this of the colour.
COLOUR_TOLERANCE = 2 / 255

MAIN_EXAMPLES = """\
examples:
  dipkit restore denoise noisy.png -o denoised.png
  dipkit restore --help          # every option of restore, with more examples
  dipkit bench denoise ../shared/data/set9 -o set9.csv --resize 64
  dipkit bench --help            # the benchmark runner of the paper's protocol
"""

BENCH_EXAMPLES = """\
tasks (the paper's protocol, PROTOCOL sections 6-7; deblock and inpaint convert RGB to gray):
  denoise   Gaussian noise, sigma = 25/255 (e.g. FOLDER = ../shared/data/set9)
  deblock   JPEG, quality 10 (e.g. ../shared/data/classic5)
  inpaint   the folder's NAME_mask.png masks (white = known), else 50 % Bernoulli (bernoulli11)

methods:
  paper     the paper's decoder with its lambda, stopped by the blurriness/sharpness ratio rule
  dip       the original DIP (hourglass), fixed budget, reported at the end and at its peak

examples:
  dipkit bench denoise ../shared/data/set9 -o set9.csv --resize 64 --seeds 0,1
  dipkit bench inpaint ../shared/data/bernoulli11 -o b11.csv --methods paper --crop 128
  dipkit bench deblock ../shared/data/classic5 -o c5.csv --profile full --device cuda --summary c5.md

One CSV row per (image, method, seed), appended as soon as it is measured: an interrupted run
keeps its rows. At the end the mean +- std per method is printed (and written by --summary).
Exit status: 0 done, 2 bad input, 130 interrupted (Ctrl-C).
"""

RESTORE_EXAMPLES = f"""\
tasks (the paper's settings, PROTOCOL section 6):
  denoise   INPUT is noisy: fit f to INPUT, stop by the paper's rule
  deblock   INPUT is JPEG-compressed: fit f to INPUT, stop by the paper's rule
  inpaint   INPUT has missing pixels (--mask or --mask-color): fit f on the known pixels
  enhance   fit f to INPUT for {PAPER['enhance'].steps} steps; OUTPUT = clip(INPUT + clip(INPUT - f, 0, 1), 0, 1)

examples:
  dipkit restore denoise photo.png -o photo_dip.png --report photo_report
  dipkit restore deblock scan.jpg -o scan.png
  dipkit restore inpaint damaged.png --mask damaged_mask.png -o repaired.png
  dipkit restore inpaint scribbled.png --mask-color '#ff00ff' -o repaired.png
  dipkit restore denoise clean.png --simulate --sigma 25 -o test.png   # PSNR/SSIM vs clean.png
  dipkit restore enhance portrait.png -o portrait_detail.png

OUTPUT keeps INPUT's size, channels (gray or RGB; alpha is dropped) and bit depth (8 or 16).
Ctrl-C stops the fit early and still writes the output so far. Exit status: 0 done,
1 cancelled at the prompt, 2 bad input, 130 interrupted.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``PROG: error: MESSAGE (see PROG --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind, lo, hi, what):
    """An argparse type: ``kind`` (int or float) in [lo, hi], else an error saying ``what``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return parse


def _colour(text):
    """An argparse type: '#ff00ff', '255,0,255' or a colour name -> (r, g, b) in 0..255."""
    from PIL import ImageColor
    try:
        rgb = tuple(int(v) for v in text.split(",")) if "," in text else ImageColor.getrgb(text)[:3]
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise argparse.ArgumentTypeError(f"{text!r} is not a colour: give '#ff00ff', '255,0,255' "
                                         f"or a name such as 'magenta'")
    return rgb


def build_parser() -> argparse.ArgumentParser:
    """The ``dipkit`` parser, with one subparser per command."""
    parser = _Parser(prog="dipkit", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="dipkit: the Deep Image Prior with the spectral-bias controls of "
                                 "Shi et al. (IJCV 2022).", epilog=MAIN_EXAMPLES)
    parser.add_argument("--version", action="version", version=f"dipkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_restore(commands)
    _add_bench(commands)
    cli_experiments.add_parser(commands)
    return parser


def _add_restore(commands) -> None:
    q, f = PROFILES["quick"], PROFILES["full"]
    p = commands.add_parser(
        "restore", help="restore your own image: denoise, deblock, inpaint, enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RESTORE_EXAMPLES,
        description="Fit the paper's decoder to INPUT as it is (the observation) and write the\n"
                    "restored image to OUTPUT. Defaults are the paper's settings for the task.")
    p.add_argument("task", choices=TASKS, help="what to do (see 'tasks' below)")
    p.add_argument("input", metavar="INPUT", help="PNG, JPEG, TIFF or BMP file; gray or RGB; 8 or 16 bits")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True,
                   help="file to write (.png, .tif, .jpg, .bmp); never INPUT itself")
    g = p.add_argument_group("the input")
    g.add_argument("--simulate", action="store_true", help="INPUT is clean: degrade it first (with "
                   "--sigma, --quality or the mask) and report PSNR/SSIM against it")
    g.add_argument("--clean", metavar="FILE", help="a clean reference of INPUT, for PSNR/SSIM")
    g.add_argument("--sigma", type=_number(float, 0, 255, "a noise level in 0..255"),
                   help=f"denoise: noise level on the 0-255 scale, e.g. 25 (default: estimated from "
                        f"INPUT with skimage.restoration.estimate_sigma; "
                        f"{PAPER['denoise'].sigma * 255:g} with --simulate)")
    g.add_argument("--quality", type=_number(int, 1, 100, "a JPEG quality in 1..100"),
                   help=f"deblock --simulate: JPEG quality (default {PAPER['deblock'].quality})")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--mask", metavar="FILE", help="inpaint: mask of INPUT's size, white = known, black = missing")
    m.add_argument("--mask-color", type=_colour, metavar="COLOUR", help="inpaint: pixels of this "
                   "colour are missing: '#ff00ff', '255,0,255' or a name")
    g = p.add_argument_group("the fit (defaults: the paper's settings for the task)")
    g.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=_number(float, 0.01, 100, "a Lipschitz bound in 0.01..100"),
                   help="Lipschitz bound λ of the 3x3 convolutions (default "
                        + ", ".join(f"{PAPER[t].lipschitz} {t}" for t in TASKS) + ")")
    g.add_argument("--upsample", choices=("bilinear", "nearest", "gaussian", "deconv"),
                   help=f"upsampler of the decoder (default {PAPER['denoise'].upsample})")
    g.add_argument("--steps", type=_number(int, 1, 10 ** 7, "a number of steps >= 1"),
                   help=f"maximum number of steps (default: the profile's, {q.steps} quick, "
                        f"{f.steps} full; {PAPER['enhance'].steps} for enhance)")
    g.add_argument("--stop", choices=("paper", "eswmv", "none"), help="stopping rule (default paper: "
                   "the blurriness/sharpness ratio rule; none for enhance)")
    g.add_argument("--seed", type=_number(int, 0, 2 ** 31 - 1, "a seed in 0..2**31-1"), default=0,
                   help="seed of the network, its input code and --simulate (default 0)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="default auto: CUDA when available")
    g.add_argument("--profile", choices=sorted(PROFILES),
                   help=f"quick: {q.channels} channels, {q.steps} steps, probes every {q.probe_every}; "
                        f"full (the paper): {f.channels} channels, {f.steps} steps, probes every "
                        f"{f.probe_every}. Default: $DIPKIT_PROFILE, else full on CUDA, quick otherwise")
    g = p.add_argument_group("output")
    g.add_argument("--report", metavar="DIR", help="write curves.png, history.csv and settings.json "
                   "(every setting, to repeat the run) to DIR")
    g.add_argument("--force", action="store_true", help="overwrite OUTPUT when it exists")
    g.add_argument("--yes", action="store_true", help="do not ask before a long run on the CPU")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no notes")
    p.set_defaults(func=restore)


def _listed(kind, what, allowed=None):
    """An argparse type: a comma-separated list of distinct ``kind`` values (from ``allowed``)."""
    def parse(text):
        try:
            values = tuple(kind(v.strip()) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        unknown = [v for v in values if (allowed is not None and v not in allowed)
                   or (kind is int and not 0 <= v < 2 ** 31)]
        if unknown:
            raise argparse.ArgumentTypeError(f"{text!r}: {', '.join(map(repr, unknown))} unknown or out of "
                                             f"range; give {what}")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{text!r} repeats a value; give {what}")
        return values
    return parse


def _add_bench(commands) -> None:
    q, f = PROFILES["quick"], PROFILES["full"]
    p = commands.add_parser(
        "bench", help="the paper's protocol over a folder of images, several methods and seeds, to a CSV",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=BENCH_EXAMPLES,
        description="Degrade every image of FOLDER, restore it with each method and seed, and write\n"
                    "one CSV row per run: PSNR/SSIM at the method's stop, the oracle peak, the end,\n"
                    "where ES-WMV would have stopped, and the time.")
    p.add_argument("task", choices=benchmark.BENCH_TASKS, help="what to benchmark (see 'tasks' below)")
    p.add_argument("folder", metavar="FOLDER", help="a folder of images (NAME_mask.png files are inpainting masks)")
    p.add_argument("-o", "--output", metavar="CSV", required=True, help="the CSV file to write")
    p.add_argument("--methods", type=_listed(str, f"a comma-separated list of {', '.join(benchmark.METHODS)}",
                                             benchmark.METHODS),
                   default=benchmark.METHODS, help=f"default {','.join(benchmark.METHODS)}")
    p.add_argument("--seeds", type=_listed(int, "a comma-separated list of distinct seeds in 0..2**31-1, e.g. 0,1,2"),
                   default=(0, 1, 2), help="seeds of the degradation, the input code and the weights (default 0,1,2)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resize", type=_number(int, 1, 10 ** 5, "a side in pixels >= 1"), metavar="N",
                   help="shrink each whole image to a shorter side of N (area averaging; masks "
                        "by nearest neighbour)")
    g.add_argument("--crop", type=_number(int, 1, 10 ** 5, "a side in pixels >= 1"), metavar="N",
                   help="centre-crop each image to N x N")
    p.add_argument("--steps", type=_number(int, 1, 10 ** 7, "a number of steps >= 1"),
                   help=f"step budget of every method (default: the presets' budgets, capped at {q.steps} "
                        f"in the quick profile; full: {PAPER['denoise'].steps} paper, 3000 DIP, 11000 DIP inpainting)")
    p.add_argument("--eswmv-patience", metavar="STEPS", type=_number(int, 1, 10 ** 7, "a number of steps >= 1"),
                   help=f"patience of the ES-WMV monitor (window 100 steps); default ES-WMV's 1000 "
                        f"scaled by the profile's budget: {benchmark.default_eswmv_patience(q)} quick, "
                        f"{benchmark.default_eswmv_patience(f)} full")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help=f"quick: {q.channels} channels, probes every {q.probe_every}; full (the paper): "
                        f"{f.channels} channels, probes every {f.probe_every}. Default: $DIPKIT_PROFILE, "
                        f"else full on CUDA, quick otherwise")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="default auto: CUDA when available")
    p.add_argument("--summary", metavar="FILE", help="also write the summary table (Markdown) to FILE")
    p.add_argument("--force", action="store_true", help="overwrite the CSV (and --summary) when they exist")
    p.add_argument("--quiet", action="store_true", help="no line per run")
    p.set_defaults(func=bench)


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 done, 2 bad input, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else 0
    args.argv = argv
    try:
        return args.func(args)
    except (DipkitError, OSError) as e:
        print(f"dipkit {args.command}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndipkit {args.command}: interrupted", file=sys.stderr)
        return 130


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message, flush=True)


def _note(args, message: str, warning: bool = False) -> None:
    if warning or not args.quiet:
        print(f"{'warning' if warning else 'note'}: {message}", file=sys.stderr, flush=True)


def _check_options(args) -> None:
    """Refuse options that do not belong to the task or contradict each other."""
    only = {"sigma": "denoise", "quality": "deblock", "mask": "inpaint", "mask_color": "inpaint"}
    for name, task in only.items():
        if getattr(args, name) is not None and args.task != task:
            raise DipkitError(f"--{name.replace('_', '-')} is for {task}, not {args.task}")
    if args.simulate and args.clean:
        raise DipkitError("--simulate makes INPUT the reference; give either --simulate or --clean")
    if args.simulate and args.task == "enhance":
        raise DipkitError("enhance has no degradation to simulate; drop --simulate")


def _check_paths(args) -> tuple:
    """(OUTPUT, bit depth to write, INPUT's ImageInfo); refuses OUTPUT = an input file (also
    through another path or a link), and an existing OUTPUT without --force."""
    out = Path(args.output)
    for other in (args.input, args.clean, args.mask):
        if other and (out.resolve() == Path(other).resolve()
                      or (out.exists() and Path(other).exists() and out.samefile(other))):
            raise DipkitError(f"OUTPUT '{out}' is the same file as '{other}'; choose another file name")
    if out.suffix.lower() not in images.IMAGE_EXTENSIONS:
        raise ImageError(f"OUTPUT '{out}' has no image extension; use one of {', '.join(images.IMAGE_EXTENSIONS)}")
    if out.is_dir() or (out.exists() and not args.force):
        raise ImageError(f"OUTPUT '{out}' exists{' and is a folder' if out.is_dir() else ''}; "
                         f"{'give a file name' if out.is_dir() else 'pass --force to overwrite it'}")
    if not out.parent.is_dir():
        raise ImageError(f"the folder of OUTPUT, '{out.parent}', does not exist; create it first")
    if args.report and Path(args.report).exists() and not Path(args.report).is_dir():
        raise DipkitError(f"--report '{args.report}' is a file; give a folder (it is created if missing)")
    info = images.image_info(args.input)
    deep = info.bit_depth == 16 and out.suffix.lower() in (".png", ".tif", ".tiff")
    if info.bit_depth == 16 and not deep:
        _note(args, f"INPUT has 16 bits per channel, {out.suffix} files 8; use .png or .tif to keep 16")
    return out, 16 if deep else 8, info


def _load(args, path, what: str) -> torch.Tensor:
    """An image file as (1, C, H, W); the library's warnings (alpha dropped, ...) become notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = images.load(path)
    for w in caught:
        _note(args, f"{what}: {w.message}")
    return x


def _describe(x: torch.Tensor, bit_depth=None) -> str:
    depth = f", {bit_depth}-bit" if bit_depth else ""
    return f"{x.shape[-1]}x{x.shape[-2]} {'gray' if x.shape[1] == 1 else 'RGB'}{depth}"


def _reference(args, image: torch.Tensor):
    """The clean image for metrics: INPUT itself with --simulate, the --clean file, or None."""
    if args.simulate or not args.clean:
        return image if args.simulate else None
    clean = _load(args, args.clean, "--clean")
    if clean.shape != image.shape:
        raise ShapeError(f"the reference '{args.clean}' is {_describe(clean)} but INPUT is "
                         f"{_describe(image)}; give a reference of the same size and colour")
    return clean


def _mask(args, image: torch.Tensor) -> torch.Tensor:
    """inpaint: True = known, from --mask, --mask-color, or (--simulate) the paper's Bernoulli mask."""
    h, w = image.shape[-2:]
    if args.mask:
        mask = images.rgb_to_gray(_load(args, args.mask, "--mask")) > 0.5
        if mask.shape[-2:] != (h, w):
            raise ShapeError(f"the mask '{args.mask}' is {mask.shape[-1]}x{mask.shape[-2]} pixels but "
                             f"INPUT is {w}x{h}; make the mask the size of the image")
    elif args.mask_color:
        colour = torch.tensor(args.mask_color, dtype=torch.float32).view(1, 3, 1, 1) / 255
        colour = images.rgb_to_gray(colour) if image.shape[1] == 1 else colour
        mask = ((image - colour).abs() > COLOUR_TOLERANCE).any(dim=1, keepdim=True)
    elif args.simulate:
        mask = bernoulli_mask(h, w, PAPER["inpaint"].p_known, seed=args.seed)
    else:
        raise DipkitError("inpaint needs the missing pixels: give --mask FILE (white = known) or "
                          "--mask-color COLOUR")
    if bool(mask.all()):
        raise DipkitError("the mask marks no pixel as missing (all white, or no pixel of that "
                          "colour): nothing to inpaint")
    _say(args, f"mask: {100 * float(mask.float().mean()):.1f}% of the pixels known")
    return mask


def _estimate_sigma(image: torch.Tensor) -> tuple:
    """(noise level on the 0-255 scale, how): ``skimage.restoration.estimate_sigma`` (Donoho's
    median |finest diagonal db2 wavelet coefficient| / 0.6745, averaged over the channels); it
    needs PyWavelets, and without it the same estimator runs on Haar coefficients."""
    a = images.to_numpy(image).astype(np.float64)
    try:
        import pywt  # noqa: F401  (estimate_sigma imports it)
        from skimage.restoration import estimate_sigma
        s = estimate_sigma(a, channel_axis=-1 if a.ndim == 3 else None, average_sigmas=True)
        return 255 * float(s), "skimage.restoration.estimate_sigma"
    except ImportError:
        from scipy.stats import norm
        a = a.reshape(a.shape[0], a.shape[1], -1)[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2]
        hh = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2
        s = np.mean([np.median(np.abs(c[c != 0])) / norm.ppf(0.75) for c in np.moveaxis(hh, -1, 0)])
        return 255 * float(s), "Donoho's wavelet estimate on Haar coefficients (PyWavelets is not installed)"


def _observation(args, image: torch.Tensor, mask):
    """(observation, noise level on 0-255 or None): INPUT as it is, or degraded with --simulate."""
    sigma, source = args.sigma, "given"
    if args.task == "denoise":
        if sigma is None and args.simulate:
            sigma, source = PAPER["denoise"].sigma * 255, "the paper's"
        elif sigma is None:
            sigma, how = _estimate_sigma(image)
            source = f"estimated from INPUT with {how}"
        _say(args, f"noise level: σ = {sigma:.1f}/255 ({source})")
        if not args.simulate and sigma < 2:
            _note(args, f"INPUT looks almost noise-free (σ = {sigma:.1f}/255): denoising will mostly smooth it")
    if args.quality is not None and not args.simulate:
        _note(args, "--quality only shapes --simulate; INPUT is used as it is")
    if not args.simulate:
        return image, sigma
    make = {"denoise": lambda: GaussianNoise(sigma / 255), "inpaint": lambda: Inpainting(mask),
            "deblock": lambda: JPEG(args.quality or PAPER["deblock"].quality)}[args.task]
    return make().observe(image, seed=args.seed), sigma


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise DipkitError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
    return default_device() if name == "auto" else torch.device(name)


def _go_on(args, c: SimpleNamespace) -> bool:
    """Warn before a long CPU run with the estimated time and memory; ask when stdin is a TTY."""
    (h, w), width, steps = c.y.shape[-2:], c.model.config["channels"], c.fit["steps"]
    seconds = h * w * (STEP_LINEAR * width + STEP_CONV * width ** 2) * steps / torch.get_num_threads()
    if c.device.type != "cpu" or seconds < LONG_RUN:
        return True
    size = memory.estimate(c.model, h, w, backtrack=c.fit["backtrack"])
    size = f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MiB"
    _note(args, f"up to {steps} steps on {w}x{h} pixels with {width} channels on the CPU: about "
                f"{seconds / 60:.0f} min and {size} of memory for the fit (estimates); "
                f"--device cuda, --profile quick or fewer --steps are faster", warning=True)
    if args.yes or not sys.stdin.isatty():
        return True
    try:
        return input("go on? [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _setup(args) -> SimpleNamespace:
    """Check everything, load the images, build the network: what the fit needs."""
    _check_options(args)
    out, bit_depth, info = _check_paths(args)
    image = _load(args, args.input, "INPUT")
    profile, preset = get_profile(args.profile), PAPER[args.task]
    changes = {k: v for k, v in (("lipschitz", args.lam), ("upsample", args.upsample)) if v is not None}
    model = preset.with_(**changes).model(image.shape[1], profile, seed=args.seed)
    h, w = image.shape[-2:]
    if min(h, w) < model.min_size:
        raise ShapeError(f"INPUT '{args.input}' is {w}x{h} pixels, too small: restore needs at least "
                         f"{model.min_size}x{model.min_size} (the decoder starts at 1/{model.multiple} of the size)")
    _say(args, f"dipkit restore {args.task}: '{args.input}' ({_describe(image, info.bit_depth)}) -> '{out}'")
    clean = _reference(args, image)
    mask = _mask(args, image) if args.task == "inpaint" else None
    observation, sigma = _observation(args, image, mask)
    overrides = {k: v for k, v in (("steps", args.steps), ("stop", args.stop)) if v is not None}
    y, padding = images.pad_to_multiple(observation, model.multiple)
    pad = lambda x: images.pad_to_multiple(x, model.multiple)[0]  # noqa: E731
    return SimpleNamespace(
        out=out, bit_depth=bit_depth, info=info, image=image, profile=profile, model=model,
        clean=clean, mask=mask, observation=observation, sigma=sigma, device=_device(args.device),
        fit=preset.fit_kwargs(profile, **overrides), y=y, padding=padding,
        clean_padded=None if clean is None else pad(clean),
        mask_padded=None if mask is None else pad(mask.float()) > 0.5)


class _Latest(StoppingRule):
    """A monitor that never stops the fit: keeps the latest probed output and the readings, so
    that Ctrl-C can still write the output so far and its history."""

    def reset(self) -> None:
        super().reset()
        self.output, self.rows, self.start = None, [], time.perf_counter()

    def update(self, step, output, readings) -> bool:
        self.rows.append((step, time.perf_counter() - self.start, dict(readings)))
        self.output = (step, output.clone())
        return False

    def run(self) -> Run:
        """The output so far and its history, as a Run that stopped nowhere."""
        rows = list(self.rows)
        col = {k: torch.stack([r[k] for _, _, r in rows]).double().cpu().numpy() if k in rows[0][2] else None
               for k in ("loss", "psnr", "psnr_observation", "bands", "ratio")}
        history = History(step=np.array([s for s, _, _ in rows]), time=np.array([t for _, t, _ in rows]),
                          loss_every_step=col["loss"], **col)
        out = self.output[1].cpu()
        return Run(final=out, stopped=out, stop_step=None, best=None, best_step=None, best_psnr=None,
                   history=history, steps_run=self.output[0], seconds=rows[-1][1])


def _fit(args, c: SimpleNamespace) -> tuple:
    """(Run, interrupted): the fit, or on Ctrl-C the output so far (after at least one probe)."""
    latest = _Latest()
    try:
        run = fit(c.model, c.y, clean=c.clean_padded, seed=args.seed, device=c.device,
                  degradation=None if c.mask is None else Inpainting(c.mask_padded),
                  progress=not args.quiet, monitor={"latest": latest}, **c.fit)
        return run, False
    except KeyboardInterrupt:
        if latest.output is None:
            raise
        return latest.run(), True


def _finish(task: str, image: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """The restored image from the network output f: f itself, or for enhance (PROTOCOL §6)
    clip(x + clip(x − f, 0, 1), 0, 1)."""
    return (image + (image - f).clamp(0, 1)).clamp(0, 1) if task == "enhance" else f


def _metrics(result, observation, clean) -> dict:
    pairs = (("", result), ("observation_", observation)) if clean is not None else ()
    return {f"{k}{name}": float(f(x, clean)[0]) for k, x in pairs for name, f in (("psnr", psnr), ("ssim", ssim))}


def _summary(args, run: Run, interrupted: bool, c: SimpleNamespace, seconds: float, metrics: dict) -> None:
    if interrupted:
        print(f"\ninterrupted at step {run.steps_run}: writing the output of that step", file=sys.stderr)
    elif run.stop_step is not None:
        _say(args, f"stopped at step {run.stop_step} of {c.fit['steps']} by the '{c.fit['stop']}' rule ({seconds:.1f} s)")
    else:
        _say(args, f"ran all {run.steps_run} steps ({seconds:.1f} s)")
    if metrics:
        seen = "" if args.task == "enhance" else (f" (observation: {metrics['observation_psnr']:.2f} dB, "
                                                   f"{metrics['observation_ssim']:.4f})")
        print(f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}{seen}")


def _plot(run: Run, path: Path, interrupted: bool) -> None:
    """PSNR (with a reference), ratio and band curves over the steps, the stop marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from . import plots

    h = run.history
    panels = [p for p, v in ((plots.psnr_curve, h.psnr), (plots.ratio_curve, h.ratio),
                             (plots.band_curves, h.bands)) if v is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for panel, ax in zip(panels, axes[0]):
        panel(run, ax=ax)
        if interrupted:
            ax.axvline(run.steps_run, color="crimson", ls=":", lw=1.5, label=f"Ctrl-C (step {run.steps_run})")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _settings(args, c: SimpleNamespace, run: Run, interrupted: bool, metrics: dict, timings: dict) -> dict:
    """Everything needed to repeat the run exactly, for settings.json."""
    p = c.padding
    return dict(command=["dipkit", *args.argv],
                options={k: v for k, v in vars(args).items() if k not in ("func", "argv")},
                seed=args.seed, versions=dict(dipkit=__version__, torch=torch.__version__,
                                              python=platform.python_version()),
                device=str(c.device), profile=c.profile.as_dict(), model=c.model.config, fit=c.fit,
                sigma_255=c.sigma, known_fraction=None if c.mask is None else float(c.mask.float().mean()),
                input=dict(width=c.image.shape[-1], height=c.image.shape[-2], channels=c.image.shape[1],
                           bit_depth=c.info.bit_depth, mode=c.info.mode, alpha=c.info.has_alpha),
                output_bit_depth=c.bit_depth, padding=dict(top=p.top, bottom=p.bottom, left=p.left, right=p.right),
                stop_step=run.stop_step, steps_run=run.steps_run, interrupted=interrupted,
                metrics=metrics, timings=timings)


def _report(args, folder: Path, run: Run, interrupted: bool, settings: dict, observation) -> list:
    """Write the curves, the history, the settings (and the simulated observation) to folder."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "curves.png", folder / "history.csv", folder / "settings.json"]
    _plot(run, files[0], interrupted)
    run.history.to_csv(files[1])
    files[2].write_text(json.dumps(settings, indent=2, default=str) + "\n")
    if args.simulate:
        files.append(folder / "observation.png")
        images.save(observation, files[-1])
    return files


def restore(args) -> int:
    """``dipkit restore``: see the module docstring and ``dipkit restore --help``."""
    t0 = time.perf_counter()
    c = _setup(args)
    cfg = c.model.config
    if not _go_on(args, c):
        print("cancelled: nothing was written", file=sys.stderr)
        return 1
    _say(args, f"network: the paper's decoder, {cfg['channels']} channels, depth {cfg['depth']}, "
               f"λ = {cfg['lipschitz']}, {cfg['upsample']} upsampling ({c.profile.name} profile); "
               f"up to {c.fit['steps']} steps, stop rule '{c.fit['stop']}', seed {args.seed}, {c.device}")
    _say(args, "fitting (Ctrl-C stops early and keeps the output so far)")
    t1 = time.perf_counter()
    run, interrupted = _fit(args, c)
    t2 = time.perf_counter()
    result = _finish(args.task, c.image, c.padding.undo(run.stopped))
    metrics = _metrics(result, c.observation, c.clean)
    _summary(args, run, interrupted, c, t2 - t1, metrics)
    images.save(result, c.out, bit_depth=c.bit_depth)
    print(f"wrote {c.out} ({_describe(result, c.bit_depth)})")
    if args.report:
        timings = dict(setup_s=t1 - t0, fit_s=t2 - t1, total_s=time.perf_counter() - t0)
        settings = _settings(args, c, run, interrupted, metrics, timings)
        files = _report(args, Path(args.report), run, interrupted, settings, c.observation)
        print(f"wrote report: {', '.join(str(f) for f in files)}")
    return 130 if interrupted else 0


def _check_bench_outputs(args) -> list:
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


def bench(args) -> int:
    """``dipkit bench``: see :mod:`dipkit.bench` and ``dipkit bench --help``."""
    out, *summary_file = _check_bench_outputs(args)
    profile, device = get_profile(args.profile), _device(args.device)
    least = 2 ** profile.depth
    for option, side in (("--resize", args.resize), ("--crop", args.crop)):
        if side is not None and side < least:
            raise DipkitError(f"{option} {side} is below {least}, the least side the networks of the "
                              f"{profile.name} profile take; give {option} {least} or more")
    items = images.load_folder(args.folder)
    n = len(items) * len(args.methods) * len(args.seeds)
    scale = (f"resized to a shorter side of {args.resize}" if args.resize else
             f"centre-cropped to {args.crop}x{args.crop}" if args.crop else "at full size")
    _say(args, f"dipkit bench {args.task}: {len(items)} images of '{args.folder}' {scale}, methods "
               f"{','.join(args.methods)}, seeds {','.join(map(str, args.seeds))}: {n} fits, "
               f"{profile.name} profile, {device} -> '{out}'")
    rows = []

    def on_row(row):
        if not rows and out.exists():
            out.unlink()  # --force: the first row starts the file afresh
        benchmark.append_csv(row, out)
        rows.append(row)
        _say(args, f"[{len(rows)}/{n}] {row['image']} {row['method']} seed {row['seed']}: "
                   f"{row['psnr']:.2f} dB at step {row['stop_step']} (peak {row['oracle_psnr']:.2f} dB "
                   f"at {row['oracle_step']}, end {row['final_psnr']:.2f} dB), {row['seconds']:.1f} s")

    interrupted = False
    try:
        benchmark.run(args.task, items, methods=args.methods, seeds=args.seeds, profile=profile,
                      size=args.crop, resize=args.resize, steps=args.steps,
                      eswmv_patience=args.eswmv_patience, device=device, on_row=on_row)
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
