"""Fit K independent networks at once: K seeds of one image, or K images of one size.

:func:`fit_many` trains K networks of one architecture side by side, each on its own loss, with
one Adam over all their parameters and the probes batched over the K outputs. Two engines run
the networks:

- ``'vmap'`` stacks the parameters (:func:`torch.func.stack_module_state`) and runs one batched
  network with :func:`torch.func.vmap` over :func:`torch.func.functional_call`: each
  convolution becomes one grouped convolution, each Lipschitz bound one batched ``eigvalsh`` of
  K Gram matrices. This is what a GPU wants (one kernel launch for K small networks).
- ``'loop'`` runs the K networks one after the other within each step. On a CPU, whose cores
  are already busy with one network, grouped convolutions are slower than K plain ones, so this
  is the default there.

Adam's update is elementwise, so one Adam over all parameters is K Adams; the loss is the sum of
the members' losses, whose gradient with respect to member k's parameters is member k's own.
Each member therefore follows the fit :func:`dipkit.fit` would give it, to float rounding
(tested). A member whose stopping rule fires is frozen: its output and history end there, as a
single fit would end, and it leaves the batch (the others go on with K − 1 members).
"""

from __future__ import annotations

import copy
import math
import time
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from .degradations import Degradation, Identity
from . import memory
from .errors import DipkitError, DivergenceError, ShapeError
from .fit import Run, _as_rule, _history, as_observation, check_fit_arguments, default_device
from .metrics import psnr as psnr_metric
from .models import DIPNetwork, convnet, decoder, hourglass
from .sharpness import blur_sharpness_ratio
from .spectral import BandCorrespondence
from .stopping import StoppingRule

__all__ = ["fit_many", "member_models"]

_CONSTRUCTORS = {"decoder": decoder, "convnet": convnet, "hourglass": hourglass}


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


