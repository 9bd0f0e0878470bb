"""Framework-free evaluation of torch models on clean, attacked and rank-transformed images.

Images are pixels in [0, 1] of shape (N, C, H, W); any normalisation lives inside the model.
The public inputs are checked by :func:`rankrobust.inputs.check_images` (the residuals H_k(x)
that :func:`rank_sweep` builds internally legitimately leave [0, 1] and are not checked) and
:func:`~rankrobust.inputs.check_labels` (shape (N,), whole numbers, in [0, classes)); NaN / inf
logits are a ValueError naming the model (:func:`~rankrobust.inputs.check_finite_logits`), never
a prediction.
An ``attack`` is any callable ``attack(model, x, y) -> x_adv`` (see ``rankrobust.attacks``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rankrobust import bases
from rankrobust.attacks import Attack
from rankrobust.errors import ConfigError
from rankrobust.inputs import (
    check_finite_logits,
    check_images,
    check_int,
    check_labels,
    check_model,
    check_number,
    logits,
)
from rankrobust.models import eval_mode
from rankrobust.runs import Outcomes, SweepResult
from rankrobust.svd import Factorization, at_full_rank, factorize, validate_rank

__all__ = [
    "Attack",
    "FourierHeatMap",
    "RankHeatMap",
    "accuracy",
    "basis_sweep",
    "fourier_heat_map",
    "rank_heat_map",
    "rank_sweep",
    "robust_accuracy",
]


_SWEEP_MODES = ("low", "high")


def _model_device(model: nn.Module) -> torch.device:
    if not isinstance(check_model(model), nn.Module):
        return torch.device("cpu")
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def _check_data(
    images: Tensor, labels: Tensor | Sequence[int], batch_size: int, model: nn.Module | None = None
) -> Tensor:
    """The labels as int64 class indices for ``images`` (inputs.check_labels: shape (N,), whole
    numbers). With ``model`` (before an attack, which uses them as indices) also in [0, classes)
    of its logits for one image; else each batch's are checked against its logits."""
    check_images(images, "images")
    check_int(batch_size, "batch_size", 1)
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"labels: expected a tensor or sequence of {images.shape[0]} class indices, got "
                f"{type(labels).__name__}"
            ) from None
    labels = check_labels(labels, images.shape[0], "labels")
    if model is None:
        return labels
    with eval_mode(model), torch.no_grad():
        classes = _logits(model, images[:1].to(_model_device(model))).shape[1]
    return check_labels(labels, images.shape[0], "labels", classes)


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    """Checked logits (N, classes); a model that cannot take images this small says so by
    their size."""
    try:
        return logits(model, x, x_name="images")
    except RuntimeError as err:
        # torch's pooling / convolution messages for inputs smaller than the receptive field
        msg = str(err).lower()
        if "too small" not in msg and "input size" not in msg:
            raise
        raise ConfigError(
            f"images: {x.shape[-2]}x{x.shape[-1]} images are too small for this model "
            f"({err}); give images of the size the model was built for"
        ) from err


