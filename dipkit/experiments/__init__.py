"""Experiments as data: declared sweeps, a resumable runner, a results store with provenance.

>>> import dipkit.experiments as ex
>>> records = ex.load("lipschitz", "quick")            # doctest: +SKIP
>>> records.fmt("psnr_best", lipschitz=1.4)             # doctest: +SKIP
'25.41 ± 0.07 (n = 3)'

The command line: ``dipkit experiments list`` and ``dipkit experiments run NAME --profile P``.

A sweep runs in parallel on a Dask cluster (``pip install "dipkit[cluster]"``):
``run(name, profile, workers=4)`` starts a local cluster of four single-threaded processes for
the run, ``run(name, profile, scheduler="tcp://host:8786")`` uses a running one (on Slurm, a
``dask_jobqueue.SLURMCluster``'s ``scheduler_address``); the CLI takes ``--workers N`` and
``--scheduler ADDRESS``. Each fit is one task running :func:`fit_record`, the function the
sequential loop calls; its record is appended here as soon as it arrives, with the worker's
address in its provenance, so a Dask run resumes and adds like a sequential one. (A script that
starts a local cluster needs the ``if __name__ == "__main__":`` guard: the workers are new
processes.)
"""

from .book import EXPERIMENTS, SET_IMAGES
from .record import Record, Records, decode_image, encode_image, make_record, stat
from .runner import MEASURES, fit_record, load, recompute_requested, run
from .setup import Prepared, fit_setting, monitor_rules, prepare
from .spec import Experiment, setting_key
from .store import Store, default_root, provenance

__all__ = ["EXPERIMENTS", "SET_IMAGES", "Experiment", "Record", "Records", "Store", "Prepared", "MEASURES",
           "run", "load", "fit_record", "prepare", "fit_setting", "monitor_rules", "make_record", "stat",
           "setting_key", "provenance", "default_root", "recompute_requested",
           "encode_image", "decode_image"]
