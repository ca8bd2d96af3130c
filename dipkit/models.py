"""The networks of the paper's study: its decoder, the original DIP hourglass, a ConvNet.

Every constructor returns a :class:`DIPNetwork`: a module that maps a fixed input code to an
image, knows which image sizes it can produce, and makes its own input code for a size and a
seed. Models do not hold the code: :func:`dipkit.fit` makes it from the observation's size.

References
----------
Shi et al., IJCV 2022, section 3 (the decoder) and section 5 (the architecture study);
Ulyanov, Vedaldi, Lempitsky, "Deep Image Prior", CVPR 2018 (the hourglass "skip" network).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import nn

from .errors import DipkitError, ShapeError
from .layers import GaussianUpsample, LipschitzConv2d, MeanOnlyNorm, spectral_norm

__all__ = ["DIPNetwork", "decoder", "hourglass", "convnet", "make_code", "EagerBilinearUpsample", "INPUT_CODES", "UPSAMPLERS"]

INPUT_CODES = ("fourier", "noise", "meshgrid")
UPSAMPLERS = ("bilinear", "nearest", "gaussian", "deconv")

#: σ per up-block (coarse → fine) of the paper's code for the Gaussian upsampler.
PAPER_GAUSSIAN_SIGMAS = (0.1, 0.1, 0.1, 0.5, 0.5)


def make_code(kind: str, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Make a fixed input code of shape (1, channels, height, width) on the CPU.

    Parameters
    ----------
    kind : {'fourier', 'noise', 'meshgrid'}
        ``fourier``: ``u ~ U[0, 1)`` with ``channels/2`` channels, ``z = [sin 2πu, cos 2πu]``
        (the paper's code). ``noise``: ``U[0, 0.1)`` (the original DIP's). ``meshgrid``: the two
        pixel coordinates scaled to [0, 1] (``channels`` must be 2).
    seed : int
        Seed of a private generator: the same seed gives the same code on every machine.
    """
    g = torch.Generator().manual_seed(int(seed))
    if kind == "fourier":
        if channels % 2:
            raise DipkitError(f"a fourier code needs an even number of channels, got {channels}")
        u = torch.rand(1, channels // 2, height, width, generator=g)
        return torch.cat([torch.sin(2 * math.pi * u), torch.cos(2 * math.pi * u)], dim=1)
    if kind == "noise":
        return torch.rand(1, channels, height, width, generator=g) * 0.1
    if kind == "meshgrid":
        if channels != 2:
            raise DipkitError(f"a meshgrid code has 2 channels, got in_channels={channels}")
        ys = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
        xs = torch.linspace(0, 1, width).view(1, width).expand(height, width)
        return torch.stack([xs, ys]).unsqueeze(0).contiguous()
    raise DipkitError(f"unknown input code {kind!r}: choose one of {INPUT_CODES}")


class DIPNetwork(nn.Module):
    """A generator ``f_θ(z)``: a network plus what it needs to know about its input code.

    Attributes
    ----------
    net : nn.Module
        Maps the code (1, in_channels, H / code_scale, W / code_scale) to an image
        (1, out_channels, H, W) in [0, 1].
    input_code, in_channels, code_scale
        How :meth:`make_code` builds the code for an image of size H × W.
    multiple, min_size
        H and W must be multiples of ``multiple`` and at least ``min_size``.
    config : dict
        The constructor's arguments, for records and reports.
    """

    def __init__(self, net: nn.Module, *, input_code: str, in_channels: int, code_scale: int,
                 multiple: int, min_size: int, out_channels: int, config: dict):
        super().__init__()
        self.net = net
        self.input_code = input_code
        self.in_channels = in_channels
        self.code_scale = code_scale
        self.multiple = multiple
        self.min_size = min_size
        self.out_channels = out_channels
        self.config = dict(config)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(1, in_channels, h, w) code -> (1, out_channels, H, W) image in [0, 1]."""
        return self.net(code)

    def check_size(self, height: int, width: int) -> None:
        """Raise :class:`ShapeError` (with what to do) if this network cannot make H × W images."""
        m, lo = self.multiple, self.min_size
        if height < lo or width < lo:
            raise ShapeError(
                f"image of {height}x{width} is too small for this {self.config['kind']} "
                f"(depth {self.config.get('depth')}): it needs at least {lo}x{lo}. Use a larger "
                f"image or a network of smaller depth.")
        if height % m or width % m:
            raise ShapeError(
                f"image of {height}x{width} is not a multiple of {m} as this "
                f"{self.config['kind']} needs; pad it with dipkit.images.pad_to_multiple(image, "
                f"{m}) (and undo the padding on the output), or crop it with crop_to_multiple.")

    def make_code(self, height: int, width: int, seed: int = 0) -> torch.Tensor:
        """The fixed input code for an H × W output, on the CPU: (1, in_channels, h, w)."""
        self.check_size(height, width)
        s = self.code_scale
        return make_code(self.input_code, self.in_channels, height // s, width // s, seed)

    def lipschitz_layers(self) -> dict[str, LipschitzConv2d]:
        """The convolutions whose spectral norm the paper controls, by module name."""
        return {n: m for n, m in self.named_modules() if isinstance(m, LipschitzConv2d)}

    @torch.no_grad()
    def spectral_norms(self, effective: bool = True) -> dict[str, float]:
        """Spectral norm of each Lipschitz-controlled convolution (of the effective weight)."""
        return {n: float(spectral_norm(m.effective_weight() if effective else m.weight))
                for n, m in self.lipschitz_layers().items()}

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _seeded_build(build, seed: Optional[int], kaiming: bool) -> nn.Module:
    """Call ``build()`` under a private seed; then, if asked, re-initialise its convolutions with
    Kaiming-uniform (a=0, fan_in) weights and default biases, as the paper's code does."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        module = build()
        if kaiming:
            _kaiming_init(module)
    return module


def _kaiming_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_uniform_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                fan_in = nn.init._calculate_fan_in_and_fan_out(m.weight)[0]
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(m.bias, -bound, bound)


def _conv_block(c_in: int, c_out: int, lipschitz: Optional[float], act: nn.Module) -> list[nn.Module]:
    """Reflection pad 1 → Lipschitz conv 3×3 → mean-only norm → activation (the book's protocol
    page, book/protocol.md, section "The paper's network: a decoder only")."""
    return [nn.ReflectionPad2d(1), LipschitzConv2d(c_in, c_out, 3, lipschitz=lipschitz),
            MeanOnlyNorm(c_out), act]


class EagerBilinearUpsample(nn.Upsample):
    """×2 bilinear upsampling (``nn.Upsample``, ``align_corners=False``) that ``torch.compile``
    leaves uncompiled: a graph break at each upsampler; eager results are unchanged.

    Inductor (torch 2.13 on the CPU) returns wrong input gradients for the decoder's up-block
    pattern: mean subtraction → ReLU or leaky ReLU → bilinear ×2 → 3×3 convolution (relative
    error about 1 on a (1, 8, 8, 8) input; each piece alone, or nearest upsampling, is right).
    ``fit(compile=True)`` would catch it at the first step and run uncompiled; with the
    upsamplers left out of the graphs the compiled network's gradients match.

    Shape
    -----
    (N, C, H, W) -> (N, C, 2H, 2W)
    """

    def __init__(self):
        super().__init__(scale_factor=2, mode="bilinear", align_corners=False)

    @torch.compiler.disable
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


def _upsample2x(kind: str) -> nn.Module:
    """The fixed ×2 upsampler of a network: bilinear (:class:`EagerBilinearUpsample`) or nearest."""
    return EagerBilinearUpsample() if kind == "bilinear" else nn.Upsample(scale_factor=2, mode=kind)


def _upsampler(kind: str, channels: int, sigma: float, lipschitz: Optional[float]) -> list[nn.Module]:
    if kind in ("bilinear", "nearest"):
        return [_upsample2x(kind)]
    if kind == "gaussian":
        return [GaussianUpsample(channels, sigma)]
    if kind == "deconv":
        return [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1),
                nn.ReflectionPad2d(1), LipschitzConv2d(channels, channels, 3, lipschitz=lipschitz)]
    raise DipkitError(f"unknown upsampler {kind!r}: choose one of {UPSAMPLERS}")


