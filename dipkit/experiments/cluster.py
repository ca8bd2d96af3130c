"""Fits on a Dask cluster: a local one started for the run, or a running one by its address.

:func:`fit_all` submits one task per setting and yields the records in the order the fits end,
so that the runner appends each to the store (in the parent process) as soon as it arrives: an
interrupted sweep keeps what finished and resumes like a sequential one. Any cluster with a
Dask scheduler works; on Slurm, start one with ``dask-jobqueue`` (``SLURMCluster``, then
``cluster.scale(jobs=...)``) and pass ``cluster.scheduler_address``.

``distributed`` is imported only here and only when a cluster is asked for: dipkit imports
without it (``pip install "dipkit[cluster]"`` installs it).
"""

from __future__ import annotations

import functools
import numbers
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, Optional, Sequence

from ..errors import DipkitError
from .spec import setting_key

__all__ = ["fit_all", "connect"]

_INSTALL = 'pip install "dipkit[cluster]"'


def _distributed():
    """The ``distributed`` module, or a DipkitError saying how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise DipkitError(f"running fits on a Dask cluster needs dask and distributed: "
                          f"{_INSTALL}") from exc
    return distributed


def _check(workers, scheduler) -> None:
    if workers is None and scheduler is None:
        raise DipkitError("give workers (a local Dask cluster) or scheduler (a running one's address)")
    if workers is not None and scheduler is not None:
        raise DipkitError(f"give workers (a local Dask cluster) or scheduler (a running one), not "
                          f"both: got workers={workers!r}, scheduler={scheduler!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                or workers < 1):
        raise DipkitError(f"workers must be a whole number of processes, at least 1; got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise DipkitError(f"scheduler must be an address such as 'tcp://host:8786'; got {scheduler!r}")


@contextmanager
def connect(workers: Optional[int] = None, scheduler: Optional[str] = None):
    """A ``distributed.Client``: to a local cluster started now, or to the scheduler at an address.

    Parameters
    ----------
    workers : int, optional
        Start a ``LocalCluster`` of this many single-threaded worker processes (closed on exit).
    scheduler : str, optional
        The address of a running scheduler, e.g. ``'tcp://10.0.0.5:8786'``.

    Yields
    ------
    distributed.Client
        Closed on exit, with the local cluster if one was started.
    """
    _check(workers, scheduler)
    distributed = _distributed()
    with ExitStack() as stack:
        if scheduler is None:
            scheduler = stack.enter_context(distributed.LocalCluster(
                n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None))
        try:
            client = distributed.Client(scheduler)
        except (OSError, ValueError, TypeError) as exc:  # refused, timed out, unparsable
            raise DipkitError(f"could not connect to the Dask scheduler at {scheduler!r}: "
                              f"{type(exc).__name__}: {exc}") from exc
        yield stack.enter_context(client)


def _on_worker(function: Callable, settings: dict) -> dict:
    """Run one fit on a worker; its record's provenance says which worker, with how many threads."""
    from distributed import get_worker

    record = function(settings)
    worker = get_worker()
    record["provenance"].update(worker=worker.address, worker_threads=worker.state.nthreads)
    return record


def _result(future, settings: dict) -> dict:
    try:
        return future.result()
    except Exception as exc:
        raise DipkitError(f"the fit of {setting_key(settings)} failed on the Dask cluster: "
                          f"{type(exc).__name__}: {exc}") from exc


def _records(distributed, task: Callable, todo: Sequence[dict], workers, scheduler) -> Iterator[dict]:
    if not todo:  # no cluster to start for nothing
        return
    with connect(workers, scheduler) as client:
        futures = {client.submit(_on_worker, task, settings, pure=False): settings for settings in todo}
        try:
            for future in distributed.as_completed(futures):
                yield _result(future, futures[future])
        finally:
            client.cancel(list(futures))


def fit_all(function: Callable, todo: Sequence[dict], *, workers: Optional[int] = None,
            scheduler: Optional[str] = None, **options) -> Iterator[dict]:
    """``function(settings, **options)`` for every settings of ``todo``, one Dask task each.

    Parameters
    ----------
    function : callable
        The fit, e.g. :func:`dipkit.experiments.runner.fit_record`; it returns a record dict.
    todo : sequence of dict
        The settings to fit.
    workers, scheduler
        As :func:`connect` (exactly one of them).
    **options
        Keywords passed to ``function`` (the profile, measures, device, ...).

    Returns
    -------
    iterator of dict
        The records in the order the fits end. Bad arguments and a missing ``distributed`` raise
        at once; a failed fit raises a DipkitError naming its setting (the others are cancelled).
        Close the iterator to cancel what is not done and shut a local cluster down.
    """
    _check(workers, scheduler)
    distributed = _distributed()
    return _records(distributed, functools.partial(function, **options), todo, workers, scheduler)
