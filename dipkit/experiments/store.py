"""The results store: one JSON-lines file per experiment and profile, with provenance.

Layout: ``<root>/<profile>/<experiment>.jsonl``, one record a line, appended (and flushed) as
soon as a fit ends, so that an interrupted run keeps what it did. ``root`` is
``$DIPKIT_RESULTS`` when set, else ``dipkit/results``: the book's stored results travel with the
package (its package data), so a chapter opened in Colab reads them from the install.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import DipkitError
from .record import Record, Records
from .spec import setting_key

__all__ = ["Store", "default_root", "provenance"]

_REPO = Path(__file__).resolve().parents[2]


def default_root() -> Path:
    """``$DIPKIT_RESULTS``, else the package's own ``dipkit/results`` (installed with it)."""
    env = os.environ.get("DIPKIT_RESULTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "results"


def _commit() -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(_REPO), "describe", "--always", "--dirty", "--abbrev=12"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance(device: Union[str, torch.device, None] = None) -> dict:
    """Where and how records are computed: commit, versions, device, CPU kernels, threads, date."""
    from .. import __version__

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    info = {"commit": _commit(), "dipkit": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "device": device.type,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    return info


class Store:
    """Records on disk. ``Store().load('lipschitz', 'quick')`` → :class:`Records`."""

    def __init__(self, root: Union[str, Path, None] = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, experiment: str, profile: str) -> Path:
        return self.root / profile / f"{experiment}.jsonl"

    def load(self, experiment: str, profile: str) -> Records:
        """Every stored record of an experiment at a profile (empty when none); the last wins
        when a setting was stored twice (a recomputation appends)."""
        path = self.path(experiment, profile)
        if not path.exists():
            return Records()
        lines = path.read_text().splitlines()
        by_key = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # a last line cut by an interruption
                    continue
                raise DipkitError(f"{path}, line {number}: not a JSON record; delete the line "
                                  f"or the file and run the experiment again") from None
            by_key[data["key"]] = data
        return Records(Record(d) for d in by_key.values())

    def keys(self, experiment: str, profile: str) -> set:
        return {r.key for r in self.load(experiment, profile)}

    def append(self, record: dict) -> None:
        """Add one record (with its ``experiment``, ``profile``, ``settings``) to its file."""
        record = {"key": setting_key(record["settings"]), **record}
        path = self.path(record["experiment"], record["profile"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def stored(self) -> list:
        """``(profile, experiment, number of records)`` for every file of the store."""
        if not self.root.exists():
            return []
        return [(p.parent.name, p.stem, len(self.load(p.stem, p.parent.name)))
                for p in sorted(self.root.glob("*/*.jsonl"))]
