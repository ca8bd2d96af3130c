"""The networks a fit trains: one member, or K members side by side, behind one small interface.

The engine (:mod:`dipkit.engine`) steps K ≥ 1 *members*: each is a network with its own input
code, its own input-noise generator and its own Adam state, fitted to its own loss. Two runners
hold them:

- :class:`LoopMembers` runs the K networks one after the other in each step (one graph alive at
  a time). With K = 1 this *is* :func:`dipkit.fit`. It supports channels-last weights,
  :func:`torch.compile` (checked against the plain network at the first step) and autocast.
- :class:`VmapMembers` stacks the parameters (:func:`torch.func.stack_module_state`) and runs
  one batched network with :func:`torch.func.vmap`: each convolution becomes one grouped
  convolution. This is what a GPU wants; on a CPU it is slower than the loop.

Adam's update is elementwise, so one Adam per member and one Adam over the stacked parameters
give the same steps: each member follows the fit :func:`dipkit.fit` would give it.

Both runners offer: ``forward_backward(degradation, y)`` → outputs (A, C, H, W) and losses (A,)
of the A active members, ``step()``, ``save(row)`` / ``restore(row, state)`` (backtracking),
``keep(rows)`` (members that stopped leave the batch), ``write_back(model, row)`` and
``state_dict()`` / ``load_state_dict()`` (checkpoints).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from .degradations import Degradation
from .errors import DipkitError
from .models import DIPNetwork, convnet, decoder, hourglass

__all__ = ["member_models", "LoopMembers", "VmapMembers", "AUTOCAST"]

_CONSTRUCTORS = {"decoder": decoder, "convnet": convnet, "hourglass": hourglass}

#: Accepted values of ``compile``: off, on (torch.compile's default mode), or a mode by name.
COMPILE_MODES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: Accepted values of ``autocast`` and the dtype each means.
AUTOCAST = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
            "float16": torch.float16, torch.bfloat16: torch.bfloat16, torch.float16: torch.float16}


def member_models(model: DIPNetwork, seeds: Sequence[int]) -> list[DIPNetwork]:
    """Fresh networks of ``model``'s architecture, one per weight seed.

    ``member_models(dipkit.decoder(channels=64), [0, 1])`` equals
    ``[dipkit.decoder(channels=64, seed=0), dipkit.decoder(channels=64, seed=1)]``: the networks
    are built again from ``model.config``, so ``model``'s own weights are not used.
    """
    if not isinstance(model, DIPNetwork):
        raise DipkitError("model must be a DIPNetwork from dipkit.decoder, hourglass or convnet")
    config = dict(model.config)
    kind = config.pop("kind", None)
    if kind not in _CONSTRUCTORS:
        raise DipkitError(f"cannot rebuild a network of kind {kind!r}; pass a list of K networks instead")
    return [_CONSTRUCTORS[kind](**{**config, "seed": int(s)}) for s in seeds]


class _Codes:
    """The members' fixed input codes (K, 1, c, h, w) and their per-step perturbation.

    Member k's perturbation is drawn from its own generator seeded with its seed, so a member
    sees the same codes as the single fit with that seed.
    """

    def __init__(self, codes: torch.Tensor, seeds: Sequence[int], input_noise: float):
        self.codes, self.input_noise = codes, float(input_noise)
        device = codes.device
        self.generators = ([torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
                           if self.input_noise else None)

    def __call__(self, member: int) -> torch.Tensor:
        code = self.codes[member]
        if self.generators is None:
            return code
        noise = torch.randn(code.shape, generator=self.generators[member], device=code.device)
        return code + self.input_noise * noise

    def state_dict(self) -> dict:
        return {"generators": None if self.generators is None else [g.get_state() for g in self.generators]}

    def load_state_dict(self, state: dict) -> None:
        if self.generators is not None:
            for g, s in zip(self.generators, state["generators"]):
                g.set_state(s)


class _Network:
    """One member's network as the loop runs it: optionally channels-last, compiled, autocast.

    A compiled network's first step is checked against the plain network's gradients; if
    compiling fails or they differ (as with torch 2.13 on the CPU for the paper's decoder), it
    warns and runs uncompiled. ``status`` says what happened. ``compile='reduce-overhead'``
    replays the network as CUDA graphs on a GPU: each step is marked as a new graph step and its
    output copied out of the graph's memory, which the next replay overwrites.
    """

    def __init__(self, model: DIPNetwork, channels_last: bool, compile, dtype) -> None:
        self.model, self.dtype, self.net = model, dtype, model
        self.status, self.graphs = "off", compile == "reduce-overhead"
        if channels_last:
            model.to(memory_format=torch.channels_last)
        if compile:
            mode = None if compile is True else compile
            try:
                self.net, self.status = torch.compile(model, mode=mode), "on" if mode is None else f"on ({mode})"
            except Exception as error:  # e.g. no compiler backend for this platform
                self._fall_back(error)
        self.checked = not compile

    def _fall_back(self, error: Exception) -> None:
        self.net, self.graphs = self.model, False
        self.status = f"failed, ran uncompiled: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); dipkit.fit goes on "
                      f"without compile=True", RuntimeWarning, stacklevel=6)

    def _forward(self, z: torch.Tensor, net) -> torch.Tensor:
        graphs = self.graphs and net is not self.model
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        if self.dtype is None:
            out = net(z)
        else:
            with torch.autocast(device_type=z.device.type, dtype=self.dtype):
                out = net(z).float()
        return out.clone() if graphs else out

    def forward_backward(self, z: torch.Tensor, loss_of):
        """The output and the loss after ``loss.backward()``."""
        if not self.checked:
            return self._first_compiled_step(z, loss_of)
        out = self._forward(z, self.net)
        loss = loss_of(out)
        loss.backward()
        return out, loss

    def _first_compiled_step(self, z, loss_of):
        self.checked = True
        try:  # compiling happens at the first call
            loss_of(self._forward(z, self.net)).backward()
            compiled = [None if p.grad is None else p.grad.clone() for p in self.model.parameters()]
        except Exception as error:
            compiled = error
        # torch.compile has been seen to return wrong gradients for this decoder (torch 2.13 on
        # the CPU), which would silently change the fit: this first step is the plain network's.
        self.model.zero_grad(set_to_none=True)
        out = self._forward(z, self.model)
        loss = loss_of(out)
        loss.backward()
        if isinstance(compiled, Exception):
            self._fall_back(compiled)
        else:
            worst = _gradient_mismatch(compiled, [p.grad for p in self.model.parameters()])
            if worst > 1e-3:
                self._fall_back(RuntimeError(f"its gradients differ from the uncompiled network's "
                                             f"(largest difference {worst:.2g} of the largest gradient)"))
        return out, loss

    def config(self) -> str:
        return (f"{self.status} (first-step gradients checked against the uncompiled network)"
                if self.status.startswith("on") else self.status)


def _gradient_mismatch(grads: list, reference: list) -> float:
    """Largest |g − g_ref| over all parameters, relative to the largest |g_ref| (0 when equal)."""
    scale = max((float(g.abs().max()) for g in reference if g is not None), default=0.0)
    worst = 0.0
    for g, ref in zip(grads, reference):
        if (g is None) != (ref is None):
            return math.inf
        if g is not None:
            worst = max(worst, float((g - ref).abs().max()))
    return worst / scale if scale > 0 else worst


def _check_compile(compile) -> None:
    if not any(compile is c or (isinstance(c, str) and compile == c) for c in COMPILE_MODES):
        raise DipkitError(f"compile must be False, True or a torch.compile mode "
                          f"({', '.join(repr(m) for m in COMPILE_MODES[2:])}), got {compile!r}")


def _autocast_dtype(autocast):
    if autocast is not None and (not isinstance(autocast, (str, torch.dtype)) or autocast not in AUTOCAST):
        raise DipkitError(f"autocast must be None, 'bf16' or 'fp16' (or that torch dtype), got {autocast!r}")
    return AUTOCAST.get(autocast)


class LoopMembers:
    """K networks run one after the other within each step, each with its own Adam.

    Parameters
    ----------
    members : list of DIPNetwork
        Trained in place (already on the fit's device).
    codes : Tensor (K, 1, c, h, w)
    seeds : list of int
        Seeds of the members' input-noise generators.
    lr, input_noise, channels_last, compile, autocast
        As for :func:`dipkit.fit`.
    """

    def __init__(self, members: list, codes: torch.Tensor, seeds: Sequence[int], lr: float, *,
                 input_noise: float = 0.0, channels_last: bool = False, compile: bool = False,
                 autocast=None):
        dtype = _autocast_dtype(autocast)
        _check_compile(compile)
        self.members = list(members)
        self.networks = [_Network(m, channels_last, compile, dtype) for m in self.members]
        self.codes = _Codes(codes, seeds, input_noise)
        self.optimizers = [torch.optim.Adam(m.parameters(), lr=lr) for m in self.members]
        self.active = list(range(len(self.members)))
        self.channels_last, self.dtype = bool(channels_last), dtype

    def forward_backward(self, degradation: Degradation, y: torch.Tensor):
        """Each active member's forward and backward; outputs (A, C, H, W), losses (A,), detached."""
        outs, losses = [], []
        for row, k in enumerate(self.active):
            self.optimizers[k].zero_grad(set_to_none=True)
            target = y[row : row + 1] if y.shape[0] > 1 else y
            out, loss = self.networks[k].forward_backward(self.codes(k), lambda f: degradation.loss(f, target))
            outs.append(out.detach())
            losses.append(loss.detach())
        return torch.cat(outs), torch.stack(losses)

    def step(self) -> None:
        for k in self.active:
            self.optimizers[k].step()

    def save(self, row: int):
        """A copy of the parameters and Adam state of the member in ``row``."""
        k = self.active[row]
        return ({n: v.detach().clone() for n, v in self.members[k].state_dict().items()},
                copy.deepcopy(self.optimizers[k].state_dict()))

    def restore(self, row: int, state) -> None:
        k = self.active[row]
        self.members[k].load_state_dict(state[0])
        self.optimizers[k].load_state_dict(state[1])

    def keep(self, rows: list) -> None:
        self.active = [self.active[r] for r in rows]

    def write_back(self, model: DIPNetwork, row: int) -> None:
        """The members are trained in place: nothing to copy."""

    def config(self) -> dict:
        return dict(channels_last=self.channels_last, compile=self.networks[0].config(),
                    autocast=None if self.dtype is None else str(self.dtype).replace("torch.", ""))

    def state_dict(self) -> dict:
        return {"models": [m.state_dict() for m in self.members],
                "optimizers": [o.state_dict() for o in self.optimizers],
                "active": list(self.active), "codes": self.codes.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for m, o, ms, os_ in zip(self.members, self.optimizers, state["models"], state["optimizers"]):
            m.load_state_dict(ms)
            o.load_state_dict(os_)
        self.active = list(state["active"])
        self.codes.load_state_dict(state["codes"])


class VmapMembers:
    """The members as one batched network: stacked parameters, ``vmap`` over ``functional_call``.

    One Adam over the stacked parameters equals K Adams. Restoring one member (backtracking)
    restores its rows of the parameters and of Adam's moments; Adam's step count is shared by
    the batch, so after a restoration that member's bias correction follows the batch's count
    (a difference that vanishes after the first few hundred steps).
    """

    def __init__(self, members: list, codes: torch.Tensor, seeds: Sequence[int], lr: float, *,
                 input_noise: float = 0.0, channels_last: bool = False, compile: bool = False,
                 autocast=None):
        if channels_last or compile or autocast is not None:
            raise DipkitError("channels_last, compile and autocast run with method='loop' only")
        self.params, self.buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")
        self.network = vmap(lambda p, b, z: functional_call(base, (p, b), (z,)))
        self.codes = _Codes(codes, seeds, input_noise)
        self.rows = list(range(len(members)))   # member id of each batch row
        self.lr = lr
        self.optimizer = torch.optim.Adam(self.params.values(), lr=lr)

    def forward_backward(self, degradation: Degradation, y: torch.Tensor):
        """One batched pass; the sum of the members' losses is differentiated."""
        self.optimizer.zero_grad(set_to_none=True)
        codes = torch.stack([self.codes(k) for k in self.rows])
        out = self.network(self.params, self.buffers, codes)[:, 0]
        losses = degradation.loss(out, y, reduction="none")
        losses.sum().backward()
        return out.detach(), losses.detach()

    def step(self) -> None:
        self.optimizer.step()

    def save(self, row: int):
        state = {n: p.detach()[row].clone() for n, p in self.params.items()}
        moments = {n: {key: v[row].clone() for key, v in self.optimizer.state.get(p, {}).items() if v.ndim}
                   for n, p in self.params.items()}
        return state, moments

    def restore(self, row: int, saved) -> None:
        state, moments = saved
        with torch.no_grad():
            for n, p in self.params.items():
                p[row] = state[n]
                for key, v in moments[n].items():
                    self.optimizer.state[p][key][row] = v

    def write_back(self, member: DIPNetwork, row: int) -> None:
        """Copy batch row ``row`` of the stacked parameters and buffers into ``member``."""
        with torch.no_grad():
            for name, p in self.params.items():
                member.get_parameter(name).copy_(p[row])
            for name, b in self.buffers.items():
                member.get_buffer(name).copy_(b[row])

    def keep(self, rows: list) -> None:
        """Drop the batch rows not in ``rows``: parameters, buffers, codes and Adam's state."""
        index = torch.tensor(rows, device=next(iter(self.params.values())).device)
        params = {n: p.detach()[index].clone().requires_grad_(p.requires_grad) for n, p in self.params.items()}
        optimizer = torch.optim.Adam(params.values(), lr=self.lr)
        for old, new in zip(self.params.values(), params.values()):
            state = self.optimizer.state.get(old)
            if state:
                optimizer.state[new] = {key: (v.clone() if v.ndim == 0 else v[index].clone())
                                        for key, v in state.items()}
        self.params, self.optimizer = params, optimizer
        self.buffers = {n: b[index].clone() for n, b in self.buffers.items()}
        self.rows = [self.rows[r] for r in rows]

    def config(self) -> dict:
        return dict(channels_last=False, compile="off", autocast=None)

    def state_dict(self) -> dict:
        return {"params": {n: p.detach() for n, p in self.params.items()}, "buffers": self.buffers,
                "optimizer": self.optimizer.state_dict(), "rows": list(self.rows),
                "codes": self.codes.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state["rows"] != self.rows:
            self.keep([self.rows.index(k) for k in state["rows"]])
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(state["params"][n])
        self.buffers = {n: b.clone() for n, b in state["buffers"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.codes.load_state_dict(state["codes"])


def make_members(method: str, members: list, codes: torch.Tensor, seeds: Sequence[int], lr: float,
                 device: torch.device, **options):
    """The runner for ``method`` ('auto': vmap with several members on CUDA, else the loop)."""
    if method not in ("auto", "vmap", "loop"):
        raise DipkitError(f"method must be 'auto', 'vmap' or 'loop', got {method!r}")
    if method == "auto":
        method = "vmap" if device.type == "cuda" and len(members) > 1 and not any(options.get(k) for k in
                                                                                   ("channels_last", "compile", "autocast")) else "loop"
    runner = VmapMembers if method == "vmap" else LoopMembers
    return runner(members, codes, seeds, lr, **options)