def _predict(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Top-1 predictions of finite logits for labels ``y`` among their classes (NaN / inf
    logits, labels outside [0, classes): a ValueError naming the model / the labels)."""
    out = check_finite_logits(_logits(model, x))
    check_labels(y, x.shape[0], "labels", out.shape[1])
    return out.argmax(dim=-1)


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _takes_pixels(attack: Attack) -> bool:
    try:
        return "pixels" in inspect.signature(attack).parameters
    except (TypeError, ValueError):
        return False


def _predictions(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    device: torch.device,
    attack: Attack | None = None,
    pixels: bool = True,
) -> Tensor:
    """Top-1 predictions (on the CPU) for one batch (attacked first if ``attack``).

    ``pixels=False``: x leaves [0, 1] on purpose (H_k residuals); an attack taking ``pixels``
    (rankrobust.attacks.make_attack's) is told not to clamp to [0, 1]."""
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if attack is not None:
        if not pixels and _takes_pixels(attack):
            x = attack(model, x, y, pixels=False).detach()
        else:
            x = attack(model, x, y).detach()
        model.eval()  # an attack may have changed the mode; predictions are in eval mode
    with torch.no_grad():
        return _predict(model, x, y).cpu()


def _count_correct(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    device: torch.device,
    attack: Attack | None = None,
    pixels: bool = True,
) -> int:
    """Number of correct top-1 predictions on one batch (`_predictions`)."""
    pred = _predictions(model, x, y, device, attack, pixels)
    return int((pred == y.cpu()).sum().item())


def _outcomes(labels: Tensor, ks: list[int], preds: dict[int, list[Tensor]]) -> Outcomes:
    """(K, N) outcomes from each k's per-batch predictions; index = position in the images."""
    n = len(labels)
    pred = torch.stack([torch.cat(preds[k]) if preds[k] else torch.empty(0) for k in ks])
    return Outcomes(np.arange(n), labels.cpu().numpy(), pred.long().numpy(), np.asarray(ks))


def accuracy(
    model: nn.Module, images: Tensor, labels: Tensor | Sequence[int], batch_size: int = 500
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` (eval mode, no grad) on ``images`` in [0, 1].

    Batches are moved to the model's device; the model's train/eval mode is restored after.
    """
    labels = _check_data(images, labels, batch_size)
    device = _model_device(model)
    correct = 0
    with eval_mode(model):
        for sl in _batches(images.shape[0], batch_size):
            correct += _count_correct(model, images[sl], labels[sl], device)
    return correct / images.shape[0]


def robust_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    attack: Attack,
    batch_size: int = 500,
) -> float:
    """Top-1 accuracy in [0, 1] on ``attack(model, x, y)`` for each batch (model in eval mode)."""
    labels = _check_data(images, labels, batch_size, model)
    if not callable(attack):
        raise ConfigError("attack must be a callable attack(model, x, y) -> x_adv")
    device = _model_device(model)
    correct = 0
    with eval_mode(model):
        for sl in _batches(images.shape[0], batch_size):
            correct += _count_correct(model, images[sl], labels[sl], device, attack)
    return correct / images.shape[0]


def _transform(fac: Factorization, x: Tensor, mode: str, k: int, clamp: bool) -> Tensor:
    """L_k (mode "low", clamped if ``clamp``) or H_k (mode "high") of one batch from its factors.

    At k = full rank, "low" is the original images (exact) and "high" is zero.
    """
    exact = at_full_rank(x, mode, k, clamp)  # a truncated factorisation need not reach full rank
    if exact is not None:
        return exact
    return fac.low_rank(k, clamp=clamp) if mode == "low" else fac.high_rank(k)


def rank_sweep(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    ranks: Iterable[int],
    modes: Sequence[str] = ("low", "high"),
    batch_size: int = 500,
    clamp: bool = True,
    attack: Attack | None = None,
    factorization: Factorization | None = None,
    per_image: bool = False,
) -> dict[str, dict[int, float]] | SweepResult:
    """Accuracy on rank-k approximations L_k(x) ("low") and residuals H_k(x) ("high") per k.

    The images are factorised ONCE (in chunks of ``batch_size`` on the model's device, the
    factors kept on the images' device), or ``factorization`` (of ``images``) is used; every
    rank is then a slice and a matmul of the cached factors. At k = full rank, "low" uses the
    original images, so it equals :func:`accuracy` exactly.

    Returns:
        ``{"low": {k: acc}, "high": {k: acc}}`` for the requested modes (int keys, ranks in the
        given order), plus ``"low_robust"`` / ``"high_robust"`` when ``attack`` is given
        (accuracy on ``attack`` applied to the transformed images). ``per_image=True``: a
        :class:`~rankrobust.runs.SweepResult` instead, the per-image predictions behind
        those numbers (index = position in ``images``; ``.accuracies()`` is the dict above).
    """
    labels = _check_data(images, labels, batch_size, model if attack is not None else None)
    modes = tuple(modes)
    bad = [m for m in modes if m not in _SWEEP_MODES]
    if bad or not modes:
        raise ConfigError(f"modes={list(modes)} must be a non-empty subset of {list(_SWEEP_MODES)}")
    if attack is not None and not callable(attack):
        raise ConfigError("attack must be a callable attack(model, x, y) -> x_adv")
    H, W = int(images.shape[-2]), int(images.shape[-1])
    full = min(H, W)
    checked: list[int] = []
    for k in ranks:
        k = validate_rank(k, full, name="ranks", shape=(H, W))
        if k not in checked:
            checked.append(k)
    if not checked:
        raise ConfigError("ranks is empty: give at least one rank")

    device = _model_device(model)
    n = images.shape[0]
    if factorization is None:
        # only the top max(k < full) triplets are needed: large images take the truncated route
        top = max((k for k in checked if k < full), default=None)
        parts = [
            factorize(images[sl].to(device), max_rank=top).to(images.device)
            for sl in _batches(n, batch_size)
        ]
        factorization = parts[0] if len(parts) == 1 else Factorization.cat(parts)
    elif tuple(factorization.shape) != tuple(images.shape):
        raise ConfigError(
            f"factorization is of shape {tuple(factorization.shape)}, "
            f"images of shape {tuple(images.shape)}: it must be the factorization of images"
        )

    keys = list(modes) + ([f"{m}_robust" for m in modes] if attack is not None else [])
    preds: dict[str, dict[int, list[Tensor]]] = {key: {} for key in keys}
    with eval_mode(model):
        for k in tqdm(checked, desc="rank sweep", unit="rank", disable=None):
            for key in keys:
                preds[key][k] = []
            for sl in _batches(n, batch_size):
                fac = factorization[sl].to(device)
                x = images[sl].to(device)
                y = labels[sl]
                for mode in modes:
                    xt = _transform(fac, x, mode, k, clamp)
                    preds[mode][k].append(_predictions(model, xt, y, device))
                    if attack is not None:
                        preds[f"{mode}_robust"][k].append(
                            _predictions(model, xt, y, device, attack, pixels=mode == "low")
                        )
    result = SweepResult({key: _outcomes(labels, checked, p) for key, p in preds.items()})
    return result if per_image else result.accuracies()


def basis_sweep(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    basis: str,
    cutoffs: Iterable[int],
    modes: Sequence[str] = ("low", "high"),
    batch_size: int = 500,
    clamp: bool = True,
    wavelet: str = "haar",
    per_image: bool = False,
) -> dict[str, dict[int, float]] | SweepResult:
    """Accuracy on the low-pass ("low", clamped if ``clamp``) and high-pass ("high") images of
    :mod:`rankrobust.bases` per cutoff k, and the mean energy kept ||low||^2 / ||x||^2 ("energy",
    unclamped low-pass, averaged over images). Each batch is transformed once (one SVD, FFT,
    DCT or nothing for wavelets) and every cutoff is then a mask or a slice. At the top cutoff
    "low" is the images themselves, so it equals :func:`accuracy`; svd "low" equals
    :func:`rank_sweep`'s.

    Returns:
        ``{"low": {k: acc}, "high": {k: acc}, "energy": {k: mean energy kept}}`` (the modes
        asked for, plus energy), int keys in the given order; ``per_image=True``: a
        :class:`~rankrobust.runs.SweepResult` (per-image predictions and the energy).
    """
    labels = _check_data(images, labels, batch_size)
    modes = tuple(modes)
    if not modes or set(modes) - set(_SWEEP_MODES):
        raise ConfigError(f"modes={list(modes)} must be a non-empty subset of {list(_SWEEP_MODES)}")
    H, W = int(images.shape[-2]), int(images.shape[-1])
    checked: list[int] = []
    for k in cutoffs:
        k = bases.validate_cutoff(k, basis, H, W, wavelet, name=f"{basis} cutoff")
        if k not in checked:
            checked.append(k)
    if not checked:
        raise ConfigError(f"cutoffs is empty: give at least one {bases.WHAT_K[basis]}")
    device, n = _model_device(model), images.shape[0]
    preds: dict[str, dict[int, list[Tensor]]] = {m: {k: [] for k in checked} for m in modes}
    energy = dict.fromkeys(checked, 0.0)
    with eval_mode(model):
        for sl in tqdm(list(_batches(n, batch_size)), desc=f"{basis} sweep", disable=None):
            x, y = images[sl].to(device), labels[sl]
            dec = bases.decompose(x, basis, wavelet, max_cutoff=max(checked))
            for k in checked:
                energy[k] += float(dec.energy_kept(k).sum())
                for mode in modes:
                    xt = dec.low(k, clamp=clamp) if mode == "low" else dec.high(k)
                    preds[mode][k].append(_predictions(model, xt, y, device))
    outcomes = {m: _outcomes(labels, checked, p) for m, p in preds.items()}
    result = SweepResult(outcomes, {k: e / n for k, e in energy.items()})
    return result if per_image else result.accuracies()


@dataclass
class FourierHeatMap:
    """Error rate per frequency: ``error[i, j]`` for (k_y, k_x) = (freqs[i], freqs[j])."""

    freqs: list[int]
    error: Tensor
    eps: float
    n_images: int


@dataclass
class RankHeatMap:
    """Error rate per rank: ``error[i]`` when eps * u_k v_k^T is added, k = ranks[i]."""

    ranks: list[int]
    error: Tensor
    eps: float
    n_images: int


def _signs(shape: Sequence[int], seed: int) -> Tensor:
    """Random +-1 per image and channel, (N, C, 1, 1), seeded (the same for every cell)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (*shape[:2], 1, 1), generator=gen).float() * 2 - 1


def fourier_heat_map(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    eps: float = 4.0,
    size: int = 8,
    batch_size: int = 500,
    seed: int = 0,
) -> FourierHeatMap:
    """Yin et al. 2019's Fourier heat map: the error rate when one Fourier basis image of L2
    norm ``eps`` per channel, U = cos(2 pi (k_y y / H + k_x x / W)) / ||.||, is added to every
    test image (sign +-1 at random per image and channel, then clamped to [0, 1]), for every
    |k_y|, |k_x| <= ``size``. U(k) = U(-k), so (2 size + 1)^2 / 2 + 1 cells are evaluated:
    that many forward passes per image.
    """
    labels = _check_data(images, labels, batch_size)
    H, W = int(images.shape[-2]), int(images.shape[-1])
    size = check_int(size, "size", 0, min(H, W) // 2)
    eps = check_number(eps, "eps", low=0)
    freqs = list(range(-size, size + 1))
    signs = _signs(images.shape, seed).to(images.device, images.dtype)
    device, n = _model_device(model), images.shape[0]
    yy = torch.arange(H, dtype=torch.float64)[:, None] / H
    xx = torch.arange(W, dtype=torch.float64)[None, :] / W
    error = torch.zeros(len(freqs), len(freqs))
    with eval_mode(model):
        for i, ky in enumerate(tqdm(freqs, desc="Fourier heat map", disable=None)):
            for j, kx in enumerate(freqs):
                if (ky, kx) < (-ky, -kx):  # U(k) = U(-k): filled from its mirror below
                    continue
                u = torch.cos(2 * torch.pi * (ky * yy + kx * xx))
                u = (eps * u / u.norm()).to(images.device, images.dtype)
                wrong = 0
                for sl in _batches(n, batch_size):
                    x = (images[sl] + signs[sl] * u).clamp_(0.0, 1.0)
                    wrong += len(x) - _count_correct(model, x, labels[sl], device)
                error[i, j] = error[len(freqs) - 1 - i, len(freqs) - 1 - j] = wrong / n
    return FourierHeatMap(freqs, error, float(eps), int(n))


def rank_heat_map(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    eps: float = 4.0,
    ranks: Iterable[int] | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> RankHeatMap:
    """The rank analogue of the Fourier heat map: the error rate when eps * u_k v_k^T (the
    image's own k-th singular pair, per channel, unit Frobenius norm; sign +-1 at random per
    image and channel) is added and the result clamped to [0, 1], for k in ``ranks`` (None:
    every rank). One SVD per batch; one forward pass per image and rank.
    """
    labels = _check_data(images, labels, batch_size)
    eps = check_number(eps, "eps", low=0)
    H, W = int(images.shape[-2]), int(images.shape[-1])
    ranks = list(range(1, min(H, W) + 1)) if ranks is None else list(ranks)
    ranks = [validate_rank(k, min(H, W), name="ranks", shape=(H, W)) for k in ranks]
    if not ranks:
        raise ConfigError("ranks is empty: give at least one rank")
    signs = _signs(images.shape, seed)
    device, n = _model_device(model), images.shape[0]
    wrong = torch.zeros(len(ranks))
    with eval_mode(model):
        for sl in tqdm(list(_batches(n, batch_size)), desc="rank heat map", disable=None):
            x, y = images[sl].to(device), labels[sl]
            fac = factorize(x, max_rank=max(ranks))
            s = signs[sl].to(device)
            for i, k in enumerate(ranks):
                pair = fac.U[..., :, k - 1 : k] @ fac.Vh[..., k - 1 : k, :]  # unit norm
                xt = (x + eps * s * pair.to(x.dtype)).clamp_(0.0, 1.0)
                wrong[i] += len(xt) - _count_correct(model, xt, y, device)
    return RankHeatMap(ranks, wrong / n, float(eps), int(n))
