"""Every public library function x every kind of bad argument: TypeError / ValueError naming it.

One table: `ENTRIES` lists each public function once, with a good call and the role of each
argument it takes (images, a count, a rank, a budget, labels, ...); `BAD` lists, per role, the
wrong values of each kind (wrong type, out of range, wrong shape, wrong dtype, non-finite).
The test is their product, so a new function is covered by adding one entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

from rankrobust import attacks, bases, evaluate, svd
from rankrobust import attribution as attr
from rankrobust.data import random_brightness_contrast, random_crop_flip, synthetic_sets
from rankrobust.models import build_model, small_cnn

pytestmark = pytest.mark.usefixtures("one_thread")

N, HW = 2, 8
X = torch.rand(N, 3, HW, HW, generator=torch.Generator().manual_seed(0))
Y = torch.tensor([0, 1])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3)).eval()  # fmt: skip


MODEL = _model()


def _nan(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x.view(-1)[3] = float("nan")
    return x


# role -> {kind: a function of the good value giving a bad one}
BAD: dict[str, dict[str, Callable[[Any], Any]]] = {
    "images": {  # a batch (N, C, H, W) of float pixels
        "list": lambda x: x.tolist(),
        "numpy": lambda x: x.numpy(),
        "uint8": lambda x: (x * 255).to(torch.uint8),
        "int64": lambda x: (x * 255).long(),
        "3-D": lambda x: x[0],
        "NaN": _nan,
        "string": lambda x: "images.png",
    },
    "matrices": {  # (..., H, W) floats
        "list": lambda x: x.tolist(),
        "numpy": lambda x: x.numpy(),
        "uint8": lambda x: (x * 255).to(torch.uint8),
        "int64": lambda x: (x * 255).long(),
        "1-D": lambda x: x.flatten(),
        "NaN": _nan,
    },
    "count": {  # an integer >= 1 (steps, n_steps, batch_size, n, ...)
        "zero": lambda v: 0,
        "negative": lambda v: -2,
        "float": lambda v: 2.5,
        "bool": lambda v: True,
        "string": lambda v: "3",
    },
    "rank": {  # an integer 1 <= k <= min(H, W)
        "zero": lambda v: 0,
        "above full rank": lambda v: HW + 1,
        "float": lambda v: 2.0,
        "bool": lambda v: True,
        "string": lambda v: "2",
    },
    "budget": {  # a finite number >= 0 (eps, step_size)
        "negative": lambda v: -0.01,
        "NaN": lambda v: float("nan"),
        "string": lambda v: "0.03",
        "bool": lambda v: True,
        "list": lambda v: [v],
    },
    "labels": {  # class indices of shape (N,)
        "short": lambda y: y[:-1],
        "2-D": lambda y: y[:, None],
        "string": lambda y: "01",
        "dict": lambda y: {0: 0, 1: 1},
    },
    "target": {  # None, an int, N ints or a tensor (N,)
        "short": lambda t: torch.tensor([0] * (N - 1)),
        "2-D": lambda t: torch.zeros(N, 1, dtype=torch.long),
        "string": lambda t: "cat",
        "float": lambda t: 1.5,
    },
    "baseline": {  # "zero" / a number / a tensor broadcastable to x
        "other shape": lambda b: torch.zeros(N, 3, HW // 2, HW // 2),
        "NaN": lambda b: _nan(torch.zeros(N, 3, HW, HW)),
        "unknown name": lambda b: "gaussian-ish",
        "list": lambda b: [0.0] * 3,
    },
    "fraction": {  # a number in [0, 1) (SIG's overlap)
        "one": lambda v: 1.0,
        "negative": lambda v: -0.1,
        "string": lambda v: "0.5",
    },
    "model": {
        "not callable": lambda m: "resnet50",
        "number": lambda m: 3,
    },
    "attributions": {  # maps shaped like the images
        "other shape": lambda a: a[:, :, :4],
        "list": lambda a: a.tolist(),
        "NaN": _nan,
    },
}


@dataclass
class Entry:
    """A public function: how to call it from keyword arguments, good ones, and their roles."""

    name: str
    call: Callable[..., Any]
    good: dict[str, Any]
    roles: dict[str, str]
    skip: set[tuple[str, str]] = field(default_factory=set)  # (argument, kind) that are fine
    run_good: bool = True  # False: the good call is too slow for this table


def _rig(**kw):
    return attr.rank_integrated_gradients(**kw)


ENTRIES: list[Entry] = [
    Entry("svd.factorize", lambda x: svd.factorize(x), {"x": X}, {"x": "matrices"}),
    Entry("svd.low_rank", lambda x, k: svd.low_rank(x, k), {"x": X, "k": 2},
          {"x": "matrices", "k": "rank"}),
    Entry("svd.high_rank", lambda x, k: svd.high_rank(x, k), {"x": X, "k": 2},
          {"x": "matrices", "k": "rank"}),
    Entry("svd.RankTransform", lambda rank, x: svd.RankTransform("low", rank)(x),
          {"rank": 2, "x": X}, {"rank": "rank", "x": "matrices"}),
    Entry("bases.low", lambda x, k: bases.low(x, k, "svd"), {"x": X, "k": 2},
          {"x": "matrices", "k": "rank"}),
    Entry("bases.high", lambda x, k: bases.high(x, k, "dct"), {"x": X, "k": 2},
          {"x": "matrices", "k": "count"}, skip={("k", "zero")}),  # DCT cutoff 0: keep none
    Entry("bases.energy_kept", lambda x, k: bases.energy_kept(x, k, "svd"), {"x": X, "k": 2},
          {"x": "images", "k": "rank"}),
    Entry("bases.decompose", lambda x: bases.decompose(x, "dct"), {"x": X}, {"x": "matrices"}),
    Entry("attacks.pgd_linf", attacks.pgd_linf,
          {"model": MODEL, "x": X, "y": Y, "eps": 2 / 255, "step_size": 1 / 255, "steps": 2},
          {"model": "model", "x": "images", "y": "labels", "eps": "budget",
           "step_size": "budget", "steps": "count"}),
    Entry("attacks.pgd_l2", attacks.pgd_l2,
          {"model": MODEL, "x": X, "y": Y, "eps": 0.1, "step_size": 0.05, "steps": 2},
          {"model": "model", "x": "images", "y": "labels", "eps": "budget",
           "step_size": "budget", "steps": "count"}),
    Entry("attacks.fgsm_rs", attacks.fgsm_rs,
          {"model": MODEL, "x": X, "y": Y, "eps": 2 / 255, "step_size": 1 / 255},
          {"model": "model", "x": "images", "y": "labels", "eps": "budget",
           "step_size": "budget"}),
    Entry("attacks.autoattack", attacks.autoattack,
          {"model": MODEL, "x": X, "y": Y, "eps": 2 / 255},
          {"x": "images", "y": "labels", "eps": "budget"}, run_good=False),
    Entry("evaluate.accuracy", evaluate.accuracy,
          {"model": MODEL, "images": X, "labels": Y, "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count"}),
    Entry("evaluate.robust_accuracy", evaluate.robust_accuracy,
          {"model": MODEL, "images": X, "labels": Y, "attack": lambda m, x, y: x,
           "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count",
           "attack": "model"}),
    Entry("evaluate.rank_sweep", evaluate.rank_sweep,
          {"model": MODEL, "images": X, "labels": Y, "ranks": [2], "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count"}),
    Entry("evaluate.basis_sweep", evaluate.basis_sweep,
          {"model": MODEL, "images": X, "labels": Y, "basis": "fourier", "cutoffs": [1],
           "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count"}),
    Entry("evaluate.fourier_heat_map", evaluate.fourier_heat_map,
          {"model": MODEL, "images": X, "labels": Y, "eps": 1.0, "size": 2, "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count",
           "size": "count", "eps": "budget"}, skip={("size", "zero")}),
    Entry("evaluate.rank_heat_map", evaluate.rank_heat_map,
          {"model": MODEL, "images": X, "labels": Y, "eps": 1.0, "ranks": [1, 2],
           "batch_size": 1},
          {"model": "model", "images": "images", "labels": "labels", "batch_size": "count",
           "eps": "budget"}),
    Entry("attribution.rank_integrated_gradients", _rig,
          {"model": MODEL, "x": X, "target": Y, "n_steps_per_rank": 1, "ranks": [4, 8],
           "baselines": "zero", "internal_batch_size": 4},
          {"model": "model", "x": "images", "target": "target", "n_steps_per_rank": "count",
           "baselines": "baseline", "internal_batch_size": "count"}),
    Entry("attribution.rank_integrated_gradients n_steps", _rig,
          {"model": MODEL, "x": X, "target": Y, "n_steps": 4, "ranks": [4, 8]},
          {"n_steps": "count"}, skip={("n_steps", "zero")}),
    Entry("attribution.integrated_gradients", attr.integrated_gradients,
          {"model": MODEL, "x": X, "target": Y, "n_steps": 2, "baselines": "zero",
           "internal_batch_size": 4},
          {"model": "model", "x": "images", "target": "target", "n_steps": "count",
           "baselines": "baseline", "internal_batch_size": "count"}),
    Entry("attribution.vanilla_gradient", attr.vanilla_gradient,
          {"model": MODEL, "x": X, "target": Y, "internal_batch_size": 1},
          {"model": "model", "x": "images", "target": "target", "internal_batch_size": "count"}),
    Entry("attribution.spectral_integrated_gradients", attr.spectral_integrated_gradients,
          {"model": MODEL, "x": X, "target": Y, "n_steps": 2, "overlap": 0.5,
           "baselines": "zero", "internal_batch_size": 4},
          {"model": "model", "x": "images", "target": "target", "n_steps": "count",
           "overlap": "fraction", "baselines": "baseline", "internal_batch_size": "count"}),
    Entry("attribution.explain", attr.explain,
          {"model": MODEL, "x": X, "method": "ig", "n_steps": 2, "target": Y,
           "internal_batch_size": 4, "baselines": "zero"},
          {"model": "model", "x": "images", "n_steps": "count", "target": "target",
           "internal_batch_size": "count", "baselines": "baseline"}),
    Entry("attribution.IntegratedGradients",
          lambda inputs, baselines, target, n_steps, internal_batch_size:
          attr.IntegratedGradients(MODEL).attribute(
              inputs, baselines=baselines, target=target, n_steps=n_steps,
              internal_batch_size=internal_batch_size),
          {"inputs": X, "baselines": None, "target": Y, "n_steps": 2, "internal_batch_size": 4},
          {"inputs": "images", "baselines": "baseline", "target": "target",
           "n_steps": "count", "internal_batch_size": "count"},
          skip={("baselines", "unknown name")}),
    Entry("attribution.RankIntegratedGradients",
          lambda inputs, baselines, target, n_steps_per_rank, internal_batch_size:
          attr.RankIntegratedGradients(MODEL).attribute(
              inputs, baselines=baselines, target=target, n_steps_per_rank=n_steps_per_rank,
              ranks=[4, 8], internal_batch_size=internal_batch_size),
          {"inputs": X, "baselines": None, "target": Y, "n_steps_per_rank": 1,
           "internal_batch_size": 4},
          {"inputs": "images", "baselines": "baseline", "target": "target",
           "n_steps_per_rank": "count", "internal_batch_size": "count"},
          skip={("baselines", "unknown name")}),
    Entry("attribution.RankIntegratedGradients n_steps",
          lambda inputs, n_steps: attr.RankIntegratedGradients(MODEL).attribute(
              inputs, target=Y, n_steps=n_steps, ranks=[4, 8]),
          {"inputs": X, "n_steps": 4}, {"n_steps": "count"}, skip={("n_steps", "zero")}),
    Entry("attribution.SpectralIntegratedGradients",
          lambda inputs, baselines, target, n_steps, overlap, internal_batch_size:
          attr.SpectralIntegratedGradients(MODEL).attribute(
              inputs, baselines=baselines, target=target, n_steps=n_steps, overlap=overlap,
              internal_batch_size=internal_batch_size),
          {"inputs": X, "baselines": None, "target": Y, "n_steps": 2, "overlap": 0.5,
           "internal_batch_size": 4},
          {"inputs": "images", "baselines": "baseline", "target": "target",
           "n_steps": "count", "overlap": "fraction", "internal_batch_size": "count"},
          skip={("baselines", "unknown name")}),
    Entry("attribution.VanillaGradient",
          lambda inputs, target, internal_batch_size: attr.VanillaGradient(MODEL).attribute(
              inputs, target=target, internal_batch_size=internal_batch_size),
          {"inputs": X, "target": Y, "internal_batch_size": 1},
          {"inputs": "images", "target": "target", "internal_batch_size": "count"}),
    Entry("attribution.sparseness", attr.sparseness, {"attributions": X - 0.5},
          {"attributions": "matrices"}, skip={("attributions", "1-D")}),
    Entry("attribution.complexity", attr.complexity, {"attributions": X - 0.5},
          {"attributions": "matrices"}, skip={("attributions", "1-D")}),
    Entry("attribution.diffid", attr.diffid,
          {"forward_func": MODEL, "inputs": X, "attributions": X - 0.5, "target": Y,
           "internal_batch_size": 4},
          {"forward_func": "model", "inputs": "images", "attributions": "attributions",
           "target": "target", "internal_batch_size": "count"}),
    Entry("attribution.insertion_deletion", attr.insertion_deletion,
          {"forward_func": MODEL, "inputs": X, "attributions": X - 0.5, "target": Y,
           "internal_batch_size": 4},
          {"forward_func": "model", "inputs": "images", "attributions": "attributions",
           "target": "target", "internal_batch_size": "count"}),
    Entry("models.small_cnn", small_cnn, {"num_classes": 3, "in_channels": 3, "width": 4},
          {"num_classes": "count", "in_channels": "count", "width": "count"}),
    Entry("models.build_model", build_model,
          {"name": "small_cnn", "num_classes": 3, "mean": (0.5,) * 3, "std": (0.25,) * 3,
           "width": 4},
          {"num_classes": "count", "width": "count"}),
    Entry("data.synthetic_sets", synthetic_sets,
          {"n_train": 4, "n_test": 2, "num_classes": 2, "image_size": 8},
          {"n_train": "count", "n_test": "count", "num_classes": "count",
           "image_size": "count"}),
    Entry("data.random_crop_flip", lambda x, padding: random_crop_flip(x, padding),
          {"x": X, "padding": 2}, {"x": "images", "padding": "count"},
          skip={("x", "NaN"), ("padding", "zero")}),  # per-batch on the GPU: no value scan
    Entry("data.random_brightness_contrast",
          lambda x, brightness: random_brightness_contrast(x, brightness, 0.1),
          {"x": X, "brightness": 0.1}, {"x": "images", "brightness": "budget"},
          skip={("x", "NaN")}),
]  # fmt: skip


def _rows():
    for entry in ENTRIES:
        for arg, role in entry.roles.items():
            for kind, make in BAD[role].items():
                if (arg, kind) not in entry.skip:
                    yield pytest.param(entry, arg, kind, make, id=f"{entry.name}-{arg}-{kind}")


def _names(message: str, arg: str) -> bool:
    return re.search(rf"(?<![A-Za-z_]){re.escape(arg)}(?![A-Za-z_])", message) is not None


@pytest.mark.parametrize(("entry", "arg", "kind", "make"), list(_rows()))
def test_a_bad_argument_is_named(entry: Entry, arg: str, kind: str, make) -> None:
    kwargs = dict(entry.good)
    kwargs[arg] = make(kwargs[arg])
    with pytest.raises((TypeError, ValueError)) as info:
        entry.call(**kwargs)
    assert _names(str(info.value), arg), f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.run_good], ids=lambda e: e.name)
def test_the_good_call_of_each_entry_runs(entry: Entry) -> None:
    entry.call(**entry.good)


def test_every_public_function_has_an_entry() -> None:
    """A public function added to these modules without a row here fails this test."""
    covered = {e.name.split(" ")[0] for e in ENTRIES}
    public = {
        "svd": ["factorize", "low_rank", "high_rank", "RankTransform"],
        "bases": ["low", "high", "energy_kept", "decompose"],
        "attacks": ["pgd_linf", "pgd_l2", "fgsm_rs", "autoattack"],
        "evaluate": ["accuracy", "robust_accuracy", "rank_sweep", "basis_sweep",
                     "fourier_heat_map", "rank_heat_map"],
        "attribution": ["rank_integrated_gradients", "integrated_gradients", "vanilla_gradient",
                        "spectral_integrated_gradients", "explain", "IntegratedGradients",
                        "RankIntegratedGradients", "SpectralIntegratedGradients",
                        "VanillaGradient", "sparseness", "complexity", "diffid",
                        "insertion_deletion"],
    }  # fmt: skip
    missing = {f"{m}.{f}" for m, fs in public.items() for f in fs} - covered
    assert not missing


@pytest.mark.parametrize(("shape", "padding"), [((2, 3, 1, 1), 4), ((2, 3, 4, 4), 4),
                                                ((2, 3, 2, 9), 2), ((2, 3, 8, 8), 8)])  # fmt: skip
def test_a_crop_padding_the_images_cannot_reflect_is_named(shape, padding):
    with pytest.raises(ValueError, match=f"padding={padding} is not valid for") as info:
        random_crop_flip(torch.rand(shape), padding)
    assert f"{shape[2]}x{shape[3]} images" in str(info.value)
    assert random_crop_flip(torch.rand(shape), min(shape[2:]) - 1).shape == shape  # the limit


# the names captum gives these arguments, and the names they replace in this library
CAPTUM_NAMES = {"steps": "n_steps", "steps_per_rank": "n_steps_per_rank",
                "batch_size": "internal_batch_size", "baseline": "baselines"}  # fmt: skip


def _attribution_callables() -> dict[str, Callable[..., Any]]:
    functions = ["rank_integrated_gradients", "integrated_gradients", "vanilla_gradient",
                 "spectral_integrated_gradients", "explain", "path_integral", "quadrature",
                 "rig_schedule", "completeness_gap", "diffid", "insertion_deletion"]  # fmt: skip
    found = {name: getattr(attr, name) for name in functions}
    for cls in ("IntegratedGradients", "RankIntegratedGradients",
                "SpectralIntegratedGradients", "VanillaGradient"):  # fmt: skip
        found[f"{cls}.attribute"] = getattr(attr, cls).attribute
    return found


def test_the_attribution_library_speaks_captums_names() -> None:
    """One argument, one name, captum's where captum has one: no function, class or explain()
    takes `steps`, `steps_per_rank`, `batch_size` or `baseline`; every quadrature `method`
    defaults to one of captum's rule names; RIG's function and class take the same step
    arguments with the same defaults."""
    import inspect

    wrong, rules = {}, {}
    for name, fn in _attribution_callables().items():
        params = inspect.signature(fn).parameters
        wrong |= {f"{name}({p})": CAPTUM_NAMES[p] for p in params if p in CAPTUM_NAMES}
        if "method" in params and name != "explain" and name != "quadrature":
            rules[name] = params["method"].default
    assert wrong == {}
    assert set(rules.values()) <= set(attr.SUPPORTED_METHODS), rules
    assert set(attr.SUPPORTED_METHODS) == {"riemann_middle", "riemann_left", "riemann_right",
                                           "riemann_trapezoid", "gausslegendre"}  # fmt: skip
    fn = inspect.signature(attr.rank_integrated_gradients).parameters
    cls = inspect.signature(attr.RankIntegratedGradients.attribute).parameters
    for shared in ("target", "n_steps_per_rank", "n_steps", "baseline_steps", "ranks", "method",
                   "internal_batch_size", "additional_forward_args"):  # fmt: skip
        assert shared in fn and shared in cls, shared
    for same_default in ("n_steps_per_rank", "n_steps", "baseline_steps", "method"):
        assert fn[same_default].default == cls[same_default].default, same_default


def test_rig_function_and_class_agree_on_a_budget() -> None:
    """n_steps (a budget E per image) splits the same way in the function and the class."""
    torch.manual_seed(0)
    fn = attr.rank_integrated_gradients(MODEL, X, target=Y, n_steps=7, ranks=[2, 4, 8])
    cls = attr.RankIntegratedGradients(MODEL).attribute(X, target=Y, n_steps=7, ranks=[2, 4, 8])
    per_rank, first = attr.rig_schedule(7, 3)
    assert (fn.n_steps_per_rank, first) == (2, 3) and per_rank == 2
    torch.testing.assert_close(cls, fn.pixel)
    by_hand = attr.rank_integrated_gradients(
        MODEL, X, target=Y, n_steps_per_rank=2, baseline_steps=3, ranks=[2, 4, 8]
    )
    torch.testing.assert_close(fn.pixel, by_hand.pixel)


@pytest.mark.parametrize("old", sorted(CAPTUM_NAMES))
def test_an_old_keyword_is_pythons_type_error(old) -> None:
    call = {"steps": attr.integrated_gradients, "steps_per_rank": attr.rank_integrated_gradients,
            "batch_size": attr.vanilla_gradient,
            "baseline": attr.integrated_gradients}[old]  # fmt: skip
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{old}'"):
        call(MODEL, X, **{old: 2 if "steps" in old or "batch" in old else "zero"})
