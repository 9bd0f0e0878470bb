"""Private maths of :mod:`rankrobust.attribution`: quadrature rules and the path-integral engine.

:func:`path_integral` integrates the gradient of a class score ``f`` along a piecewise-linear
path ``p_0 -> p_1 -> ... -> p_K`` (``p_0`` the baseline, ``p_K`` the input).  With ``m``
quadrature points ``a_j`` and weights ``w_j`` per segment,

    A   = sum_k sum_j  w_j * grad f(p_{k-1} + a_j (p_k - p_{k-1})) * (p_k - p_{k-1})   (pixels)
    a_k = sum over pixels of segment k's part of A                                  (segments)

and the completeness gap is ``delta = sum_k a_k - (f(p_K) - f(p_0))``.

All ``K * m * N`` path points are enumerated and pushed through the model
``internal_batch_size`` at a time (one forward and one backward per chunk), never one point at
a time.  :func:`path_integral` is four steps, each a function: the checks (:func:`_check_path`
and the argument checks), the nodes (:func:`_nodes`: each segment's quadrature points and
weights), the scores at the two ends (:func:`_end_scores`) and the chunked gradient loop
(:func:`_integrate`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rankrobust.errors import ConfigError
from rankrobust.inputs import (
    check_finite_logits,
    check_images,
    check_int,
    check_labels,
    check_logits,
    check_target,
    logits,
)
from rankrobust.models import eval_mode

# captum's names of the quadrature rules (captum.attr.IntegratedGradients.attribute's method),
# the only spellings accepted; "riemann_middle" is this library's default
SUPPORTED_METHODS = (
    "riemann_middle",
    "riemann_left",
    "riemann_right",
    "riemann_trapezoid",
    "gausslegendre",
)
SUPPORTED_SCORES = ("logit", "softmax", "log_softmax")


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------
@dataclass
class PathIntegral:
    """Result of :func:`path_integral` for a batch of N images and a K-segment path.

    Attributes:
        pixel: (N, C, H, W) pixel attribution (sum over all segments).
        per_segment: (N, K) attribution of each segment (pixel sum of its part).
        target: (N,) LongTensor, the class whose score was attributed.
        score_input: (N,) f at the last path point (the input).
        score_baseline: (N,) f at the first path point (the baseline).
        delta: (N,) completeness gap, ``per_segment.sum(1) - (score_input - score_baseline)``.
        relative_delta: (N,) ``|delta| / |score_input - score_baseline|``.
    """

    pixel: Tensor
    per_segment: Tensor
    target: Tensor
    score_input: Tensor
    score_baseline: Tensor
    delta: Tensor
    relative_delta: Tensor


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------
def _check_method(method: str) -> str:
    """``method`` if it is one of captum's rule names (SUPPORTED_METHODS), else ConfigError."""
    if isinstance(method, str) and method in SUPPORTED_METHODS:
        return method
    raise ConfigError(
        f"unknown integration method {method!r}; use one of {', '.join(SUPPORTED_METHODS)}"
    )


def _check_steps(n_steps: int, name: str = "n_steps") -> int:
    return check_int(n_steps, name, 1)


def _resolve_steps(n_steps_per_segment, k_seg: int) -> list[int]:
    """One step count per segment from an int (all segments) or a sequence of K ints."""
    name = "n_steps_per_segment"
    if isinstance(n_steps_per_segment, Sequence) and not isinstance(n_steps_per_segment, str):
        if len(n_steps_per_segment) != k_seg:
            raise ConfigError(
                f"{name} has {len(n_steps_per_segment)} entries but the path has {k_seg} segments"
            )
        return [_check_steps(s, name) for s in n_steps_per_segment]
    return [_check_steps(n_steps_per_segment, name)] * k_seg


def _check_batch_size(internal_batch_size: int, name: str = "internal_batch_size") -> int:
    return check_int(internal_batch_size, name, 1)


def _check_score(score: str) -> str:
    if score not in SUPPORTED_SCORES:
        raise ConfigError(f"unknown score {score!r}; use one of {', '.join(SUPPORTED_SCORES)}")
    return score


def _check_images(x: Tensor, name: str = "x") -> Tensor:
    """Finite floating-point (N, C, H, W) images, detached; any range (paths leave [0, 1])."""
    return check_images(x, name, batched=True, unit_range=False).detach()


