"""The book's experiments, one per study of a chapter, declared as data.

Every fit denoises, deblocks, inpaints or enhances a sample image (or, for chapter 10, an image of the
paper's benchmark sets) at the profile's size; every setting is run for 3 seeds (network
weights, input code and noise draw), so each chapter's claims are statistics over seeds.
``dipkit experiments list`` shows them with what is stored.
"""

from __future__ import annotations

from typing import NamedTuple

from .spec import Experiment

__all__ = ["EXPERIMENTS", "SET_IMAGES"]

_NOISY_ASTRONAUT = {"image": "astronaut", "task": "denoise", "sigma": 25}

def _lambda_sweep(name: str, image: str, cpu_seeds: int, description: str) -> Experiment:
    """Chapter 3's sweep of the decoder's Lipschitz bound λ on one noisy image (σ = 25), the rules
    watching. At 128² (cpu) it adds λ = 1.2: where the regime starts between the bound that
    controls the fit at 64² (1.0) and the paper's (1.4)."""
    return Experiment(
        name, chapter="03", keep_images=0, description=description,
        base={**_NOISY_ASTRONAUT, "image": image, "network": "decoder", "probes": ["bands", "ratio"],
              "monitor": ["paper", "eswmv"]},
        axes={"lipschitz": [1.0, 1.4, 2.0, None]},
        per_profile={"cpu": {"axes": {"lipschitz": [1.0, 1.2, 1.4, 2.0, None]}, "seeds": cpu_seeds}})


_LIST = [
    Experiment(
        "spectral_bias", chapter="01", keep_images=0,
        description="the unbounded decoder on the noisy astronaut: the peak, the decline, the bands",
        base={**_NOISY_ASTRONAUT, "network": "decoder", "lipschitz": None, "probes": ["bands"]}),
    Experiment(
        "architectures", chapter="02", keep_images=0,
        description="decoder, hourglass and ConvNet, and the decoder's upsamplers, over the first "
                    "quarter of the budget",
        base={**_NOISY_ASTRONAUT, "lipschitz": None, "probes": ["bands"], "steps_fraction": 0.25},
        axes={"network": ["decoder", "hourglass", "convnet"]},
        variants=[{"network": "decoder", "upsample": u} for u in ("nearest", "gaussian", "deconv")]),
    _lambda_sweep("lipschitz", "astronaut", 3,
                  "a sweep of the Lipschitz bound λ of the decoder (None: no bound)"),
    # The same sweep on a second image, one seed at cpu (the compute budget): does the regime
    # found on astronaut hold on another picture?
    _lambda_sweep("lipschitz_chelsea", "chelsea", 1,
                  "chapter 3's λ sweep on a second image, chelsea (one seed at the cpu profile)"),
    Experiment(
        "gaussian_upsampling", chapter="04", keep_images=0,
        description="the Gaussian upsampler's width σ against bilinear, unbounded decoder",
        base={**_NOISY_ASTRONAUT, "network": "decoder", "lipschitz": None, "probes": ["bands"]},
        axes={"upsample": ["gaussian"], "gaussian_sigma": [0.1, 0.5, 1.0, [0.1, 0.1, 0.1, 0.5, 0.5]]},
        variants=[{"upsample": "bilinear", "gaussian_sigma": None}]),
    Experiment(
        "denoising", chapter="06",
        description="the paper's method at three noise levels and the original DIP at σ = 25, "
                    "watched by the paper's rule and ES-WMV",
        base={"image": "astronaut", "task": "denoise", "monitor": ["paper", "eswmv"]},
        axes={"method": ["paper"], "sigma": [15, 25, 50]},
        variants=[{"method": "original", "sigma": 25}],
        # At 128² every fit runs its whole budget with the rules watching (the paper's rule gives
        # the method's result), so that chapter 11 also reads σ = 15 and 50 from these fits.
        per_profile={"cpu": {"stop": "none"}}),
    Experiment(
        "deblocking", chapter="07",
        description="the paper's method on JPEG quality 10, gray and RGB, and the original DIP on gray",
        base={"image": "chelsea", "task": "deblock", "quality": 10, "measures": ["grid_ratio"],
              "monitor": ["paper", "eswmv"]},
        axes={"method": ["paper"], "mode": ["gray", "rgb"]},
        variants=[{"method": "original", "mode": "gray"}]),
    Experiment(
        "inpainting", chapter="08",
        description="the paper's method on three masks and the original DIP on the Bernoulli mask",
        base={"image": "astronaut", "task": "inpaint", "measures": ["hole_psnr"],
              "monitor": ["paper", "eswmv"]},
        axes={"method": ["paper"], "mask": ["bernoulli", "block", "text"]},
        variants=[{"method": "original", "mask": "bernoulli"}]),
    Experiment(
        "enhancement", chapter="09", keep_images=3,
        description="the paper's detail enhancement: its decoder at λ = 1.0 fitted to the clean image "
                    "for 100 steps (every seed's fit kept: the chapter takes the detail layer from it)",
        base={"image": "chelsea", "task": "enhance", "method": "paper", "probes": ["bands"]}),
]

