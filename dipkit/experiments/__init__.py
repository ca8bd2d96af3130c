"""Experiments as data: declared sweeps, a resumable runner, a results store with provenance.

>>> import dipkit.experiments as ex
>>> records = ex.load("lipschitz", "quick")            # doctest: +SKIP
>>> records.fmt("psnr_best", lipschitz=1.4)             # doctest: +SKIP
'25.41 ± 0.07 (n = 3)'

The command line: ``dipkit experiments list`` and ``dipkit experiments run NAME --profile P``.
"""

from .book import EXPERIMENTS
from .record import Record, Records, decode_image, encode_image, make_record, stat
from .runner import MEASURES, load, recompute_requested, run
from .setup import Prepared, fit_setting, monitor_rules, prepare
from .spec import Experiment, setting_key
from .store import Store, default_root, provenance

__all__ = ["EXPERIMENTS", "Experiment", "Record", "Records", "Store", "Prepared", "MEASURES",
           "run", "load", "prepare", "fit_setting", "monitor_rules", "make_record", "stat",
           "setting_key", "provenance", "default_root", "recompute_requested",
           "encode_image", "decode_image"]