def quadrature(method: str, n_steps: int) -> tuple[Tensor, Tensor]:
    """Nodes ``a_j`` in [0, 1] and weights ``w_j`` (summing to 1) of a rule with m = ``n_steps``
    points, as float64 tensors of shape (m,).  ``method`` is one of captum's names:

    ``riemann_middle``: a_j = (j - 1/2)/m, w_j = 1/m (the midpoint rule).
    ``riemann_left`` / ``riemann_right``: a_j = (j-1)/m or j/m, w_j = 1/m.
    ``riemann_trapezoid``: the composite trapezoid rule, a_j = (j-1)/(m-1), weights 1/(m-1)
    with both ends halved (needs m >= 2).  Captum's ``riemann_trapezoid`` uses weights 1/m with
    halved ends, which sum to (m-1)/m, not 1; this is the exact trapezoid rule instead.
    ``gausslegendre``: Gauss-Legendre nodes and weights mapped to [0, 1] (captum's default).

    Raises:
        ConfigError: an unknown method, ``n_steps`` not an integer >= 1, or fewer than 2
            points for the trapezoid rule.
    """
    m = _check_steps(n_steps)
    rule = _check_method(method)
    j = torch.arange(m, dtype=torch.float64)
    if rule == "riemann_middle":
        alphas, weights = (j + 0.5) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)
    elif rule == "riemann_left":
        alphas, weights = j / m, torch.full((m,), 1.0 / m, dtype=torch.float64)
    elif rule == "riemann_right":
        alphas, weights = (j + 1) / m, torch.full((m,), 1.0 / m, dtype=torch.float64)
    elif rule == "riemann_trapezoid":
        if m < 2:
            raise ConfigError("the trapezoid rule needs at least 2 steps per segment")
        alphas = j / (m - 1)
        weights = torch.full((m,), 1.0 / (m - 1), dtype=torch.float64)
        weights[0] /= 2
        weights[-1] /= 2
    else:  # gausslegendre
        nodes, w = np.polynomial.legendre.leggauss(m)
        alphas = torch.from_numpy(0.5 * (1.0 + nodes))
        weights = torch.from_numpy(0.5 * w)
    return alphas, weights


# --------------------------------------------------------------------------------------------
# model helpers
# --------------------------------------------------------------------------------------------
def _score(logits: Tensor, target: Tensor, score: str) -> Tensor:
    if logits.dim() != 2:
        raise ConfigError(
            f"the model must return (N, num_classes) scores, got shape {tuple(logits.shape)}"
        )
    if score == "softmax":
        logits = torch.softmax(logits, dim=1)
    elif score == "log_softmax":
        logits = torch.log_softmax(logits, dim=1)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


Forward = Callable[[Tensor, Tensor], Tensor]


def _forward(model: Callable[..., Tensor], extra: tuple, n: int) -> Forward:
    """``forward(inp, rows)``: ``model(inp, *extra)`` where the model input row i belongs to
    image ``rows[i]``; a tensor in ``extra`` with first dim n (one entry per image, captum's
    convention) is taken at ``rows``, anything else is passed as is."""
    if not extra:
        return lambda inp, rows: logits(model, inp)  # checked: (n, classes), dtypes agree

    def forward(inp: Tensor, rows: Tensor) -> Tensor:
        args = [
            a.index_select(0, rows.to(a.device))
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n
            else a
            for a in extra
        ]
        return check_logits(model(inp, *args), inp.shape[0])

    return forward


@torch.no_grad()
def _forward_chunked(forward: Forward, x: Tensor, rows: Tensor, batch: int) -> Tensor:
    return torch.cat(
        [forward(x[i : i + batch], rows[i : i + batch]) for i in range(0, x.shape[0], batch)]
    )


def _resolve_target(target, logits: Tensor) -> Tensor:
    """(N,) int64 targets: the top label of finite ``logits`` (N, classes) when ``target`` is
    None, else ``target`` (one int or N) checked by inputs.check_labels against the classes."""
    n, num_classes = logits.shape
    check_finite_logits(logits)
    t = check_target(target, n, "target", logits.device)
    if t is None:
        return logits.argmax(dim=1)
    return check_labels(t, n, "target", num_classes).clone()


# --------------------------------------------------------------------------------------------
# the engine: checks -> nodes -> end-point scores -> chunked gradient loop
# --------------------------------------------------------------------------------------------
Node = tuple[int, float, float]  # (segment k, alpha in [0, 1], quadrature weight)


