"""How much memory a fit needs, and a clear error instead of an out-of-memory crash.

:func:`estimate` predicts the peak memory of :func:`dipkit.fit` (or of :func:`dipkit.fit_many`
with ``batch`` members) for a model and an image size, without running the network: the
activations that autograd keeps for the backward pass are counted in a dry run on PyTorch's
``meta`` device (tensors with shapes and no data, so the run costs milliseconds at any size).
:func:`available` says how much memory the device has free, and :func:`check` raises a
:class:`~dipkit.errors.DipkitError` naming the largest image size that would fit when the
estimate exceeds it.

Examples
--------
>>> import dipkit
>>> model = dipkit.decoder(channels=128)
>>> estimate(model, 512, 512) > estimate(model, 256, 256)
True
>>> round(estimate(model, 512, 512) / 2**30, 1)   # GiB for the paper's network at 512²
1.6
"""

from __future__ import annotations

import math
import sys
from typing import Optional

import torch
from torch.func import functional_call

from .errors import DipkitError
from .models import DIPNetwork

__all__ = ["estimate", "breakdown", "available", "check", "largest_size"]

#: Bytes per parameter of a fit: the parameter, its gradient and Adam's two moments.
ADAM_COPIES = 4
#: Extra copies per parameter kept by backtracking: the parameters and Adam's two moments.
BACKTRACK_COPIES = 3
#: Activation-sized buffers alive at once in the backward pass besides the saved tensors
#: (the incoming and outgoing gradients of the largest layer, and one temporary).
BACKWARD_BUFFERS = 3


def _check_model(model) -> DIPNetwork:
    if not isinstance(model, DIPNetwork):
        raise DipkitError("model must be a DIPNetwork from dipkit.decoder, hourglass or convnet")
    return model


