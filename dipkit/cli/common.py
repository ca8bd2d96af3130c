"""What the commands share: the parser class, the argument types, the device, the messages.

Every check of a command-line value that more than one command makes is here, so that the
commands refuse bad input alike: argparse errors are one line ``dipkit: error: MESSAGE (see
'dipkit --help')``, exit status 2; a :class:`~dipkit.errors.DipkitError` or an ``OSError``
raised by a command becomes ``dipkit COMMAND: error: MESSAGE``, exit status 2
(:func:`dipkit.cli.main`).
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from ..errors import DipkitError
from ..fit import default_device

__all__ = ["Parser", "number", "listed", "STEPS", "add_device", "device", "say", "note"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block): ``PROG: error: MESSAGE (see PROG --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def number(kind, lo, hi, what):
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


def listed(kind, what, allowed=None):
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


#: The type of --steps (and of other numbers of steps): an int >= 1.
STEPS = number(int, 1, 10 ** 7, "a number of steps >= 1")


def add_device(parser) -> None:
    """The --device option (auto, cpu or cuda); :func:`device` turns it into a torch device."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="default auto: CUDA when available")


def device(name: str) -> torch.device:
    """The torch device of --device; a DipkitError for 'cuda' where torch sees no GPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise DipkitError("--device cuda: torch sees no CUDA GPU here; use --device cpu or auto")
    return default_device() if name == "auto" else torch.device(name)


def say(args, message: str) -> None:
    """A line on stdout, unless --quiet."""
    if not args.quiet:
        print(message, flush=True)


def note(args, message: str, warning: bool = False) -> None:
    """``note: MESSAGE`` on stderr unless --quiet; ``warning: MESSAGE`` always."""
    if warning or not args.quiet:
        print(f"{'warning' if warning else 'note'}: {message}", file=sys.stderr, flush=True)