def _check_path(path: Sequence[Tensor]) -> list[Tensor]:
    """The K + 1 >= 2 path points, each checked (finite float (N, C, H, W), detached) and
    shaped like the last one (the input); the others moved to its device and dtype.

    Raises:
        ConfigError: ``path`` a single tensor or shorter than 2; a point not images or shaped
            unlike the input.
    """
    if isinstance(path, Tensor) or len(path) < 2:
        raise ConfigError("path must be a list of at least 2 tensors (baseline, ..., input)")
    x = _check_images(path[-1], "x")
    points = []
    for i, p in enumerate(path[:-1]):
        p = _check_images(p, f"path point {i}")
        if p.shape != x.shape:
            raise ConfigError(
                f"path point {i} has shape {tuple(p.shape)} but the input has {tuple(x.shape)}"
            )
        points.append(p.to(device=x.device, dtype=x.dtype))
    return [*points, x]  # baseline, ..., x


def _nodes(n_steps_per_segment, method: str, k_seg: int) -> list[Node]:
    """Every (segment, quadrature point) of the path, segment by segment: its segment k, its
    alpha along the segment and its weight (``quadrature(method, m_k)`` on segment k)."""
    nodes: list[Node] = []
    for k, m in enumerate(_resolve_steps(n_steps_per_segment, k_seg)):
        alphas, weights = quadrature(method, m)
        nodes.extend((k, float(a), float(w)) for a, w in zip(alphas, weights, strict=True))
    return nodes


def _end_scores(
    forward: Forward, points: list[Tensor], target, score: str, batch: int, fmt
) -> tuple[Tensor, Tensor, Tensor]:
    """(target, f(input), f(baseline)), each (N,): the path's two ends in one chunked forward
    pass without a graph; ``target`` None becomes the top label at the input."""
    x, baseline = points[-1], points[0]
    n = x.shape[0]
    images = torch.arange(n, device=x.device)
    ends = _forward_chunked(
        forward,
        torch.cat([x, baseline]).contiguous(memory_format=fmt),
        torch.cat([images, images]),
        batch,
    )
    target_t = _resolve_target(target, ends[:n])
    both = _score(ends, torch.cat([target_t, target_t]), score)
    return target_t, both[:n], both[n:]


def _chunk_pieces(lo: int, hi: int, n: int) -> list[tuple[int, int, int, int]]:
    """Flat model inputs lo..hi-1, enumerated (node, image) with the image fastest, as runs of
    consecutive images of one node: (offset in the chunk, node, first image, last image + 1)."""
    pieces, pos = [], lo
    while pos < hi:
        node, i0 = divmod(pos, n)
        i1 = min(n, i0 + hi - pos)
        pieces.append((pos - lo, node, i0, i1))
        pos += i1 - i0
    return pieces


