"""Per-channel SVD of images and the rank transforms built on it (pure torch).

For every matrix X (H x W) in a tensor of shape (..., H, W), i.e. per channel per image,

    X = sum_{i=1..r} s_i u_i v_i^T,    s_1 >= s_2 >= ... >= s_r >= 0,   r = min(H, W).

- Low-rank approximation  L_k(X) = sum_{i<=k} s_i u_i v_i^T  (best rank-k approximation,
  Eckart-Young).  Its values can leave [0, 1] (an image's L_k overshoots near edges).  Where
  it is an image a model sees it is clamped to [0, 1]: :func:`low_rank` and
  :class:`RankTransform` (``transform=low``) clamp by default; :meth:`Factorization.low_rank`
  and the paths of RIG / SIG (rankrobust.attribution) do not.
- High-rank residual      H_k(X) = X - L_k(X) = sum_{i>k} s_i u_i v_i^T  (never clamped).
- Band                    B_{a,b}(X) = sum_{a<i<=b} s_i u_i v_i^T, so L_k = B_{0,k}, H_k = B_{k,r}.

A rank k is an integer with 1 <= k <= r; a band (a, b) has integers 0 <= a < b <= r.
Anything else raises :class:`rankrobust.errors.ConfigError`.

:func:`factorize` computes the factors once; :class:`Factorization` then builds any transform
by slicing the factors and one matmul. ``factorize(x, max_rank=k)`` computes only the top k
(randomized subspace iteration, :mod:`rankrobust._svd_maths`) and serves ranks/bands up to k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from rankrobust import _svd_maths as _maths
from rankrobust._rank_rules import _is_int, validate_band, validate_rank, validate_rank_path
from rankrobust.errors import ConfigError

__all__ = [
    "Factorization",
    "RankTransform",
    "band",
    "factorize",
    "high_rank",
    "low_rank",
    "at_full_rank",
    "validate_band",
    "validate_rank",
    "validate_rank_path",
]

Method = Literal["auto", "svd", "gram", "randomized"]
Mode = Literal["low", "high", "band"]

_METHODS = ("auto", "svd", "gram", "randomized")
_MODES = ("low", "high", "band")
# On CUDA, "auto" uses torch.linalg.svd up to this size and the float64 Gram path above it
# (GPU svd on 224x224 runs at ~56 img/s, float64 eigh of the Gram matrix at ~193 img/s, error 2e-6).
_AUTO_SVD_MAX_SIDE = 64
# On CPU, torch.linalg.svd / eigh loop over the batch and call LAPACK once per matrix; for small
# matrices LAPACK's own threading only adds synchronisation, which is catastrophic when the cores
# are shared (measured here: 1000 32x32 SVDs in 0.2 s on 1 thread, 5-18 s on 2 busy threads).
_CPU_SINGLE_THREAD_MAX_SIDE = 128


def _check_input(x: object) -> Tensor:
    # one shared check: float (..., H, W), finite; any range (perturbations, residuals)
    from rankrobust.inputs import check_images

    return check_images(x, "x", batched=False, unit_range=False)


# --------------------------------------------------------------------------- factorization


@dataclass(eq=False)
class Factorization:
    """Thin SVD factors of a tensor x of shape (..., H, W): x = U @ diag(S) @ Vh per matrix.

    Attributes:
        U: (..., H, r) left singular vectors (columns for s_i = 0 may be zero, "gram" method).
        S: (..., r) singular values, descending along the last dim.
        Vh: (..., r, W) right singular vectors (rows).
        dtype: the dtype results are returned in (x's dtype; float32 for integer input).
        shape: x's shape.
        max_rank: None, or the largest rank (band end) served; larger ones raise ConfigError.
        x: the input, kept by the truncated route (factors up to max_rank; H_j = x - L_j).
    with r = min(H, W). The factors are kept in the compute dtype (float32 or float64).
    """

    U: Tensor
    S: Tensor
    Vh: Tensor
    dtype: torch.dtype
    shape: torch.Size
    max_rank: int | None = None
    x: Tensor | None = None

    @property
    def singular_values(self) -> Tensor:
        """The singular values S, shape (..., r), descending."""
        return self.S

    @property
    def full_rank(self) -> int:
        """r = min(H, W), the largest rank of the images (see also max_rank)."""
        return min(self.image_size)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.shape[-2]), int(self.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.S.device

    def _within_max_rank(self, top: int, what: str) -> None:
        if self.max_rank is not None and top > self.max_rank:
            raise ConfigError(
                f"{what} is beyond max_rank={self.max_rank} of this factorization: "
                f"use factorize(x, max_rank={top}) or more (max_rank=None for every rank)"
            )

    def band(self, a: int, b: int) -> Tensor:
        """B_{a,b}(x) = sum_{a<i<=b} s_i u_i v_i^T (requires 0 <= a < b <= r, b <= max_rank)."""
        a, b = validate_band(a, b, self.full_rank, self.image_size)
        self._within_max_rank(b, f"band=({a}, {b})")
        return self._band(a, b).to(self.dtype)

    def _band(self, a: int, b: int) -> Tensor:
        """The band in the compute dtype."""
        us = self.U[..., :, a:b] * self.S[..., None, a:b]
        return us @ self.Vh[..., a:b, :]

    def low_rank(self, k: int, clamp: bool = False) -> Tensor:
        """L_k(x) = sum_{i<=k} s_i u_i v_i^T, shaped like x, in x's dtype.

        Not clamped by default: the values can lie outside [0, 1] even for pixels in [0, 1]
        (the exact L_k, so that L_k + H_k = x).  ``clamp=True`` clamps to [0, 1], the image a
        model is shown (what :func:`low_rank` and :class:`RankTransform` do by default).

        Raises:
            ConfigError: k not an integer in 1..min(H, W), or above a truncated
                factorisation's ``max_rank``.
        """
        k = validate_rank(k, self.full_rank, shape=self.image_size)
        self._within_max_rank(k, f"rank={k}")
        out = self._band(0, k).to(self.dtype)
        return out.clamp_(0.0, 1.0) if clamp else out

    def high_rank(self, k: int) -> Tensor:
        """H_k(x) = x - L_k(x): the band (k, r], or x - L_k when truncated; never clamped."""
        k = validate_rank(k, self.full_rank, shape=self.image_size)
        self._within_max_rank(k, f"rank={k}")
        if self.x is not None:
            return (self.x.to(self.U.dtype) - self._band(0, k)).to(self.dtype)
        if k == self.full_rank:
            return torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        return self._band(k, self.full_rank).to(self.dtype)

    def reconstruct(self) -> Tensor:
        """U diag(S) Vh = x up to floating-point error (x itself when truncated)."""
        if self.x is not None:
            return self.x.to(self.dtype, copy=True)
        return self._band(0, self.full_rank).to(self.dtype)

    def __getitem__(self, index: int | slice | Tensor) -> Factorization:
        """Select along the batch (first) dimension, e.g. ``fac[0:500]``; needs x.ndim >= 3."""
        if len(self.shape) < 3:
            raise ConfigError("only a batched Factorization (x.ndim >= 3) can be indexed")
        U, S, Vh = self.U[index], self.S[index], self.Vh[index]
        shape = torch.Size((*U.shape[:-2], *self.image_size))
        x = None if self.x is None else self.x[index]
        return Factorization(U, S, Vh, self.dtype, shape, self.max_rank, x)

    def __len__(self) -> int:
        if len(self.shape) < 3:
            raise TypeError("len() of an unbatched Factorization")
        return int(self.shape[0])

    def to(self, device: torch.device | str) -> Factorization:
        """The same factors on another device."""
        U, S, Vh = (t.to(device) for t in (self.U, self.S, self.Vh))
        x = None if self.x is None else self.x.to(device)
        return Factorization(U, S, Vh, self.dtype, self.shape, self.max_rank, x)

    @staticmethod
    def cat(parts: Sequence[Factorization]) -> Factorization:
        """Concatenate factorizations of chunks along the batch (first) dimension."""
        if not parts:
            raise ConfigError("Factorization.cat needs at least one part")
        first = parts[0]
        if len({(p.max_rank, p.x is None) for p in parts}) > 1:
            raise ConfigError("Factorization.cat needs parts with the same max_rank and route")
        U, S, Vh = (torch.cat([getattr(p, n) for p in parts]) for n in ("U", "S", "Vh"))
        shape = torch.Size((*U.shape[:-2], *first.image_size))
        x = None if first.x is None else torch.cat([p.x for p in parts])  # type: ignore[misc]
        return Factorization(U, S, Vh, first.dtype, shape, first.max_rank, x)


def factorize(
    x: Tensor,
    method: Method = "auto",
    dtype: torch.dtype | None = None,
    max_rank: int | None = None,
) -> Factorization:
    """Thin SVD of every (H, W) matrix of x (..., H, W): per channel, per image, batched.

    Args:
        x: real tensor (..., H, W), CPU or CUDA, finite.
        method: "svd" (torch.linalg.svd, full_matrices=False), "gram" (float64 eigh of the
            smaller Gram matrix X^T X or X X^T, then U = X V / s), "randomized" (the truncated
            route, needs max_rank), or "auto": "randomized" when max_rank + 32 <= min(H, W);
            else "svd" on CPU, and on CUDA "svd" up to min(H, W) = 64 and "gram" above.
        dtype: dtype the factors are computed (svd; randomized: its matmuls) and stored in:
            float32 by default (float64 for float64 x); "gram" and Ritz solves use float64.
        max_rank: None for every rank, or the largest rank (band end) to serve; larger ones
            raise ConfigError. "randomized" keeps the top max_rank triplets and x (H_j = x - L_j)
            if max_rank + 32 <= min(H, W); otherwise the full factors are computed. On 224x224
            photographs it is within ~1e-4 of LAPACK for every rank <= 32 (pixels in [0, 1]);
            it relies on a spectrum decaying as in natural images (not white noise).

    Returns:
        A :class:`Factorization`; its transforms are returned in x's dtype.
    """
    x = _check_input(x)
    if method not in _METHODS:
        raise ConfigError(f"method={method!r} is not one of {list(_METHODS)}")
    out_dtype = x.dtype if x.is_floating_point() else torch.float32
    if dtype is None:
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype={dtype} is not supported: use torch.float32 or torch.float64")
    H, W = int(x.shape[-2]), int(x.shape[-1])
    r = min(H, W)
    if max_rank is not None:
        max_rank = validate_rank(max_rank, r, name="max_rank", shape=(H, W))
    elif method == "randomized":
        raise ConfigError("method='randomized' needs max_rank (the largest rank to serve)")
    truncate = method in ("auto", "randomized") and (max_rank or r) + _maths.OVERSAMPLE <= r
    # One thread also for the truncated route: its LAPACK calls are small (QR H x m, eigh m x m).
    one = x.device.type == "cpu" and (truncate or r <= _CPU_SINGLE_THREAD_MAX_SIDE)
    if truncate:  # x is kept for H_j = x - L_j
        with _maths.cpu_threads(1 if one else None):
            U, S, Vh = (t.to(dtype) for t in _maths.truncated_svd(x.to(dtype), max_rank))
        return Factorization(U, S, Vh, out_dtype, x.shape, max_rank, x)
    if method in ("auto", "randomized"):
        method = "gram" if x.is_cuda and r > _AUTO_SVD_MAX_SIDE else "svd"
    with _maths.cpu_threads(1 if one else None):
        if method == "svd":
            U, S, Vh = torch.linalg.svd(x.to(dtype), full_matrices=False)
        else:
            x64 = x.to(torch.float64)
            if H >= W:
                U, S, Vh = _maths.gram_factors(x64)
            else:  # X^T = V S U^T: factorize the transpose, then swap the roles of U and V.
                Ut, S, Vht = _maths.gram_factors(x64.mT)
                U, Vh = Vht.mT, Ut.mT
            U, S, Vh = U.to(dtype), S.to(dtype), Vh.to(dtype)
    U, S, Vh = U.contiguous(), S.contiguous(), Vh.contiguous()
    return Factorization(U, S, Vh, out_dtype, x.shape, max_rank)


def low_rank(x: Tensor, k: int, clamp: bool = True, method: Method = "auto") -> Tensor:
    """L_k(x) = sum_{i<=k} s_i u_i v_i^T per channel, clamped to [0, 1] by default."""
    x = _check_input(x)
    k = validate_rank(k, min(x.shape[-2:]), name="k", shape=tuple(x.shape[-2:]))
    return factorize(x, method).low_rank(k, clamp=clamp)


def high_rank(x: Tensor, k: int, method: Method = "auto") -> Tensor:
    """H_k(x) = x - L_k(x) = sum_{i>k} s_i u_i v_i^T per channel (not clamped)."""
    x = _check_input(x)
    k = validate_rank(k, min(x.shape[-2:]), name="k", shape=tuple(x.shape[-2:]))
    return factorize(x, method).high_rank(k)


def band(x: Tensor, a: int, b: int, method: Method = "auto") -> Tensor:
    """B_{a,b}(x) = sum_{a<i<=b} s_i u_i v_i^T per channel (not clamped)."""
    x = _check_input(x)
    a, b = validate_band(a, b, min(x.shape[-2:]), shape=tuple(x.shape[-2:]))
    return factorize(x, method).band(a, b)


def at_full_rank(x: Tensor, mode: str, k: int, clamp: bool = False) -> Tensor | None:
    """L_r(x) = x (clamped to [0, 1] if ``clamp``) and H_r(x) = 0 exactly at full rank
    r = min(H, W), so no rounding of a reconstruction can change a prediction; None below r.

    The one full-rank rule, for RankTransform and evaluate.rank_sweep. x: (..., H, W).
    """
    if k != min(int(x.shape[-2]), int(x.shape[-1])):
        return None
    out = x if x.is_floating_point() else x.float()
    if mode == "high":
        return torch.zeros_like(out)
    return out.clamp(0.0, 1.0) if clamp else out.clone()


# --------------------------------------------------------------------------- transform


@dataclass
class RankTransform:
    """A rank transform of image batches (N, C, H, W) (any (..., H, W) works).

        - mode "low":  L_rank(x), clamped to [0, 1] when ``clamp`` (the paper's test images);
        - mode "high": H_rank(x) = x - L_rank(x), never clamped;
        - mode "band": B_{a,b}(x) for ``band`` = (a, b), never clamped.
        ``rank`` (low/high) or ``band`` (band mode) = None means the identity; the field the mode
        does not use is ignored. ``apply_to`` names the data splits ("train", "test") a datamodule
        applies it to. At full rank, "low" returns x itself (clamped if ``clamp``), so no rounding
        of a reconstruction can change a prediction (``__call__``; ``apply`` reconstructs from the
    factors it is given). ``max_rank`` goes to :func:`factorize`: "auto"
        is the rank (low/high) or b (band), so large images take the truncated route; None: full.
    """

    mode: Mode = "low"
    rank: int | None = None
    band: tuple[int, int] | None = None
    clamp: bool = True
    method: Method = "auto"
    apply_to: tuple[str, ...] = ("train", "test")
    max_rank: int | Literal["auto"] | None = "auto"

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"mode={self.mode!r} is not one of {list(_MODES)}")
        self.apply_to = (self.apply_to,) if isinstance(self.apply_to, str) else tuple(self.apply_to)
        bad = sorted(set(self.apply_to) - {"train", "test"})
        if bad or not self.apply_to:
            raise ConfigError(
                f"transform.apply_to={list(self.apply_to)} is not valid: use [train], [test] or "
                "[train, test]."
            )
        if self.mode in ("low", "high") and self.rank is not None and not _is_int(self.rank):
            raise ConfigError(f"rank={self.rank!r} must be an integer (or None for identity)")
        if self.mode == "band" and self.band is not None:
            try:
                a, b = self.band
            except (TypeError, ValueError):
                raise ConfigError(
                    f"band={self.band!r} must be a pair (a, b) of integers (or None)"
                ) from None
            self.band = (a, b)
        if self.max_rank not in ("auto", None) and not _is_int(self.max_rank):
            raise ConfigError(f"max_rank={self.max_rank!r} must be an integer, 'auto' or None")

    @property
    def needed_rank(self) -> int | None:
        """The largest rank the transform uses: rank (low/high), b (band), None (identity)."""
        if self.is_identity:
            return None
        return int(self.band[1] if self.mode == "band" else self.rank)  # type: ignore[index]

    @property
    def is_identity(self) -> bool:
        return (self.band if self.mode == "band" else self.rank) is None

    def validate(self, full_rank: int, shape: Sequence[int] | None = None) -> None:
        """Raise ConfigError unless the rank (or band) is valid for images of this full rank."""
        if self.is_identity:
            return
        if self.mode == "band":
            assert self.band is not None
            validate_band(self.band[0], self.band[1], full_rank, shape)
        else:
            validate_rank(self.rank, full_rank, shape=shape)
        need = self.needed_rank
        if self.max_rank not in ("auto", None) and need is not None and self.max_rank < need:
            raise ConfigError(f"max_rank={self.max_rank} is below the transform's rank {need}")

    def apply(self, fac: Factorization) -> Tensor:
        """The transform computed from precomputed factors (no SVD)."""
        if self.is_identity:
            return fac.reconstruct()
        self.validate(fac.full_rank, fac.image_size)
        if self.mode == "low":
            return fac.low_rank(int(self.rank), clamp=self.clamp)  # type: ignore[arg-type]
        if self.mode == "high":
            return fac.high_rank(int(self.rank))  # type: ignore[arg-type]
        assert self.band is not None
        return fac.band(*self.band)

    def __call__(self, x: Tensor) -> Tensor:
        """Transform x (..., H, W); identity when rank/band is None."""
        if self.is_identity:
            return x
        x = _check_input(x)
        H, W = int(x.shape[-2]), int(x.shape[-1])
        self.validate(min(H, W), (H, W))
        if self.mode != "band":
            exact = at_full_rank(x, self.mode, int(self.rank), clamp=self.clamp)  # type: ignore[arg-type]
            if exact is not None:
                return exact
        max_rank = self.needed_rank if self.max_rank == "auto" else self.max_rank
        return self.apply(factorize(x, self.method, max_rank=max_rank))