def _as_seeds(seeds, k: Optional[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if k is None:
            raise DipkitError("give the members' seeds as a list (e.g. seeds=[0, 1, 2, 3]) when "
                              "fitting one image, or K observations, or a list of K models")
        return [int(seeds)] * k
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise DipkitError("seeds is empty: give one seed per member")
    return seeds


def _stack_images(images, name: str) -> Optional[torch.Tensor]:
    """(M, C, H, W) from a tensor (1 or M images) or a list of (1, C, H, W) tensors."""
    if images is None:
        return None
    if isinstance(images, (list, tuple)):
        if not images:
            raise DipkitError(f"{name} is an empty list")
        images = [as_observation(im, f"{name}[{i}]") for i, im in enumerate(images)]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) > 1:
            raise ShapeError(f"the {name} differ in shape {sorted(shapes)}; fit_many fits images of one "
                             f"size and channel count (pad or crop them to one size, or fit them apart)")
        return torch.cat(images)
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[0] > 1:
        return torch.cat([as_observation(im[None], f"{name}[{i}]") for i, im in enumerate(images)])
    return as_observation(images, name)


def fit_many(model: Union[DIPNetwork, Sequence[DIPNetwork]], observations, *, steps: int,
             seeds: Union[int, Iterable[int]] = 0, lr: float = 1e-3,
             degradation: Optional[Degradation] = None, probe_every: int = 10,
             stop: Union[None, str, StoppingRule, Sequence] = None, clean=None, device=None,
             probes: Iterable[str] = ("bands", "ratio"), n_bands: int = 5,
             progress: bool = True, method: str = "auto") -> list[Run]:
    """Fit K networks at once; member k equals ``fit(model_k, observation_k, seed=seeds[k])``.

    Parameters
    ----------
    model : DIPNetwork or sequence of K DIPNetwork
        One network: the members are built from its config with weight seeds ``seeds``
        (:func:`member_models`; its own weights are not used). A list: the members, all of one
        architecture, trained in place as :func:`dipkit.fit` trains its model.
    observations : Tensor (1, C, H, W), (K, C, H, W), or list of K tensors (1, C, H, W)
        One observation shared by all members (K seeds of one image) or one per member (K images
        of one size). Values in [0, 1].
    steps : int
        Maximum optimizer steps of every member.
    seeds : int or sequence of K int
        Member k's seed: of its input code, and of its weights when ``model`` is one network.
        One int: the same seed for every member (K images fitted alike).
    lr, degradation, probe_every, probes, n_bands, progress
        As for :func:`dipkit.fit`. One degradation serves every member.
    stop : {'paper', 'eswmv', 'none'}, StoppingRule, or a sequence of K of those, optional
        The stopping rule: one copy per member (a rule instance is copied), or one per member. A
        member whose rule fires stops there (frozen) and leaves the batch.
    clean : Tensor (1, C, H, W), (K, C, H, W) or list, optional
        Clean image(s), for the PSNR history and the oracle-best output of each member.
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    method : {'auto', 'vmap', 'loop'}
        ``'vmap'``: one batched network (stacked parameters, :func:`torch.func.vmap`; each
        convolution a grouped one). ``'loop'``: the K networks one after the other in each step,
        with one Adam and batched probes. ``'auto'``: vmap on CUDA, loop elsewhere (on a CPU,
        grouped convolutions are slower than K plain ones: see the benchmarks).

    Returns
    -------
    list of Run
        One per member, as :func:`dipkit.fit` returns. ``Run.seconds`` is the wall time from the
        start until that member stopped or the fit ended; ``Run.config['batched']`` is K.

    Raises
    ------
    ShapeError
        Members, observations, clean images or seeds disagree in number or size.
    DivergenceError
        A member's loss became NaN or infinite (fit_many has no backtracking).

    Notes
    -----
    Not supported here (use :func:`dipkit.fit`): backtracking, EMA of the outputs, input noise,
    snapshots and monitored rules. One degradation (one mask) serves all members.

    Examples
    --------
    >>> import dipkit
    >>> clean = dipkit.images.sample("astronaut", size=64)
    >>> y = dipkit.degradations.GaussianNoise(25 / 255).observe(clean, seed=0)
    >>> runs = dipkit.fit_many(dipkit.decoder(channels=8, depth=4), y, seeds=[0, 1, 2], steps=20,
    ...                        clean=clean, progress=False)
    >>> [r.history.psnr.shape for r in runs]
    [(2,), (2,), (2,)]
    """
    probes = check_fit_arguments(steps, probe_every, lr, probes)
    if method not in ("auto", "vmap", "loop"):
        raise DipkitError(f"method must be 'auto', 'vmap' or 'loop', got {method!r}")

    y = _stack_images(observations, "observations")
    x = _stack_images(clean, "clean")
    given = isinstance(model, (list, tuple))
    counts = {}
    if given:
        counts["models"] = len(model)
    if not isinstance(seeds, (int, np.integer)):
        seeds = list(seeds)
        counts["seeds"] = len(seeds)
    if y.shape[0] > 1:
        counts["observations"] = y.shape[0]
    if x is not None and x.shape[0] > 1:
        counts["clean images"] = x.shape[0]
    if isinstance(stop, (list, tuple)):
        counts["stopping rules"] = len(stop)
    if len(set(counts.values())) > 1:
        raise ShapeError(f"fit_many got different numbers of members: "
                         f"{', '.join(f'{v} {k}' for k, v in counts.items())}; give K of each (or one "
                         f"observation / clean image / seed shared by all)")
    k_members = next(iter(counts.values()), None)
    seeds = _as_seeds(seeds, k_members)
    k_members = len(seeds)
    members = list(model) if given else member_models(model, seeds)
    if not members or not all(isinstance(m, DIPNetwork) for m in members):
        raise DipkitError("model must be a DIPNetwork or a non-empty list of them")
    arch = {n: tuple(p.shape) for n, p in members[0].named_parameters()}
    for i, m in enumerate(members[1:], 1):
        if {n: tuple(p.shape) for n, p in m.named_parameters()} != arch or \
                {k: v for k, v in m.config.items() if k != "seed"} != \
                {k: v for k, v in members[0].config.items() if k != "seed"}:
            raise ShapeError(f"model {i} differs in architecture from model 0; fit_many needs one "
                             f"architecture (fit different networks with separate fit calls)")
    template = members[0]
    _, c, h, w = y.shape
    if c != template.out_channels:
        raise ShapeError(f"the observation has {c} channel(s) but the model outputs "
                         f"{template.out_channels}; build the model with out_channels={c}")
    template.check_size(h, w)
    if x is not None and x.shape[1:] != y.shape[1:]:
        raise ShapeError(f"clean images {tuple(x.shape)} and observations {tuple(y.shape)} differ in shape")
    degradation = degradation or Identity()
    stops = list(stop) if isinstance(stop, (list, tuple)) else [stop] * k_members
    rules = [_as_rule(copy.deepcopy(r) if isinstance(r, StoppingRule) else r, probe_every) for r in stops]
    for r in rules:
        if r is not None:
            if "ratio" in r.needs and "ratio" not in probes:
                probes = probes + ("ratio",)
            r.reset()

    device = torch.device(device) if device is not None else default_device()
    memory.quick_check(template, h, w, device, batch=k_members)  # a clear error, not an OOM crash
    for m in members:
        m.to(device).train()
    y, x = y.to(device), (x.to(device) if x is not None else None)
    if hasattr(degradation, "to"):
        degradation = degradation.to(device)
    y_seen = degradation.forward(y)
    codes = torch.stack([m.make_code(h, w, s) for m, s in zip(members, seeds)]).to(device)  # (K, 1, c, h, w)
    if method == "auto":
        method = "vmap" if device.type == "cuda" else "loop"
    engine = (_Vmap if method == "vmap" else _Loop)(members, codes, lr)
    fbc = BandCorrespondence(y, n_bands) if "bands" in probes else None

    active = list(range(k_members))  # member ids still fitting, in batch order
    losses = torch.full((steps, k_members), math.nan, device=device)
    log = []  # (step, time, member ids, readings of the batch)
    best = best_psnr = best_step = None
    if x is not None:
        best = torch.zeros(k_members, c, h, w, device=device)
        best_psnr = torch.full((k_members,), -math.inf, device=device)
        best_step = torch.zeros(k_members, dtype=torch.long, device=device)
    finals, stopped, stop_steps, steps_run, seconds = {}, {}, {}, {}, {}

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not progress, desc=f"fit_many (K={k_members})", leave=False)
    start = time.perf_counter()
    step = 0
    ids = torch.arange(k_members, device=device)
    # the observations and clean images of the active members (one shared image: broadcast)
    y_act, y_seen_act, x_act = y, y_seen, x
    for step in range(1, steps + 1):
        engine.zero_grad()
        out, member_loss = engine.forward_backward(degradation, y_act)  # (K_active, C, H, W), (K_active,)
        engine.step()
        losses[step - 1, ids] = member_loss
        if step % probe_every and step != steps:
            continue
        # ---- probe (batched over the active members) ----
        readings = {"loss": member_loss,
                    "psnr_observation": psnr_metric(degradation.forward(out), y_seen_act.expand_as(out))}
        if x is not None:
            p = psnr_metric(out, x_act.expand_as(out))
            readings["psnr"] = p
            better = p > best_psnr[ids]
            best[ids] = torch.where(better.view(-1, 1, 1, 1), out, best[ids])
            best_step[ids] = torch.where(better, torch.full_like(best_step[ids], step), best_step[ids])
            best_psnr[ids] = torch.maximum(p, best_psnr[ids])
        if fbc is not None:
            readings["bands"] = fbc(out)
        if "ratio" in probes:
            readings["ratio"] = blur_sharpness_ratio(out)
        log.append((step, time.perf_counter() - start, tuple(active), readings))
        bar.update(step - bar.n)
        if any(r is not None for r in rules) or progress:
            if not bool(torch.isfinite(member_loss).all()):
                bad = [active[i] for i, v in enumerate(member_loss.tolist()) if not math.isfinite(v)]
                raise DivergenceError(f"the loss of member(s) {bad} became NaN or infinite by step {step}; "
                                      f"lower the learning rate (lr={lr})")
        if progress:
            bar.set_postfix(active=len(active), loss=f"{float(member_loss.mean()):.4g}")
        leaving = []
        for i, mid in enumerate(active):
            rule = rules[mid]
            if rule is None:
                continue
            one_readings = {key: v[i] for key, v in readings.items()}
            stop_now = rule.update(step, out[i : i + 1], one_readings)
            if rule.selected_step == step:
                stopped[mid] = out[i : i + 1].clone()
            if stop_now:
                stop_steps[mid] = rule.selected_step
                leaving.append(i)
        if leaving:
            for i in leaving:
                mid = active[i]
                finals[mid], steps_run[mid] = out[i : i + 1].cpu(), step
                seconds[mid] = time.perf_counter() - start
                if given:
                    engine.write_back(members[mid], i)
            keep = [i for i in range(len(active)) if i not in leaving]
            active = [active[i] for i in keep]
            if not active:
                break
            engine.keep(keep)
            ids = torch.tensor(active, device=device)
            if y.shape[0] > 1:
                y_act, y_seen_act = y[ids], y_seen[ids]
                fbc = BandCorrespondence(y_act, n_bands) if fbc is not None else None
            if x is not None and x.shape[0] > 1:
                x_act = x[ids]
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter() - start
    for i, mid in enumerate(active):  # members that ran to the end
        finals[mid], steps_run[mid], seconds[mid] = out[i : i + 1].cpu(), step, end
        if given:
            engine.write_back(members[mid], i)

    losses = losses.cpu()
    runs = []
    for mid in range(k_members):
        mine = losses[: steps_run[mid], mid]
        if not torch.isfinite(mine).all():
            raise DivergenceError(f"the loss of member {mid} became NaN or infinite during the fit; "
                                  f"lower the learning rate (lr={lr})")
        readings_log = {key: [] for key in ("loss", "psnr", "psnr_observation", "bands", "ratio")}
        probe_steps, probe_times = [], []
        for s, t, members_then, readings in log:
            if mid not in members_then:
                continue
            i = members_then.index(mid)
            for key, v in readings.items():
                readings_log[key].append(v[i])
            probe_steps.append(s)
            probe_times.append(t)
        history = _history(readings_log, probe_steps, probe_times, mine)
        fired = mid in stop_steps
        config = dict(model=members[mid].config, steps=steps, lr=lr, degradation=repr(degradation),
                      probe_every=probe_every, stop=repr(rules[mid]), seed=seeds[mid], device=str(device),
                      ema=None, backtrack=False, input_noise=0.0, probes=list(probes), n_bands=n_bands,
                      batched=k_members, member=mid)
        runs.append(Run(
            final=finals[mid],
            stopped=stopped[mid].cpu() if fired else finals[mid],
            stop_step=stop_steps[mid] if fired else None,
            best=best[mid : mid + 1].cpu() if best is not None else None,
            best_step=int(best_step[mid]) if best is not None else None,
            best_psnr=float(best_psnr[mid]) if best is not None else None,
            history=history, steps_run=steps_run[mid], seconds=seconds[mid],
            config=config, code=members[mid].make_code(h, w, seeds[mid])))
    return runs