def _integrate(
    forward: Forward,
    points: list[Tensor],
    nodes: list[Node],
    target: Tensor,
    score: str,
    batch: int,
    channels_last: bool,
) -> tuple[Tensor, Tensor]:
    """The chunked gradient loop: (pixel (N, C, H, W), per_segment (N, K)).

    All ``len(nodes) * N`` model inputs go through the model ``batch`` at a time, one forward
    and one backward per chunk; a chunk is a few contiguous image ranges of consecutive nodes
    (:func:`_chunk_pieces`), built and reduced with slices.  Node (k, a, w) of image i adds
    ``w * grad f(p_k + a (p_{k+1} - p_k)) * (p_{k+1} - p_k)`` to its pixel map and its pixel
    sum to segment k.
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = points[-1]
    n, k_seg = x.shape[0], len(points) - 1
    images = torch.arange(n, device=x.device)
    with torch.no_grad():
        points = [p.contiguous(memory_format=fmt) for p in points]
        diffs = [points[k + 1] - points[k] for k in range(k_seg)]

    def flat(t: Tensor) -> Tensor:  # (B, C, H, W) -> (B, CHW) in memory order (a view)
        return (t.permute(0, 2, 3, 1) if channels_last else t).reshape(t.shape[0], -1)

    pixel = torch.zeros_like(x)
    per_segment = torch.zeros(n, k_seg, dtype=x.dtype, device=x.device)
    total = len(nodes) * n
    for lo in range(0, total, batch):
        hi = min(lo + batch, total)
        pieces = _chunk_pieces(lo, hi, n)
        with torch.no_grad():
            inp = torch.empty(
                (hi - lo, *x.shape[1:]), dtype=x.dtype, device=x.device, memory_format=fmt
            )
            for off, node, i0, i1 in pieces:
                k, alpha, _ = nodes[node]
                torch.add(
                    points[k][i0:i1], diffs[k][i0:i1], alpha=alpha, out=inp[off : off + i1 - i0]
                )
            tgt = torch.cat([target[i0:i1] for _, _, i0, i1 in pieces])
            rows = torch.cat([images[i0:i1] for _, _, i0, i1 in pieces])
        inp.requires_grad_(True)
        with torch.enable_grad():
            f = _score(forward(inp, rows), tgt, score)
            (grad,) = torch.autograd.grad(f.sum(), inp)
        with torch.no_grad():
            for off, node, i0, i1 in pieces:
                k, _, weight = nodes[node]
                g, d = grad[off : off + i1 - i0], diffs[k][i0:i1]
                pixel[i0:i1].addcmul_(g, d, value=weight)
                per_segment[i0:i1, k] += torch.linalg.vecdot(flat(g), flat(d)) * weight
    return pixel, per_segment


def path_integral(
    model: Callable[..., Tensor],
    path: Sequence[Tensor],
    target=None,
    n_steps_per_segment: int | Sequence[int] = 8,
    method: str = "riemann_middle",
    internal_batch_size: int = 256,
    score: str = "logit",
    channels_last: bool | None = None,
    additional_forward_args: tuple = (),
) -> PathIntegral:
    """Integrate gradients of the target score along a piecewise-linear path.

    Args:
        model: maps (B, C, H, W) images to (B, num_classes) scores.  An ``nn.Module`` runs in
            eval mode for the call; every submodule's previous mode is restored afterwards.
            Gradients are taken with ``torch.autograd.grad`` w.r.t. the path points only, so no
            ``.grad`` is left on the parameters.
        path: K + 1 >= 2 tensors shaped like the input (N, C, H, W): ``path[0]`` the baseline,
            ``path[-1]`` the input x; segment k is the straight line ``path[k-1] -> path[k]``.
            Any finite range (points between the ends may leave [0, 1]).
        target: None (the top label of the model on ``path[-1]``), an int, or N ints.
        n_steps_per_segment: quadrature points per segment (m >= 1), or a list of K such
            counts, one per segment; the model is evaluated ``N * sum of the counts`` times.
        method: captum's name of the quadrature rule, "riemann_middle" (default),
            "riemann_left", "riemann_right", "riemann_trapezoid" or "gausslegendre"; see
            :func:`quadrature`.
        internal_batch_size: the most model inputs pushed through the model at once.
        score: "logit" (default) - f is the target logit; "softmax" or "log_softmax".
        channels_last: build the model inputs in ``torch.channels_last`` memory format; None
            (default) does so on CPU, where oneDNN convolutions run about 1.5-2x faster in it
            (values agree with the default layout to float rounding).
        additional_forward_args: more arguments, ``model(inputs, *additional_forward_args)``;
            a tensor whose first dim is N is taken per image (captum's convention).

    Returns:
        :class:`PathIntegral` with the pixel attribution (N, C, H, W), per-segment attribution
        (N, K) and the completeness gap (N,), in the units of the score.

    Raises:
        ConfigError: a malformed path, a bad step count, rule, batch size, score, target or
            ``additional_forward_args``; a model output not shaped (B, num_classes).
    """
    points = _check_path(path)
    nodes = _nodes(n_steps_per_segment, _check_method(method), len(points) - 1)
    batch = _check_batch_size(internal_batch_size)
    score = _check_score(score)
    if not isinstance(additional_forward_args, tuple):
        raise ConfigError(
            f"additional_forward_args must be a tuple, got {type(additional_forward_args)}"
        )
    x = points[-1]
    if channels_last is None:
        channels_last = x.device.type == "cpu"
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    forward = _forward(model, additional_forward_args, x.shape[0])
    modes = eval_mode(model) if isinstance(model, nn.Module) else contextlib.nullcontext()
    with modes:
        target_t, score_input, score_baseline = _end_scores(
            forward, points, target, score, batch, fmt
        )
        pixel, per_segment = _integrate(
            forward, points, nodes, target_t, score, batch, channels_last
        )
        with torch.no_grad():
            gap = score_input - score_baseline
            delta = per_segment.sum(dim=1) - gap
            relative_delta = delta.abs() / gap.abs().clamp_min(torch.finfo(gap.dtype).tiny)

    return PathIntegral(
        pixel=pixel,
        per_segment=per_segment,
        target=target_t,
        score_input=score_input,
        score_baseline=score_baseline,
        delta=delta,
        relative_delta=relative_delta,
    )
