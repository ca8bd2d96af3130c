"""``dipkit restore``: the paper's Deep Image Prior on your own image, through :mod:`dipkit.restore`.

One helper per concern: the parser, the option checks, the paths, loading, the mask, the
observation (--simulate), the long-run warning, the fit (Ctrl-C keeps the output so far), the
output and the report. The pipeline itself (degradation, padding, network, fit, undoing the
padding, the task's finish) is :func:`dipkit.restore.prepare` and its
:meth:`~dipkit.restore.Restoration.run`: this command checks files and options, says what it
does, and writes the result.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import __version__, images, memory
from ..degradations import JPEG, GaussianNoise, Inpainting, bernoulli_mask
from ..errors import DipkitError, ImageError, ShapeError
from ..fit import Run
from ..metrics import psnr, ssim
from ..presets import PAPER, PROFILES, TASKS, get_profile
from ..restore import AUTO_STOP, prepare
from . import report
from .common import STEPS, add_device, device, note, number, say

__all__ = ["add_parser", "command", "EXAMPLES"]

#: --mask-color: a pixel is missing when each of its channels is within this of the colour.
COLOUR_TOLERANCE = 2 / 255

#: How the task lines of the help say what each rule of ``--stop auto`` does.
_STOPS = {"discrepancy": "stop when the residual reaches the noise level (discrepancy)",
          "eswmv": "stop at the minimum of the outputs' variance (ES-WMV)",
          "paper": "stop when the blur/sharpness ratio levels off (the paper's rule)",
          "heldout": "stop at the minimum of the error on held-out pixels",
          "none": "run every step (the known pixels are exact: no noise to overfit)"}

EXAMPLES = f"""\
tasks (the paper's settings: book/protocol.md of the book, "Task settings of the paper"):
  denoise   INPUT is noisy: fit f to INPUT, {_STOPS[AUTO_STOP['denoise']]}
  deblock   INPUT is JPEG-compressed: fit f to INPUT, {_STOPS[AUTO_STOP['deblock']]}
  inpaint   INPUT has missing pixels (--mask or --mask-color): fit f on the known pixels,
            {_STOPS[AUTO_STOP['inpaint']]}
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

#: Where the noise level came from, for the 'noise level' line.
ESTIMATED = "estimated from INPUT with skimage.restoration.estimate_sigma"


def colour(text):
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


def add_parser(commands) -> None:
    """Add ``restore`` to the subparsers ``commands``."""
    p = commands.add_parser(
        "restore", help="restore your own image: denoise, deblock, inpaint, enhance",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Fit the paper's decoder to INPUT as it is (the observation) and write the\n"
                    "restored image to OUTPUT. Defaults are the paper's settings for the task,\n"
                    "stopped by the rule that the book's stopping study found best for it\n"
                    "(--stop auto; --stop paper for the paper's own rule).")
    p.add_argument("task", choices=TASKS, help="what to do (see 'tasks' below)")
    p.add_argument("input", metavar="INPUT", help="PNG, JPEG, TIFF or BMP file; gray or RGB; 8 or 16 bits")
    p.add_argument("-o", "--output", metavar="OUTPUT", required=True,
                   help="file to write (.png, .tif, .jpg, .bmp); never INPUT itself")
    _add_input_options(p.add_argument_group("the input"))
    _add_fit_options(p.add_argument_group("the fit (defaults: the paper's settings for the task)"))
    g = p.add_argument_group("output")
    g.add_argument("--report", metavar="DIR", help="write curves.png, history.csv and settings.json "
                   "(every setting, to repeat the run) to DIR")
    g.add_argument("--force", action="store_true", help="overwrite OUTPUT when it exists")
    g.add_argument("--yes", action="store_true", help="do not ask before a long run on the CPU")
    g.add_argument("--quiet", action="store_true", help="no progress bar and no notes")
    p.set_defaults(func=command)


def _add_input_options(g) -> None:
    g.add_argument("--simulate", action="store_true", help="INPUT is clean: degrade it first (with "
                   "--sigma, --quality or the mask) and report PSNR/SSIM against it")
    g.add_argument("--clean", metavar="FILE", help="a clean reference of INPUT, for PSNR/SSIM")
    g.add_argument("--sigma", type=number(float, 0, 255, "a noise level in 0..255"),
                   help=f"denoise: noise level on the 0-255 scale, e.g. 25 (default: estimated from "
                        f"INPUT with skimage.restoration.estimate_sigma; "
                        f"{PAPER['denoise'].sigma * 255:g} with --simulate)")
    g.add_argument("--quality", type=number(int, 1, 100, "a JPEG quality in 1..100"),
                   help=f"deblock --simulate: JPEG quality (default {PAPER['deblock'].quality})")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--mask", metavar="FILE", help="inpaint: mask of INPUT's size, white = known, black = missing")
    m.add_argument("--mask-color", type=colour, metavar="COLOUR", help="inpaint: pixels of this "
                   "colour are missing: '#ff00ff', '255,0,255' or a name")


def _add_fit_options(g) -> None:
    q, f = PROFILES["quick"], PROFILES["full"]
    g.add_argument("--lambda", dest="lam", metavar="LAMBDA", type=number(float, 0.01, 100, "a Lipschitz bound in 0.01..100"),
                   help="Lipschitz bound λ of the 3x3 convolutions (default "
                        + ", ".join(f"{PAPER[t].lipschitz} {t}" for t in TASKS) + ")")
    g.add_argument("--upsample", choices=("bilinear", "nearest", "gaussian", "deconv"),
                   help=f"upsampler of the decoder (default {PAPER['denoise'].upsample})")
    g.add_argument("--steps", type=STEPS,
                   help=f"maximum number of steps (default: the profile's, {q.steps} quick, "
                        f"{f.steps} full; {PAPER['enhance'].steps} for enhance)")
    g.add_argument("--stop", choices=("auto", "paper", "eswmv", "discrepancy", "heldout", "none"), default="auto",
                   help="stopping rule (default auto: the rule the book's stopping study found best for the "
                        "task: " + ", ".join(f"{rule} for {t}" for t, rule in AUTO_STOP.items()) + "). paper: "
                        "the paper's blurriness/sharpness ratio rule. discrepancy: stop when the residual "
                        "falls to the noise level (denoise: "
                        "--sigma or estimated; deblock: derived from --quality); heldout: hold 5%% of "
                        "the pixels out of the loss and stop at the minimum of their error (any task). "
                        "The book's chapter 'Which stopping rule?' compares them")
    g.add_argument("--seed", type=number(int, 0, 2 ** 31 - 1, "a seed in 0..2**31-1"), default=0,
                   help="seed of the network, its input code and --simulate (default 0)")
    add_device(g)
    g.add_argument("--profile", choices=sorted(PROFILES),
                   help=f"quick: {q.channels} channels, {q.steps} steps, probes every {q.probe_every}; "
                        f"full (the paper): {f.channels} channels, {f.steps} steps, probes every "
                        f"{f.probe_every}. Default: $DIPKIT_PROFILE, else gpu on CUDA, quick otherwise")


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
        note(args, f"INPUT has 16 bits per channel, {out.suffix} files 8; use .png or .tif to keep 16")
    return out, 16 if deep else 8, info


def _load(args, path, what: str) -> torch.Tensor:
    """An image file as (1, C, H, W); the library's warnings (alpha dropped, ...) become notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x = images.load(path)
    for w in caught:
        note(args, f"{what}: {w.message}")
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
    say(args, f"mask: {100 * float(mask.float().mean()):.1f}% of the pixels known")
    return mask


def _observation(args, image: torch.Tensor, mask) -> tuple:
    """(observation, what :func:`dipkit.restore.prepare` is told of it): INPUT as it is, or
    degraded with --simulate (sigma in [0, 1] units, the JPEG quality, the mask)."""
    known = dict(mask=mask) if args.task == "inpaint" else {}
    if args.task == "denoise":
        sigma = args.sigma / 255 if args.sigma is not None else None
        known["sigma"] = PAPER["denoise"].sigma if sigma is None and args.simulate else sigma
    if args.quality is not None and not args.simulate:
        note(args, "--quality only shapes --simulate; INPUT is used as it is")
    if not args.simulate:
        return image, known
    if args.task == "deblock":
        known["quality"] = args.quality or PAPER["deblock"].quality
    make = {"denoise": lambda: GaussianNoise(known["sigma"]), "inpaint": lambda: Inpainting(mask),
            "deblock": lambda: JPEG(known["quality"])}[args.task]
    return make().observe(image, seed=args.seed), known


def _noise_level(args, restoration) -> None:
    """denoise: say the noise level (0-255) and where it came from; note an almost clean INPUT."""
    if args.task != "denoise":
        return
    sigma = _sigma_255(args, restoration)
    source = "given" if args.sigma is not None else "the paper's" if args.simulate else ESTIMATED
    say(args, f"noise level: σ = {sigma:.1f}/255 ({source})")
    if not args.simulate and sigma < 2:
        note(args, f"INPUT looks almost noise-free (σ = {sigma:.1f}/255): denoising will mostly smooth it")


def _sigma_255(args, restoration):
    """The noise level on the 0-255 scale (None but for denoise)."""
    sigma = restoration.record["sigma"]
    return args.sigma if args.sigma is not None else None if sigma is None else sigma * 255


def _go_on(args, c: SimpleNamespace) -> bool:
    """Warn before a long CPU run with the estimated time and memory; ask when stdin is a TTY."""
    r = c.restoration
    (h, w), width, steps = r.observation.shape[-2:], r.model.config["channels"], r.fit["steps"]
    seconds = report.fit_seconds(h, w, width, steps)
    if c.device.type != "cpu" or seconds < report.LONG_RUN:
        return True
    size = memory.estimate(r.model, h, w, backtrack=r.fit["backtrack"])
    size = f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MiB"
    note(args, f"up to {steps} steps on {w}x{h} pixels with {width} channels on the CPU: about "
               f"{seconds / 60:.0f} min and {size} of memory for the fit (estimates); "
               f"--device cuda, --profile quick or fewer --steps are faster", warning=True)
    if args.yes or not sys.stdin.isatty():
        return True
    try:
        return input("go on? [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _setup(args) -> SimpleNamespace:
    """Check everything, load the images, prepare the restoration: what the fit needs."""
    _check_options(args)
    out, bit_depth, info = _check_paths(args)
    image = _load(args, args.input, "INPUT")
    profile, preset = get_profile(args.profile), PAPER[args.task]
    changes = {k: v for k, v in (("lipschitz", args.lam), ("upsample", args.upsample)) if v is not None}
    preset = preset.with_(**changes)
    model = preset.model(image.shape[1], profile, seed=args.seed)
    h, w = image.shape[-2:]
    if min(h, w) < model.min_size:
        raise ShapeError(f"INPUT '{args.input}' is {w}x{h} pixels, too small: restore needs at least "
                         f"{model.min_size}x{model.min_size} (the decoder starts at 1/{model.multiple} of the size)")
    say(args, f"dipkit restore {args.task}: '{args.input}' ({_describe(image, info.bit_depth)}) -> '{out}'")
    clean = _reference(args, image)
    mask = _mask(args, image) if args.task == "inpaint" else None
    observation, known = _observation(args, image, mask)
    restoration = prepare(args.task, observation, preset=preset, profile=profile, model=model,
                          steps=args.steps, stop=args.stop, seed=args.seed, clean=clean, **known)
    _noise_level(args, restoration)
    return SimpleNamespace(out=out, bit_depth=bit_depth, info=info, image=image, profile=profile,
                           clean=clean, mask=mask, observation=observation, restoration=restoration,
                           device=device(args.device))


def _fit(args, c: SimpleNamespace) -> tuple:
    """(Run of the input's size, interrupted): the fit, or on Ctrl-C the output so far (the
    engine returns the Run of the steps done; Ctrl-C before the first step ends the command)."""
    run = c.restoration.run(device=c.device, progress=not args.quiet)
    return run, run.interrupted


def _metrics(result, observation, clean) -> dict:
    pairs = (("", result), ("observation_", observation)) if clean is not None else ()
    return {f"{k}{name}": float(f(x, clean)[0]) for k, x in pairs for name, f in (("psnr", psnr), ("ssim", ssim))}


def _rule_name(restoration) -> str:
    """The stopping rule as a user reads it: e.g. 'discrepancy (auto)', 'paper', 'none'."""
    record = restoration.record
    used = record["stop_used"] if record["stop_used"] is not None else restoration.fit["stop"]
    return f"{used} (auto)" if record["stop"] == "auto" else str(used)


def _summary(args, run: Run, interrupted: bool, c: SimpleNamespace, seconds: float, metrics: dict) -> None:
    fit = c.restoration.fit
    if interrupted:
        print(f"\ninterrupted at step {run.steps_run}: writing the output of that step", file=sys.stderr)
    elif run.stop_step is not None:
        say(args, f"stopped at step {run.stop_step} of {fit['steps']} by the '{_rule_name(c.restoration)}' rule ({seconds:.1f} s)")
    else:
        say(args, f"ran all {run.steps_run} steps ({seconds:.1f} s)")
    if metrics:
        seen = "" if args.task == "enhance" else (f" (observation: {metrics['observation_psnr']:.2f} dB, "
                                                   f"{metrics['observation_ssim']:.4f})")
        print(f"PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f}{seen}")


def _settings(args, c: SimpleNamespace, run: Run, interrupted: bool, metrics: dict, timings: dict) -> dict:
    """Everything needed to repeat the run exactly, for settings.json."""
    r = c.restoration
    return dict(command=["dipkit", *args.argv],
                options={k: v for k, v in vars(args).items() if k not in ("func", "argv")},
                seed=args.seed, versions=dict(dipkit=__version__, torch=torch.__version__,
                                              python=platform.python_version()),
                device=str(c.device), profile=c.profile.as_dict(), model=r.model.config, fit=r.fit,
                sigma_255=_sigma_255(args, r), known_fraction=None if c.mask is None else float(c.mask.float().mean()),
                input=dict(width=c.image.shape[-1], height=c.image.shape[-2], channels=c.image.shape[1],
                           bit_depth=c.info.bit_depth, mode=c.info.mode, alpha=c.info.has_alpha),
                output_bit_depth=c.bit_depth, padding=r.record["padding"],
                stop_step=run.stop_step, steps_run=run.steps_run, interrupted=interrupted,
                metrics=metrics, timings=timings)


def command(args) -> int:
    """``dipkit restore``: see the module docstring and ``dipkit restore --help``."""
    t0 = time.perf_counter()
    c = _setup(args)
    cfg, fit = c.restoration.model.config, c.restoration.fit
    if not _go_on(args, c):
        print("cancelled: nothing was written", file=sys.stderr)
        return 1
    say(args, f"network: the paper's decoder, {cfg['channels']} channels, depth {cfg['depth']}, "
              f"λ = {cfg['lipschitz']}, {cfg['upsample']} upsampling ({c.profile.name} profile); "
              f"up to {fit['steps']} steps, stop rule '{_rule_name(c.restoration)}', seed {args.seed}, {c.device}")
    say(args, "fitting (Ctrl-C stops early and keeps the output so far)")
    t1 = time.perf_counter()
    run, interrupted = _fit(args, c)
    t2 = time.perf_counter()
    result = run.stopped
    metrics = _metrics(result, c.observation, c.clean)
    _summary(args, run, interrupted, c, t2 - t1, metrics)
    images.save(result, c.out, bit_depth=c.bit_depth)
    print(f"wrote {c.out} ({_describe(result, c.bit_depth)})")
    if args.report:
        timings = dict(setup_s=t1 - t0, fit_s=t2 - t1, total_s=time.perf_counter() - t0)
        settings = _settings(args, c, run, interrupted, metrics, timings)
        files = report.write(Path(args.report), run, interrupted, settings,
                             c.observation if args.simulate else None)
        print(f"wrote report: {', '.join(str(f) for f in files)}")
    return 130 if interrupted else 0
