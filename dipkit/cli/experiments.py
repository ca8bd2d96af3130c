"""``dipkit experiments``: list the book's experiments and what is stored; run one into the store."""

from __future__ import annotations

import argparse

from ..presets import PROFILES

__all__ = ["add_parser", "command", "EXAMPLES", "CLUSTER"]

EXAMPLES = """examples:
  dipkit experiments list
  dipkit experiments run lipschitz --profile quick
  dipkit experiments run denoising --profile quick --seeds 0 --limit 2   # a piece of a long sweep
  dipkit experiments run lipschitz --profile cpu --workers 4   # 4 local processes (dipkit[cluster])
  dipkit experiments run lipschitz --profile full --scheduler tcp://10.0.0.5:8786
"""

CLUSTER = """on a Dask cluster (pip install "dipkit[cluster]"):
  --workers N starts a local Dask cluster of N single-threaded processes for the run;
  --scheduler ADDRESS sends the fits to a running Dask cluster. Either way each record is
  stored here as soon as its fit ends, so an interrupted run resumes like a sequential one.
  On Slurm, start a cluster with dask-jobqueue (dipkit installed on the nodes) in a Python
  session that stays open, then pass its scheduler's address:
    >>> from dask_jobqueue import SLURMCluster
    >>> cluster = SLURMCluster(cores=1, processes=1, memory="8GB", walltime="04:00:00")
    >>> cluster.scale(jobs=16); cluster.scheduler_address
    'tcp://10.0.0.5:8786'
    $ dipkit experiments run lipschitz --profile full --scheduler tcp://10.0.0.5:8786
"""


def add_parser(commands) -> None:
    """Add ``experiments`` (with its actions ``list`` and ``run``) to the subparsers ``commands``."""
    p = commands.add_parser("experiments", help="the book's experiments: list them, run one into the store",
                            description="List the book's experiments and the records stored for each "
                                        "profile, or run one: fits not yet stored are run and appended "
                                        "one by one, so an interrupted run resumes where it stopped.",
                            epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    results = dict(default=None, help="the store's folder (default: $DIPKIT_RESULTS, else the package's dipkit/results)")
    listing = sub.add_parser("list", help="every experiment, with its fits per profile, how many are stored "
                                          "and their compute in hours")
    listing.add_argument("--results", **results)
    r = sub.add_parser("run", help="run one experiment's missing fits into the store",
                       description="Fit the experiment's settings not yet stored and append a record "
                                   "for each as it ends: one after the other here, or in parallel on "
                                   "a Dask cluster (--workers, --scheduler).",
                       epilog=EXAMPLES + "\n" + CLUSTER,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("name", help="an experiment (see `dipkit experiments list`)")
    r.add_argument("--profile", default=None, choices=sorted(PROFILES),
                   help="the sizes to fit at (default: $DIPKIT_PROFILE, else by device)")
    r.add_argument("--seeds", default=None, help="comma-separated seeds (default: the experiment's)")
    r.add_argument("--limit", type=int, default=None, help="fit at most this many settings, then stop")
    r.add_argument("--recompute", action="store_true", help="fit again even what is stored")
    r.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    r.add_argument("--results", **results)
    where = r.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="fit on a local Dask cluster of N processes, started for the run")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="fit on the running Dask cluster at ADDRESS (tcp://host:port; "
                            "e.g. a dask-jobqueue SLURMCluster's scheduler_address)")
    p.set_defaults(func=command)


def command(args) -> int:
    """``dipkit experiments list`` or ``run NAME``: see ``dipkit experiments --help``."""
    from ..experiments import EXPERIMENTS, Store, run

    store = Store(getattr(args, "results", None))
    if args.action == "list":
        print(f"store: {store.root}  (per profile: fits stored/declared, and their compute in hours)")
        hours = dict.fromkeys(PROFILES, 0.0)
        for name, exp in EXPERIMENTS.items():
            counts = []
            for p in PROFILES:
                keys = _keys(exp, p)
                seconds = [r.seconds for r in store.load(name, p) if r.key in keys]
                hours[p] += sum(seconds) / 3600
                counts.append(f"{p}: {len(seconds)}/{len(keys)}" + (f" ({sum(seconds) / 3600:.1f} h)" if seconds else ""))
            print(f"{name:20s} ch. {exp.chapter or '-':3s} {', '.join(counts):28s} {exp.description}")
        print("compute stored, in hours of wall time of the fits: "
              + ", ".join(f"{p} {h:.1f}" for p, h in hours.items()))
        return 0
    seeds = None if args.seeds is None else [int(s) for s in args.seeds.split(",")]
    records = run(args.name, args.profile, store=store, seeds=seeds, limit=args.limit,
                  recompute=args.recompute, device=args.device, workers=args.workers,
                  scheduler=args.scheduler)
    print(f"{args.name}: {len(records)} records stored in {store.path(args.name, records[0].profile) if records else store.root}")
    return 0


def _keys(exp, profile: str) -> set:
    from ..experiments import setting_key
    return {setting_key(s) for s in exp.settings(profile)}