def _sigmas(sigma: Union[None, float, Sequence[float]], depth: int) -> list[float]:
    if sigma is None:
        if depth == len(PAPER_GAUSSIAN_SIGMAS):
            return list(PAPER_GAUSSIAN_SIGMAS)
        return [0.1] * max(depth - 2, 0) + [0.5] * min(depth, 2)
    if isinstance(sigma, (int, float)):
        return [float(sigma)] * depth
    sigma = [float(s) for s in sigma]
    if len(sigma) != depth:
        raise DipkitError(f"give one sigma or one per up-block ({depth}), got {len(sigma)}")
    return sigma


def _check_positive(**kwargs) -> None:
    for name, value in kwargs.items():
        if not isinstance(value, int) or value < 1:
            raise DipkitError(f"{name} must be a positive integer, got {value!r}")


def _head(channels: int, out_channels: int) -> list[nn.Module]:
    """Conv 1×1 (not Lipschitz-controlled) → sigmoid."""
    return [nn.Conv2d(channels, out_channels, 1), nn.Sigmoid()]


def decoder(out_channels: int = 3, channels: int = 128, depth: int = 5, upsample: str = "bilinear",
            lipschitz: Optional[float] = None, *, sigma: Union[None, float, Sequence[float]] = None,
            input_code: str = "fourier", in_channels: int = 32, seed: Optional[int] = 0) -> DIPNetwork:
    """The paper's decoder-only network (the book's protocol page, book/protocol.md, section
    "The paper's network: a decoder only").

    A block at H/2^depth (two conv blocks, in_channels → channels → channels), then ``depth``
    up-blocks (upsample ×2 → two conv blocks), then a 1×1 conv head and a sigmoid. Each conv block
    is reflection pad → :class:`~dipkit.layers.LipschitzConv2d` 3×3 → mean-only norm →
    LeakyReLU(0.01). With the defaults and RGB output: 1,662,339 parameters.

    Parameters
    ----------
    out_channels : int
        3 for RGB, 1 for gray.
    channels : int
        Width of every conv layer (paper: 128).
    depth : int
        Number of ×2 up-blocks; images must be multiples of 2^depth, at least 2^(depth+1).
    upsample : {'bilinear', 'nearest', 'gaussian', 'deconv'}
        The paper's code defaults to bilinear.
    lipschitz : float or None
        λ of every 3×3 conv (paper: 1.4 denoise/deblock, 1.6 inpaint, 1.0 enhance). None: no bound.
    sigma : float or sequence of float, optional
        σ of the Gaussian upsampler: one for all up-blocks or one per block (coarse → fine).
        Default: the paper's code, (0.1, 0.1, 0.1, 0.5, 0.5) at depth 5.
    input_code : {'fourier', 'noise', 'meshgrid'}
    in_channels : int
        Channels of the input code (paper: 32).
    seed : int or None
        Seed of the weight initialisation (None: the global RNG).

    Examples
    --------
    >>> decoder().n_parameters()
    1662339
    """
    _check_positive(out_channels=out_channels, channels=channels, depth=depth, in_channels=in_channels)
    act = lambda: nn.LeakyReLU(0.01)  # noqa: E731
    sigmas = _sigmas(sigma, depth) if upsample == "gaussian" else [0.0] * depth
    layers = _conv_block(in_channels, channels, lipschitz, act()) + _conv_block(channels, channels, lipschitz, act())
    for i in range(depth):
        layers += _upsampler(upsample, channels, sigmas[i], lipschitz)
        layers += _conv_block(channels, channels, lipschitz, act()) + _conv_block(channels, channels, lipschitz, act())
    net = _seeded_build(lambda: nn.Sequential(*layers, *_head(channels, out_channels)), seed, kaiming=True)
    config = dict(kind="decoder", out_channels=out_channels, channels=channels, depth=depth,
                  upsample=upsample, lipschitz=lipschitz, sigma=sigmas if upsample == "gaussian" else None,
                  input_code=input_code, in_channels=in_channels, seed=seed)
    return DIPNetwork(net, input_code=input_code, in_channels=in_channels, code_scale=2 ** depth,
                      multiple=2 ** depth, min_size=2 ** (depth + 1), out_channels=out_channels,
                      config=config)