class _Vmap:
    """The members as one batched network: stacked parameters, ``vmap`` over ``functional_call``."""

    def __init__(self, members: list, codes: torch.Tensor, lr: float):
        self.params, self.buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")
        self.network = vmap(lambda p, b, z: functional_call(base, (p, b), (z,)))
        self.codes = codes
        self.lr = lr
        self.optimizer = torch.optim.Adam(self.params.values(), lr=lr)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def forward_backward(self, degradation: Degradation, y: torch.Tensor):
        """One batched pass; the sum of the members' losses is differentiated."""
        out = self.network(self.params, self.buffers, self.codes)[:, 0]
        member_loss = degradation.loss(out, y, reduction="none")
        member_loss.sum().backward()
        return out.detach(), member_loss.detach()

    def step(self) -> None:
        self.optimizer.step()

    def write_back(self, member: DIPNetwork, i: int) -> None:
        """Copy batch row ``i`` of the stacked parameters and buffers into ``member``."""
        with torch.no_grad():
            for name, p in self.params.items():
                member.get_parameter(name).copy_(p[i])
            for name, b in self.buffers.items():
                member.get_buffer(name).copy_(b[i])

    def keep(self, rows: list) -> None:
        """Drop the batch rows not in ``rows``: parameters, buffers, codes and Adam's state."""
        index = torch.tensor(rows, device=self.codes.device)
        params = {n: p.detach()[index].clone().requires_grad_(p.requires_grad) for n, p in self.params.items()}
        optimizer = torch.optim.Adam(params.values(), lr=self.lr)
        for old, new in zip(self.params.values(), params.values()):
            state = self.optimizer.state.get(old)
            if state:
                optimizer.state[new] = {key: (v.clone() if v.ndim == 0 else v[index].clone())
                                        for key, v in state.items()}
        self.params, self.optimizer = params, optimizer
        self.buffers = {n: b[index].clone() for n, b in self.buffers.items()}
        self.codes = self.codes[index]


class _Loop:
    """The members as K networks run one after the other, with one Adam over all parameters.

    A member that left has no gradient (``zero_grad`` sets it to None), so Adam leaves it alone.
    """

    def __init__(self, members: list, codes: torch.Tensor, lr: float):
        self.members, self.codes = list(members), codes
        self.active = list(range(len(members)))
        self.optimizer = torch.optim.Adam([p for m in members for p in m.parameters()], lr=lr)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def forward_backward(self, degradation: Degradation, y: torch.Tensor):
        """Each member's forward and backward in turn (one graph alive at a time, as in fit)."""
        outs, member_loss = [], []
        for row, i in enumerate(self.active):
            out = self.members[i](self.codes[i])
            loss = degradation.loss(out, y[row : row + 1] if y.shape[0] > 1 else y)
            loss.backward()
            outs.append(out.detach())
            member_loss.append(loss.detach())
        return torch.cat(outs), torch.stack(member_loss)

    def step(self) -> None:
        self.optimizer.step()

    def write_back(self, member: DIPNetwork, i: int) -> None:
        """The members are trained in place: ``member`` (row ``i``) already holds its weights."""

    def keep(self, rows: list) -> None:
        self.active = [self.active[i] for i in rows]