#: The images of the paper's benchmark sets, by the names :func:`dipkit.datasets.load` gives them.
SET_IMAGES = {
    "set9": ["image_Baboon512rgb", "image_F16_512rgb", "image_House256rgb", "image_Lena512rgb",
             "image_Peppers512rgb", "kodim01", "kodim02", "kodim03", "kodim12"],
    "classic5": ["baboon", "barbara", "boats", "lena", "peppers"],
    "bernoulli11": ["Cameraman256", "Lena512", "barbara", "boat", "couple", "fingerprint", "hill",
                    "house", "man", "montage", "peppers256"],
}


class Benchmark(NamedTuple):
    """Chapter 10's protocol on one set: the experiment's name, the task and its parameters, the
    rules that watch every fit, and how the set's degradation reads in a description."""
    experiment: str
    task: dict
    monitor: list
    described: str


#: Chapter 10's protocol per set.
BENCHMARKS = {
    "set9": Benchmark("set9_denoising", {"task": "denoise", "sigma": 25}, ["paper", "eswmv", "discrepancy"],
                      "set9, σ = 25"),
    "classic5": Benchmark("classic5_deblocking", {"task": "deblock", "quality": 10}, ["paper", "eswmv"],
                          "classic5, JPEG quality 10"),
    "bernoulli11": Benchmark("bernoulli11_inpainting", {"task": "inpaint", "measures": ["hole_psnr"]},
                             ["paper", "eswmv"], "bernoulli11 with its masks"),
}


def _benchmark_base(set_name: str) -> dict:
    """The settings every fit of a set's protocol shares: its whole budget, the rules watching."""
    bench = BENCHMARKS[set_name]
    return {"set": set_name, **bench.task, "stop": "none", "monitor": bench.monitor}


def _benchmark(set_name: str) -> Experiment:
    """Chapter 10's protocol on one set: the paper's method and the original DIP on every image,
    each run for its whole budget with the stopping rules watching (the paper's rule gives the
    paper's result; the stopping study reads the same fits). At the cpu profile one seed per
    image (the compute budget); the other profiles three."""
    bench = BENCHMARKS[set_name]
    return Experiment(
        bench.experiment, chapter="10", keep_images=0,
        description=f"{bench.described}: the paper's method and the original DIP, whole budget, rules watching",
        base=_benchmark_base(set_name),
        axes={"method": ["paper", "original"], "image": SET_IMAGES[set_name]},
        per_profile={"cpu": {"seeds": 1}})


_LIST += [_benchmark(name) for name in BENCHMARKS]

#: The subset of each set that the held-out fits cover (the first three images of each, in the
#: order above: a stated subset, not a choice by result).
HELDOUT_IMAGES = {name: images[:3] for name, images in SET_IMAGES.items()}
#: Seeds 1 and 2 of the paper's method on that subset, for the cpu profile, where the sets' own
#: experiments hold one seed (0) per image: three seeds on a stated subset. (At the other
#: profiles the sets' experiments hold three seeds on every image, and these fits repeat theirs.)
_LIST.append(Experiment(
    "benchmark_seeds", chapter="10", keep_images=0, seeds=(1, 2),
    description="seeds 1 and 2 of the paper's method on the first three images of each set (seed 0 "
                "is in the set's own experiment): three seeds on a stated subset, at the cpu profile",
    base={"method": "paper"},
    variants=[{**_benchmark_base(name), "image": image}
              for name, images in HELDOUT_IMAGES.items() for image in images]))
# The held-out fits' task per set: the protocol's, without the hole PSNR (those fits were declared,
# and stored, before inpainting measured it; their keys stay as stored).
_TASKS = {name: {k: v for k, v in bench.task.items() if k != "measures"} for name, bench in BENCHMARKS.items()}

_LIST.append(Experiment(
    "heldout_stopping", chapter="11", keep_images=0, per_profile={"cpu": {"seeds": 1}},
    description="the paper's method with 5 % of the known pixels held out of the loss, watched by the "
                "held-out rule (and the others), on three images of each set: the held-out rule's own fits",
    base={"method": "paper", "stop": "none", "heldout": 0.05, "monitor": ["paper", "eswmv", "heldout"]},
    variants=[{"set": name, **_TASKS[name], "image": image}
              for name, images in HELDOUT_IMAGES.items() for image in images]))

_LIST.append(Experiment(
    "set9_noise_levels", chapter="11", keep_images=0, per_profile={"cpu": {"seeds": 1}},
    description="the paper's method at σ = 15 and 50 on the held-out subset of set9 (its first three "
                "images), whole budget, rules watching: the stopping study at other noise levels",
    base={"set": "set9", "task": "denoise", "method": "paper", "stop": "none",
          "monitor": ["paper", "eswmv", "discrepancy"]},
    axes={"sigma": [15, 50], "image": HELDOUT_IMAGES["set9"]}))

#: The book's experiments by name.
EXPERIMENTS = {e.name: e for e in _LIST}