def _saved_activations(model: DIPNetwork, height: int, width: int, batch: int,
                       dtype: torch.dtype) -> tuple[int, int]:
    """(bytes autograd saves in one forward pass, bytes of the largest tensor made), on 'meta'."""
    s = model.code_scale
    code = torch.empty(batch, model.in_channels, height // s, width // s, device="meta", dtype=dtype)
    params = {n: torch.empty_like(p, device="meta", dtype=dtype).requires_grad_(p.requires_grad)
              for n, p in model.named_parameters()}
    buffers = {n: torch.empty_like(b, device="meta") for n, b in model.named_buffers()}
    saved, largest = [0], [0]

    def pack(t: torch.Tensor):
        nbytes = t.numel() * t.element_size()
        saved[0] += nbytes
        largest[0] = max(largest[0], nbytes)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = functional_call(model, (params, buffers), (code,))
    largest[0] = max(largest[0], out.numel() * out.element_size())
    return saved[0], largest[0]


def breakdown(model: DIPNetwork, height: int, width: int, *, batch: int = 1,
              backtrack: bool = False, dtype: torch.dtype = torch.float32) -> dict:
    """The parts of :func:`estimate`, in bytes.

    Returns
    -------
    dict
        ``parameters`` (parameters, gradients and Adam's moments: 4 copies, times ``batch``),
        ``backtrack`` (the stored copy of parameters and moments, 0 without backtracking),
        ``activations`` (tensors autograd saves for the backward pass, from a meta-device dry run),
        ``backward`` (3 buffers of the largest activation, alive during the backward pass),
        ``images`` (observation, clean image, output, best output, code, probe spectra), and
        ``total``.
    """
    _check_model(model)
    model.check_size(height, width)
    if not isinstance(batch, int) or batch < 1:
        raise DipkitError(f"batch must be a positive integer, got {batch!r}")
    item = torch.empty((), dtype=dtype).element_size()
    n_params = sum(p.numel() for p in model.parameters())
    parts = {"parameters": ADAM_COPIES * n_params * item * batch,
             "backtrack": BACKTRACK_COPIES * n_params * item * batch if backtrack else 0}
    saved, largest = _saved_activations(model, height, width, batch, dtype)
    parts["activations"] = saved
    parts["backward"] = BACKWARD_BUFFERS * largest
    image = model.out_channels * height * width * 4
    # observation, clean, output, best, loss temporaries; gray + complex spectra of the probes
    parts["images"] = batch * (8 * image + 6 * height * width * 8)
    parts["total"] = sum(parts.values())
    return parts


def estimate(model: DIPNetwork, height: int, width: int, *, batch: int = 1, backtrack: bool = False,
             dtype: torch.dtype = torch.float32) -> int:
    """Peak memory (bytes) of fitting ``model`` to an H × W image with Adam.

    Parameters
    ----------
    model : DIPNetwork
        The network (not run: its layers are traced on the ``meta`` device).
    height, width : int
        Image size in pixels; must suit the model (:meth:`DIPNetwork.check_size`).
    batch : int, default 1
        Members fitted at once (:func:`dipkit.fit_many`); everything but the code scales with it.
    backtrack : bool, default False
        Whether the fit keeps a copy of the parameters and Adam's state for backtracking.
    dtype : torch.dtype, default float32

    Returns
    -------
    int
        Bytes. The sum of :func:`breakdown`'s parts.

    Notes
    -----
    ``4 P + A_saved + 3 A_max + images`` with ``P`` the parameter bytes (parameter, gradient,
    Adam's two moments), ``A_saved`` the bytes autograd saves in the forward pass, counted with
    :func:`torch.autograd.graph.saved_tensors_hooks` in a dry run on the ``meta`` device, and
    ``A_max`` the largest activation (the gradients in flight during the backward pass). It
    leaves out the allocator's caching and fragmentation and the framework's own footprint
    (CUDA context, libraries), so keep a margin: :func:`check` uses 90 % of what is free.
    """
    return breakdown(model, height, width, batch=batch, backtrack=backtrack, dtype=dtype)["total"]


def available(device=None) -> int:
    """Bytes of memory free for tensors on ``device`` (default: the CPU).

    CUDA: free device memory (:func:`torch.cuda.mem_get_info`) plus what PyTorch's caching
    allocator holds unused. CPU: ``psutil.virtual_memory().available`` when psutil is importable,
    else ``MemAvailable`` of ``/proc/meminfo``; ``sys.maxsize`` where neither exists.
    """
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type == "cpu":
        try:
            import psutil

            return int(psutil.virtual_memory().available)
        except ImportError:
            pass
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return sys.maxsize


def largest_size(model: DIPNetwork, limit: int, *, batch: int = 1, backtrack: bool = False,
                 dtype: torch.dtype = torch.float32) -> Optional[int]:
    """The largest square side (a multiple of what the model needs) whose estimate fits in
    ``limit`` bytes, or None when even the smallest image does not fit."""
    _check_model(model)
    step = model.multiple
    lo = max(1, math.ceil(model.min_size / step))

    def fits(k: int) -> bool:
        return estimate(model, k * step, k * step, batch=batch, backtrack=backtrack, dtype=dtype) <= limit

    if not fits(lo):
        return None
    hi = lo
    while fits(hi * 2):
        hi *= 2
        if hi * step > 2**16:
            return hi * step
    good, bad = hi, hi * 2
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good * step


def check(model: DIPNetwork, height: int, width: int, *, device=None, limit: Optional[int] = None,
          batch: int = 1, backtrack: bool = False, margin: float = 0.9) -> int:
    """Raise a :class:`DipkitError` if a fit will not fit in memory; return the estimate (bytes).

    Parameters
    ----------
    model, height, width, batch, backtrack
        As for :func:`estimate`.
    device : str or torch.device, optional
        Where the fit runs (default: the CPU); its free memory is the limit unless ``limit`` is given.
    limit : int, optional
        Bytes available (overrides the device's free memory, e.g. to budget a shared GPU).
    margin : float, default 0.9
        Fraction of the limit the estimate may use (the rest covers what it leaves out).

    Raises
    ------
    DipkitError
        The estimate exceeds ``margin · limit``; the message gives both, in MiB, and the largest
        square image that would fit.
    """
    need = estimate(model, height, width, batch=batch, backtrack=backtrack)
    limit = available(device) if limit is None else int(limit)
    budget = int(margin * limit)
    if need > budget:
        side = largest_size(model, budget, batch=batch, backtrack=backtrack)
        where = f"on {torch.device(device) if device is not None else 'cpu'}"
        hint = (f"the largest square image that would fit is {side}x{side}" if side else
                "even the smallest image this network accepts does not fit")
        members = f" with {batch} members" if batch > 1 else ""
        raise DipkitError(
            f"fitting a {height}x{width} image{members} needs about {need / 2**20:.0f} MiB but only "
            f"{budget / 2**20:.0f} MiB ({margin:.0%} of {limit / 2**20:.0f} MiB) is available {where}; "
            f"{hint}. Use a smaller image (crop or tile it), fewer channels or members, or another device.")
    return need


def quick_check(model: DIPNetwork, height: int, width: int, device, *, batch: int = 1,
                backtrack: bool = False) -> Optional[int]:
    """The check :func:`dipkit.fit` runs at its start: cheap when memory is plentiful.

    A loose upper bound (every module's output at full resolution, saved twice) is compared with
    the free memory first; only when it exceeds a quarter of it is the exact dry run made
    (:func:`check`). Returns the estimate when one was made, else None.
    """
    limit = available(device)
    widest = max((getattr(m, "out_channels", 0) for m in model.modules()), default=0)
    widest = max(widest, model.in_channels, model.out_channels)
    n_modules = sum(1 for _ in model.modules())
    n_params = sum(p.numel() for p in model.parameters())
    bound = batch * 4 * ((ADAM_COPIES + BACKTRACK_COPIES) * n_params
                         + (2 * n_modules + 16) * widest * height * width)
    if bound <= limit // 4:
        return None
    return check(model, height, width, device=device, batch=batch, backtrack=backtrack)
