"""Find, on any device, the operations that would make the host wait for a CUDA device.

On a GPU, ``torch.cuda.set_sync_debug_mode`` reports such waits; it does nothing on a CPU. This
module sees the same thing from the operations themselves: :class:`HostReads` is a
``TorchDispatchMode`` that records every operator known to read device memory on the host (a
value to a Python number, a data-dependent shape, a solver's status check). It cannot see a
``.cpu()`` of a tensor that already lives on the CPU (no operator runs), so it complements the
GPU's own check (the benchmark suite's ``syncs`` section) and does not replace it.

Used by tests/test_engine.py (the fit loop between probes) and benchmarks/gpu.py.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dipkit.callbacks import Callback

#: aten operators (overload packets) that wait for a CUDA device: ``.item()``/``float()``/``bool()``,
#: data-dependent output shapes, comparisons to a Python bool, and the linear-algebra solvers
#: whose status is checked on the host.
SYNCING = frozenset({
    "_local_scalar_dense", "item", "is_nonzero", "equal", "allclose", "nonzero", "nonzero_static_",
    "masked_select", "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive",
    "repeat_interleave", "_linalg_eigh", "linalg_eigh", "linalg_eigvalsh", "_linalg_svd",
    "linalg_svd", "svd", "_linalg_check_errors", "linalg_inv_ex", "linalg_cholesky_ex",
    "_linalg_solve_ex", "linalg_lstsq", "linalg_eig", "linalg_eigvals", "histc", "bincount",
})


def adam_step_counts(optimizers) -> set:
    """Storage addresses of Adam's step counters: Adam keeps them on the host (a CPU tensor
    unless ``capturable`` or ``fused``), so reading them waits for no device."""
    found = set()
    for opt in optimizers:
        for state in opt.state.values():
            step = state.get("step")
            if isinstance(step, torch.Tensor) and step.device.type == "cpu":
                found.add(step.data_ptr())
    return found


class HostReads(TorchDispatchMode):
    """Records the syncing operators run inside it: ``found`` lists their names in order.

    ``host_scalars``: storage addresses of tensors that live on the host on a GPU as well
    (Adam's step counters), whose reads are not counted.
    """

    def __init__(self, host_scalars=()):
        super().__init__()
        self.host_scalars, self.found = set(host_scalars), []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in SYNCING and not (name == "_local_scalar_dense" and args
                                    and args[0].data_ptr() in self.host_scalars):
            self.found.append(name)
        return func(*args, **(kwargs or {}))


class WatchSteps(Callback):
    """A fit callback: a :class:`HostReads` from the end of step 1 to the end of step ``last``
    (with the fit's only probe at a later step, the loop between probes). ``found`` after the fit;
    ``per_step(engine)``, if given, runs at every step inside the watch (a control)."""

    def __init__(self, last: int, per_step=None):
        self.last, self.per_step, self.watch = last, per_step, None

    @property
    def found(self) -> list:
        return self.watch.found

    def on_step(self, engine):
        if self.per_step is not None:
            self.per_step(engine)
        if engine.step == 1:
            members = engine.members
            optimizers = getattr(members, "optimizers", None) or [members.optimizer]
            self.watch = HostReads(adam_step_counts(optimizers))
            self.watch.__enter__()
        elif engine.step == self.last:
            self.watch.__exit__(None, None, None)
