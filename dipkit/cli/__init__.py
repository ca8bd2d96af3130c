"""The command line: ``dipkit restore`` runs the paper's Deep Image Prior on your own image;
``dipkit bench`` runs the paper's protocol over a folder of benchmark images (:mod:`dipkit.bench`);
``dipkit experiments`` lists and runs the book's experiments (:mod:`dipkit.experiments`).

One module per command, each with ``add_parser(commands)`` and the command function it sets as
``func``: :mod:`~dipkit.cli.restore`, :mod:`~dipkit.cli.bench`, :mod:`~dipkit.cli.experiments`;
:mod:`~dipkit.cli.common` holds the checks they share and :mod:`~dipkit.cli.report` the timing
model and the report of ``restore``. Bad input ends in one line on stderr and exit status 2, never
a traceback. Another command is one more module and one more line in :func:`build_parser`.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import DipkitError
from . import bench, experiments, restore
from .common import Parser

__all__ = ["main", "build_parser"]

EXAMPLES = """\
examples:
  dipkit restore denoise noisy.png -o denoised.png
  dipkit restore --help          # every option of restore, with more examples
  dipkit bench denoise set9 -o set9.csv --resize 64
  dipkit bench --help            # the benchmark runner of the paper's protocol
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``dipkit`` parser, with one subparser per command."""
    parser = Parser(prog="dipkit", formatter_class=argparse.RawDescriptionHelpFormatter,
                    description="dipkit: the Deep Image Prior with the spectral-bias controls of "
                                "Shi et al. (IJCV 2022).", epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"dipkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (restore, bench, experiments):
        module.add_parser(commands)
    return parser


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