def convnet(out_channels: int = 3, channels: int = 128, depth: int = 5,
            lipschitz: Optional[float] = None, *, input_code: str = "fourier", in_channels: int = 32,
            seed: Optional[int] = 0) -> DIPNetwork:
    """The decoder's conv blocks at full resolution, with no up- or downsampling (the book's
    protocol page, book/protocol.md, section "The networks of the architecture study").

    Same layers and parameter count as :func:`decoder` with bilinear upsampling, but the code
    is at the image's full size and no layer changes the resolution.
    """
    _check_positive(out_channels=out_channels, channels=channels, depth=depth, in_channels=in_channels)
    act = lambda: nn.LeakyReLU(0.01)  # noqa: E731
    layers = _conv_block(in_channels, channels, lipschitz, act()) + _conv_block(channels, channels, lipschitz, act())
    for _ in range(depth):
        layers += _conv_block(channels, channels, lipschitz, act()) + _conv_block(channels, channels, lipschitz, act())
    net = _seeded_build(lambda: nn.Sequential(*layers, *_head(channels, out_channels)), seed, kaiming=True)
    config = dict(kind="convnet", out_channels=out_channels, channels=channels, depth=depth,
                  lipschitz=lipschitz, input_code=input_code, in_channels=in_channels, seed=seed)
    return DIPNetwork(net, input_code=input_code, in_channels=in_channels, code_scale=1, multiple=1,
                      min_size=2, out_channels=out_channels, config=config)


