"""How the field measures attribution maps: faithfulness, sparseness, complexity, randomisation.

Definitions (``/work/shared/PAPER.md``, "Attribution quality"); every function returns one value
per image so that methods can be compared *paired over images*:

- :func:`diffid` (SIG's benchmark, Kim et al. 2026): rank the C*H*W elements of an image by
  |attribution|; for q in 0.1..0.9, *deletion* replaces the top ``int(CHW q)`` elements and
  *insertion* the bottom ``int(CHW q)``, each with the mean of the elements kept; a score is 1
  when the model's top class still equals the label.  DiffID = mean over q of (insertion -
  deletion), in [-1, 1]; higher = more faithful.
- :func:`sparseness` (Chalasani et al. 2020; Quantus ``Sparseness``): the Gini index of the map
  ``m = sum_c |a_c|`` (normalised by its max, + 1e-7 as Quantus does), sorted ascending:
  ``G = sum_i (2i - n - 1) m_(i) / (n sum_i m_i)``; in [0, 1), higher = more concentrated.
- :func:`complexity` (Bhatt et al. 2020; Quantus ``Complexity``): the entropy of
  ``p = m / sum m``, ``-sum p log(p + 1e-12)`` (nats); lower = simpler.
- :func:`completeness_gap`: how far a path method's map is from converged,
  ``|sum(attribution) - (f(x) - f(baseline))| / |f(x) - f(baseline)|`` per image, recomputed
  from the map and two forward passes (0 for an exact path integral).
- :func:`randomisation_test` (Adebayo et al. 2018; Quantus ``MPRT``): re-initialise the model's
  layers (every module with ``reset_parameters``) cumulatively from the top, seeding torch with
  ``seed + 1`` before each reset as Quantus does, and give the Spearman rank correlation between
  the maps of the trained and the randomised model per layer; a map that keeps a high
  correlation explains the image, not the model.

Quantus normalises a whole batch by its one maximum; here each image is normalised by its own,
so a score does not depend on the batch it came in (equal to Quantus for a batch of one, and to
~1e-6 otherwise; ``tests/test_attribution_metrics.py``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rankrobust.attribution._path import _check_score, _score
from rankrobust.errors import ConfigError
from rankrobust.inputs import (
    check_finite_logits,
    check_images,
    check_int,
    check_labels,
    check_model,
    check_target,
)
from rankrobust.inputs import logits as checked_logits
from rankrobust.models import eval_mode

__all__ = [
    "DEFAULT_RATIOS",
    "completeness_gap",
    "InsertionDeletion",
    "RandomisationTest",
    "complexity",
    "diffid",
    "insertion_deletion",
    "randomisation_test",
    "sparseness",
    "spearman",
]

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_GINI_EPS = 1e-7  # Quantus Sparseness adds this to the (max-normalised) map
_LOG_EPS = 1e-12  # Quantus Complexity


# --------------------------------------------------------------------------------------------
# faithfulness: insertion / deletion and DiffID
# --------------------------------------------------------------------------------------------
@dataclass
class InsertionDeletion:
    """Insertion and deletion scores (N, len(ratios)): 1 where the top class equals the label."""

    ratios: list[float]
    insertion: Tensor
    deletion: Tensor

    @property
    def diffid(self) -> Tensor:
        """(N,) mean over ratios of insertion - deletion."""
        return (self.insertion - self.deletion).mean(dim=1)


def _check_pair(inputs: Tensor, attributions: Tensor) -> None:
    check_images(inputs, "inputs", unit_range=False)
    check_images(attributions, "attributions", unit_range=False)
    if attributions.shape != inputs.shape:
        raise ConfigError(
            f"attributions must have the inputs' shape {tuple(inputs.shape)}, got "
            f"{tuple(attributions.shape)}"
        )


def _check_ratios(ratios: Sequence[float]) -> list[float]:
    out = [float(q) for q in ratios]
    if not out or not all(0.0 < q < 1.0 for q in out):
        raise ConfigError(f"ratios must be numbers in (0, 1), got {list(ratios)!r}")
    return out


def _labels(target, n: int, device: torch.device) -> Tensor:
    """(N,) int64 class indices from one int or N (inputs.check_target, check_labels)."""
    if target is None:
        raise TypeError(f"target: expected a class index or {n} class indices, got None")
    return check_labels(check_target(target, n, "target", device), n, "target")


def _replace(flat: Tensor, index: Tensor) -> Tensor:
    """Copy of flat (N, D) with the elements at ``index`` (N, k) set to the mean of the rest."""
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
    kept = (~mask).sum(1, keepdim=True).clamp_min(1)
    mean = flat.masked_fill(mask, 0.0).sum(1, keepdim=True) / kept
    return torch.where(mask, mean, flat)


@torch.no_grad()
def insertion_deletion(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    internal_batch_size: int = 256,
) -> InsertionDeletion:
    """Insertion and deletion curves of SIG's DiffID (see the module docstring).

    Args:
        forward_func: (B, C, H, W) -> (B, num_classes); an ``nn.Module`` runs in eval mode.
        inputs: (N, C, H, W) images; attributions: the same shape.
        target: the label per image (an int or N ints), usually the explained class.
        ratios: fractions q of the elements replaced, each in (0, 1).
        internal_batch_size: most perturbed images per forward pass.

    Returns:
        :class:`InsertionDeletion`: ``ratios`` and, per image and ratio, 1.0 when the top
        class of the perturbed image is the target (``insertion``, ``deletion``: (N, Q)).

    Raises:
        ConfigError / TypeError naming the argument: a bad model, images, attributions of
        another shape, ratios outside (0, 1), a bad batch size or target.
    """
    check_model(forward_func, "forward_func")
    _check_pair(inputs, attributions)
    qs = _check_ratios(ratios)
    batch_size = check_int(internal_batch_size, "internal_batch_size")
    n = inputs.shape[0]
    labels = _labels(target, n, inputs.device)
    flat = inputs.detach().reshape(n, -1)
    score = attributions.detach().abs().reshape(n, -1)
    d = flat.shape[1]
    top_first = torch.argsort(score, dim=1, descending=True, stable=True)
    bottom_first = torch.argsort(score, dim=1, descending=False, stable=True)
    batch = []  # deletion for every q, then insertion for every q: (2Q * N, C, H, W)
    for order in (top_first, bottom_first):
        for q in qs:
            batch.append(_replace(flat, order[:, : int(d * q)]).reshape(inputs.shape))
    images = torch.cat(batch)
    ctx = (
        eval_mode(forward_func) if isinstance(forward_func, nn.Module) else contextlib.nullcontext()
    )
    with ctx:
        scores = [
            check_finite_logits(
                checked_logits(forward_func, images[i : i + batch_size], "forward_func"),
                "forward_func",
            )
            for i in range(0, len(images), batch_size)
        ]
    check_labels(labels, n, "target", scores[0].shape[1])
    top = torch.cat([s.argmax(1) for s in scores])
    hit = (top == labels.repeat(2 * len(qs))).to(inputs.dtype).reshape(2, len(qs), n)
    return InsertionDeletion(
        ratios=qs, insertion=hit[1].T.contiguous(), deletion=hit[0].T.contiguous()
    )


@torch.no_grad()
def completeness_gap(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target,
    baselines=0.0,
    score: str = "logit",
    internal_batch_size: int = 256,
) -> Tensor:
    """(N,) ``|sum(attribution) - (f(x) - f(baseline))| / |f(x) - f(baseline)|`` per image.

    Completeness says a path method's attributions sum to ``f(x) - f(baseline)``; the gap is
    its integration error relative to that difference (captum's ``compute_convergence_delta``
    divided by ``|f(x) - f(baseline)|``).  ``f`` is the target's ``score`` ("logit",
    "softmax" or "log_softmax") as the map was computed with; ``baselines`` is a number or a
    tensor broadcastable to inputs (the black image by default).  ``inputs`` and
    ``attributions`` are (N, C, H, W); ``internal_batch_size`` images go through the model at
    once.  Raises ConfigError / TypeError naming a bad argument.
    """
    check_model(forward_func, "forward_func")
    _check_pair(inputs, attributions)
    score = _check_score(score)
    batch_size = check_int(internal_batch_size, "internal_batch_size")
    n = inputs.shape[0]
    labels = _labels(target, n, inputs.device)
    base = torch.as_tensor(baselines, dtype=inputs.dtype, device=inputs.device)
    base = base.expand_as(inputs)
    ctx = (
        eval_mode(forward_func) if isinstance(forward_func, nn.Module) else contextlib.nullcontext()
    )
    values = []
    with ctx:
        for point in (inputs.detach(), base):
            out = [
                check_finite_logits(
                    checked_logits(forward_func, point[i : i + batch_size], "forward_func"),
                    "forward_func",
                )
                for i in range(0, n, batch_size)
            ]
            values.append(_score(torch.cat(out), labels, score).double())
    change = values[0] - values[1]
    total = attributions.detach().double().reshape(n, -1).sum(1)
    return ((total - change).abs() / change.abs().clamp_min(torch.finfo(torch.float64).tiny)).to(
        inputs.dtype
    )


def diffid(
    forward_func: Callable[[Tensor], Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    internal_batch_size: int = 256,
) -> Tensor:
    """(N,) DiffID per image: mean over ratios of insertion - deletion (SIG, Kim et al. 2026),
    in [-1, 1]; arguments and errors as :func:`insertion_deletion`."""
    curves = insertion_deletion(forward_func, inputs, attributions, target, ratios,
                                internal_batch_size)  # fmt: skip
    return curves.diffid


# --------------------------------------------------------------------------------------------
# sparseness and complexity (Quantus's definitions, per image)
# --------------------------------------------------------------------------------------------
def _normalised_magnitude(attributions: Tensor) -> Tensor:
    """(N, C, H, W) or (N, H, W) -> (N, H*W) float64: sum_c |a_c|, divided by its max per image
    (an all-zero map stays zero)."""
    a = check_images(attributions, "attributions", batched=False, unit_range=False)
    a = a.detach().to(torch.float64)
    if a.dim() == 4:
        a = a.abs().sum(dim=1)
    elif a.dim() != 3:
        raise ConfigError(
            f"attributions must be (N, C, H, W) or (N, H, W), got shape {tuple(a.shape)}"
        )
    m = a.abs().reshape(a.shape[0], -1)
    top = m.amax(dim=1, keepdim=True)
    return torch.where(top > 0, m / top.clamp_min(torch.finfo(m.dtype).tiny), m)


def sparseness(attributions: Tensor) -> Tensor:
    """(N,) Gini index of each map (Chalasani et al. 2020; equals Quantus ``Sparseness``)."""
    m = torch.sort(_normalised_magnitude(attributions) + _GINI_EPS, dim=1).values
    n = m.shape[1]
    i = torch.arange(1, n + 1, dtype=m.dtype, device=m.device)
    return ((2 * i - n - 1) * m).sum(1) / (n * m.sum(1))


def complexity(attributions: Tensor) -> Tensor:
    """(N,) entropy of each normalised map (Bhatt et al. 2020; equals Quantus ``Complexity``)."""
    m = _normalised_magnitude(attributions)
    p = m / m.sum(1, keepdim=True)
    return -(p * torch.log(p + _LOG_EPS)).sum(1)


# --------------------------------------------------------------------------------------------
# the model-parameter randomisation test
# --------------------------------------------------------------------------------------------
def _average_ranks(row: Tensor) -> Tensor:
    """Ranks 1..n of a 1-D tensor, ties sharing their average rank (scipy's rankdata)."""
    values, order = torch.sort(row, stable=True)
    _, inverse, counts = torch.unique_consecutive(values, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty_like(row, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """(N,) Spearman rank correlation of rows of a and b (N, D); NaN where a row is constant."""
    out = []
    for x, y in zip(a.detach().double(), b.detach().double(), strict=True):
        rx, ry = _average_ranks(x), _average_ranks(y)
        rx, ry = rx - rx.mean(), ry - ry.mean()
        out.append((rx * ry).sum() / torch.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return torch.stack(out)


@dataclass
class RandomisationTest:
    """Result of :func:`randomisation_test`.

    Attributes:
        layers: names of the re-initialised modules, top first (cumulative: row l has layers
            0..l randomised).
        correlation: (L, N) Spearman correlation of the trained and randomised maps.
    """

    layers: list[str]
    correlation: Tensor

    @property
    def last(self) -> Tensor:
        """(N,) correlation once every layer is randomised."""
        return self.correlation[-1]


def randomisation_test(
    model: nn.Module,
    inputs: Tensor,
    explain: Callable[[nn.Module, Tensor, Tensor], Tensor],
    target,
    seed: int = 42,
    max_layers: int | None = None,
) -> RandomisationTest:
    """Cascading model-parameter randomisation (Adebayo et al. 2018), as Quantus ``MPRT``.

    Args:
        model: the trained model (left untouched: a deep copy is randomised).
        inputs: (N, C, H, W) images.
        explain: ``explain(model, inputs, target) -> (N, C, H, W)`` maps.
        target: the class explained per image (kept fixed across randomisations).
        seed: torch is seeded with ``seed + 1`` before each layer's reset (Quantus's rule);
            the global RNG state is restored afterwards.
        max_layers: stop after this many layers from the top (None: all).
    """
    n = inputs.shape[0]
    labels = _labels(target, n, inputs.device)
    original = _normalised_magnitude(explain(model, inputs, labels))
    randomised = copy.deepcopy(model)
    modules = [
        (name, m) for name, m in randomised.named_modules() if hasattr(m, "reset_parameters")
    ]
    modules = modules[::-1][: max_layers if max_layers is not None else None]
    if not modules:
        raise ConfigError("the model has no module with reset_parameters to randomise")
    names, rows = [], []
    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for name, module in modules:
            torch.manual_seed(seed + 1)
            module.reset_parameters()
            maps = _normalised_magnitude(explain(randomised, inputs, labels))
            names.append(name)
            rows.append(spearman(original, maps))
    return RandomisationTest(layers=names, correlation=torch.stack(rows))
