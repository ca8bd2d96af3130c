"""dipkit: measure and control the spectral bias of the Deep Image Prior.

A small PyTorch library for the paper "On Measuring and Controlling the Spectral Bias of the
Deep Image Prior" (Shi, Mettes, Maji, Snoek; IJCV 2022).

Modules
-------
images        load, save, convert, pad and sample images as (N, C, H, W) float32 tensors in [0, 1]
degradations  Gaussian noise, JPEG, inpainting masks: observations and their forward operators
layers        Lipschitz-controlled convolution, mean-only norm, Gaussian upsampler
models        the paper's decoder, the original DIP hourglass, a ConvNet without upsampling
spectral      the frequency-band correspondence (FBC) metric and radial spectra
sharpness     blurriness, sharpness and their ratio (the paper's stopping signal)
stopping      rules (parameters in steps): the paper's ratio rule, ES-WMV, the discrepancy
              principle, held-out pixels, patience
noiselevel    the noise level σ for the discrepancy principle: Gaussian, JPEG's error (derived)
fit           fit (one network) and fit_many (K at once, e.g. K seeds): the engine's front door
engine        the loop over K ≥ 1 members; callbacks the behaviour at each step and probe
callbacks     output EMA, snapshots, backtracking, oracle best, progress, rules, checkpoints
members       the networks a fit trains: one after the other, or batched with vmap
run           Run, History, Detection: what a fit returns
recorders     callbacks that follow the model (spectral norms of the Lipschitz layers)
memory        the peak memory of a fit, and a clear error instead of running out of it
presets       the paper's settings per task and the quick/cpu/full run profiles
restore       the task pipeline: pad, fit, undo the padding, the task's finish (dipkit.restore)
metrics       PSNR and SSIM in the paper's conventions
baselines     classical restorations (TV, non-local means, wavelet, BM3D; biharmonic inpainting)
blockiness    the JPEG block grid in the jumps between columns (grid ratio)
experiments   declared sweeps, a resumable runner, a results store with provenance
claims        the claim table that ends each chapter
"""

from . import degradations, images, layers, metrics, models, presets, sharpness, spectral, stopping
from .errors import DipkitError, DivergenceError, ImageError, ShapeError
from .fit import History, Run, fit
from . import baselines, batched, callbacks, memory
from .batched import fit_many
from .models import convnet, decoder, hourglass
from .presets import get_profile
from . import blockiness, claims, experiments
from .restore import restore

__version__ = "0.1.0"

__all__ = [
    "fit", "fit_many", "restore", "Run", "History", "decoder", "hourglass", "convnet", "get_profile",
    "DipkitError", "DivergenceError", "ImageError", "ShapeError",
    "images", "degradations", "layers", "models", "spectral", "sharpness", "stopping", "presets",
    "metrics", "batched", "callbacks", "memory", "baselines", "blockiness", "claims", "experiments",
]