class _Concat(nn.Module):
    """Concatenate the outputs of branches along channels (the DIP skip connection)."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)


def hourglass(out_channels: int = 3, channels: int = 128, depth: int = 5, upsample: str = "bilinear",
              *, skip_channels: int = 4, in_channels: int = 32, input_code: str = "noise",
              seed: Optional[int] = 0) -> DIPNetwork:
    """The original Deep Image Prior "skip" hourglass (the book's protocol page,
    book/protocol.md, section "The original DIP protocol").

    ``depth`` scales; at each: a skip branch (conv 1×1 → ``skip_channels``, BN, act) beside a
    deeper branch (conv 3×3 stride 2 → BN → act → conv 3×3 → BN → act → the next scale →
    upsample ×2); then concat → BN → conv 3×3 → BN → act → conv 1×1 → BN → act. Reflection
    padding, LeakyReLU(0.2), BatchNorm2d. Head conv 1×1 → sigmoid. With the defaults (DIP's
    denoising settings) and RGB output: 2,217,831 parameters. The input code is at full
    resolution (DIP: ``U[0, 0.1)``, 32 channels).

    Examples
    --------
    >>> hourglass().n_parameters()
    2217831
    """
    _check_positive(out_channels=out_channels, channels=channels, depth=depth, in_channels=in_channels)
    if upsample not in ("bilinear", "nearest"):
        raise DipkitError(f"the hourglass supports upsample='bilinear' or 'nearest', got {upsample!r}")

    def conv(c_in, c_out, k, stride=1):
        pad = [nn.ReflectionPad2d((k - 1) // 2)] if k > 1 else []
        return pad + [nn.Conv2d(c_in, c_out, k, stride=stride)]

    def bn_act(c):
        return [nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]

    def scale(i: int, c_in: int) -> list[nn.Module]:
        deeper = conv(c_in, channels, 3, stride=2) + bn_act(channels) + conv(channels, channels, 3) + bn_act(channels)
        if i < depth - 1:
            deeper += scale(i + 1, channels)
        deeper += [_upsample2x(upsample)]
        skip = conv(c_in, skip_channels, 1) + bn_act(skip_channels)
        return ([_Concat(nn.Sequential(*skip), nn.Sequential(*deeper)), nn.BatchNorm2d(skip_channels + channels)]
                + conv(skip_channels + channels, channels, 3) + bn_act(channels)
                + conv(channels, channels, 1) + bn_act(channels))

    # The original DIP keeps PyTorch's default initialisation.
    net = _seeded_build(lambda: nn.Sequential(*scale(0, in_channels), *_head(channels, out_channels)),
                        seed, kaiming=False)
    config = dict(kind="hourglass", out_channels=out_channels, channels=channels, depth=depth,
                  upsample=upsample, skip_channels=skip_channels, input_code=input_code,
                  in_channels=in_channels, seed=seed)
    return DIPNetwork(net, input_code=input_code, in_channels=in_channels, code_scale=1,
                      multiple=2 ** depth, min_size=2 ** (depth + 1), out_channels=out_channels,
                      config=config)
