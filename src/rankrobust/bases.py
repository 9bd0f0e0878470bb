"""Low- and high-pass images in other bases than the SVD, on one axis: energy kept (pure torch).

Is it rank, or just frequency? (PAPER.md, "Other bases".) Every basis here is orthonormal, so
each low-pass is an orthogonal projection P_k of every channel X (H x W) and

    low_k(X) = P_k X,    high_k(X) = X - low_k(X),    energy kept e_k = ||low_k(x)||^2 / ||x||^2

(e_k sums over the whole image, all channels; it grows with k, Pythagoras). The cutoff k means:

- ``svd``:     k = rank, 1 <= k <= min(H, W): L_k of :mod:`rankrobust.svd` (unclamped here).
- ``fourier``: k = radius r >= 0: keep the 2-D DFT coefficients whose integer frequencies
  (k_y, k_x) = numpy.fft.fftfreq(n) * n satisfy k_y^2 + k_x^2 <= r^2; inverse DFT, real part
  (Yin et al. 2019; Wang et al. 2020). r = 0 keeps the mean of each channel.
- ``dct``:     k = radius r >= 0 in DCT-II index space: keep the orthonormal DCT-II coefficients
  (i, j) (scipy.fft.dctn(norm="ortho")) with i^2 + j^2 <= r^2.
- ``wavelet``: k = detail levels kept, 0 <= k <= J, of a J-level 2-D orthogonal wavelet
  decomposition with periodic boundaries (pywt.wavedec2(mode="periodization")): keep the
  approximation and the k coarsest detail levels. k = 0 keeps the J-level approximation (the
  channel mean for Haar on 2^J-sided images); k = J keeps everything. Wavelets: haar, db2-db4.

At the largest cutoff (:func:`cutoff_range`) the low-pass is x itself and the high-pass zero.
As a test image the low-pass is clamped to [0, 1] (``clamp=True``), like L_k; the high-pass is
never clamped. Inputs are float tensors (..., H, W) on any device; the maths runs there,
batched (FFT, matmuls), in x's dtype. A bad cutoff or basis raises
:class:`rankrobust.errors.ConfigError` naming the valid range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from rankrobust._svd_maths import cpu_threads
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_images
from rankrobust.svd import Factorization, RankTransform, _is_int, factorize

__all__ = [
    "BASES",
    "WAVELETS",
    "BasisTransform",
    "Decomposition",
    "cutoff_range",
    "decompose",
    "default_cutoffs",
    "energy_kept",
    "high",
    "low",
    "validate_cutoff",
    "wavelet_levels",
]

Basis = Literal["svd", "fourier", "dct", "wavelet"]
BASES = ("svd", "fourier", "dct", "wavelet")
# Orthogonal wavelets' decomposition low-pass filters (pywt.Wavelet(name).dec_lo; the tests
# compare them with PyWavelets, which is not needed at run time).
WAVELETS: dict[str, tuple[float, ...]] = {
    "haar": (0.7071067811865476, 0.7071067811865476),
    "db2": (-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416),
    "db3": (0.03522629188570953, -0.08544127388202666, -0.13501102001025458,
            0.45987750211849154, 0.8068915093110925, 0.33267055295008263),
    "db4": (-0.010597401785069032, 0.0328830116668852, 0.030841381835560764,
            -0.18703481171909309, -0.027983769416859854, 0.6308807679298589,
            0.7148465705529157, 0.2303778133088965),
}  # fmt: skip
WHAT_K = {"svd": "rank", "fourier": "radius", "dct": "DCT radius", "wavelet": "levels kept"}


# --------------------------------------------------------------------------- cutoffs


def _check_basis(basis: object, wavelet: object = "haar") -> None:
    if basis not in BASES:
        raise ConfigError(f"basis={basis!r} is not valid: use one of {', '.join(BASES)}.")
    if basis == "wavelet" and wavelet not in WAVELETS:
        raise ConfigError(f"wavelet={wavelet!r} is not valid: use one of {', '.join(WAVELETS)}.")


def _levels_1d(n: int, filter_len: int) -> int:
    """pywt.dwt_max_level(n, filter_len), capped so that every level halves an even length."""
    if n < filter_len - 1 or filter_len <= 1:
        return 0
    top = int(math.floor(math.log2(n / (filter_len - 1))))
    halvings = 0
    while n % 2 == 0 and halvings < top:
        n, halvings = n // 2, halvings + 1
    return halvings


def wavelet_levels(H: int, W: int, wavelet: str = "haar") -> int:
    """J, the decomposition depth for H x W images: the smaller side's pywt.dwt_max_level,
    capped so that each level halves an even length (periodization without padding)."""
    _check_basis("wavelet", wavelet)
    L = len(WAVELETS[wavelet])
    return min(_levels_1d(int(H), L), _levels_1d(int(W), L))


def cutoff_range(basis: str, H: int, W: int, wavelet: str = "haar") -> tuple[int, int]:
    """(lowest, highest) valid cutoff for H x W images; the highest keeps every coefficient.

    svd: (1, min(H, W)); fourier: (0, ceil(hypot(H // 2, W // 2))); dct: (0, ceil(hypot(H - 1,
    W - 1))); wavelet: (0, J) with J = :func:`wavelet_levels`.
    """
    _check_basis(basis, wavelet)
    H, W = int(H), int(W)
    if basis == "svd":
        return 1, min(H, W)
    if basis == "fourier":
        return 0, math.ceil(math.hypot(H // 2, W // 2))
    if basis == "dct":
        return 0, math.ceil(math.hypot(H - 1, W - 1))
    return 0, wavelet_levels(H, W, wavelet)


def validate_cutoff(
    k: object, basis: str, H: int, W: int, wavelet: str = "haar", name: str = "k"
) -> int:
    """Check that k is an integer cutoff of this basis for H x W images; return it as int.

    Raises:
        ConfigError: naming the basis, what k means there and the valid range.
    """
    lo, hi = cutoff_range(basis, H, W, wavelet)
    what = f"{WHAT_K[basis]} of the {basis} basis" + (f" ({wavelet})" if basis == "wavelet" else "")
    if basis == "wavelet" and hi == 0:
        raise ConfigError(
            f"{H}x{W} images cannot be decomposed by the {wavelet} wavelet (no level halves both "
            "sides evenly): use an even image size or another basis."
        )
    if not _is_int(k) or not lo <= int(k) <= hi:  # type: ignore[call-overload]
        raise ConfigError(
            f"{name}={k!r} is not valid: the {what} for {H}x{W} images must be an integer with "
            f"{lo} <= {name} <= {hi}."
        )
    return int(k)  # type: ignore[call-overload]


def default_cutoffs(basis: str, H: int, W: int, wavelet: str = "haar") -> list[int]:
    """A short list spanning the basis' range: 0 (or 1), 1, 2, 4, 8, ... and the top cutoff;
    every level for wavelets."""
    lo, hi = cutoff_range(basis, H, W, wavelet)
    if basis == "wavelet":
        return list(range(lo, hi + 1))
    out, k = ([0] if lo == 0 else []), 1
    while k < hi:
        out.append(k)
        k *= 2
    return out + [hi]


# --------------------------------------------------------------------------- the maths

# Small images on the CPU: one thread (FFTs and matmuls of 32x32 matrices only lose to
# threading, badly so on shared cores: 20x slower measured here on 2 busy cores).
_CPU_SINGLE_THREAD_MAX_SIDE = 128


def _threads(x: Tensor):
    small = max(int(x.shape[-2]), int(x.shape[-1])) <= _CPU_SINGLE_THREAD_MAX_SIDE
    return cpu_threads(1 if x.device.type == "cpu" and small else None)


def _fourier_mask(H: int, W: int, r: int, device: torch.device) -> Tensor:
    ky = torch.fft.fftfreq(H, device=device, dtype=torch.float64) * H
    kx = torch.fft.fftfreq(W, device=device, dtype=torch.float64) * W
    return (ky[:, None].round() ** 2 + kx[None, :].round() ** 2) <= r * r


def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Orthonormal DCT-II matrix D (n x n): coefficients c = D x (scipy.fft.dct(norm="ortho"))."""
    i = torch.arange(n, dtype=torch.float64, device=device)
    d = torch.cos(math.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.to(dtype)


def _wavelet_projector(n: int, drop: int, wavelet: str, dtype, device) -> Tensor:
    """P = A^T A (n x n): the projection onto the approximation space after ``drop`` levels.

    A = A_drop ... A_1, each A_l (m/2 x m) the periodized analysis low-pass of length m:
    row i has dec_lo[j] at column (2 i + L/2 - j) mod m (pywt's "periodization" alignment).
    """
    h = torch.tensor(WAVELETS[wavelet], dtype=torch.float64, device=device)
    L = h.numel()
    A = torch.eye(n, dtype=torch.float64, device=device)
    m = n
    for _ in range(drop):
        step = torch.zeros(m // 2, m, dtype=torch.float64, device=device)
        rows = torch.arange(m // 2, device=device)[:, None]
        cols = (2 * rows + L // 2 - torch.arange(L, device=device)[None, :]) % m
        step.index_put_((rows.expand(-1, L), cols), h.expand(m // 2, L), accumulate=True)
        A, m = step @ A, m // 2
    return (A.mT @ A).to(dtype)


@dataclass(eq=False)
class Decomposition:
    """Images x (..., H, W) in one basis, transformed once: any cutoff is then a mask (Fourier,
    DCT), a pair of matmuls (wavelet) or a slice (SVD, the :class:`Factorization`)."""

    x: Tensor
    basis: str
    wavelet: str = "haar"
    coeffs: Tensor | None = None  # DFT (fourier) or DCT-II (dct) coefficients
    factorization: Factorization | None = None
    _last: tuple[int, Tensor] | None = field(default=None, repr=False)  # the last low-pass

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.x.shape[-2]), int(self.x.shape[-1])

    @property
    def top(self) -> int:
        """The cutoff that keeps everything."""
        return cutoff_range(self.basis, *self.image_size, self.wavelet)[1]

    def low(self, k: int, clamp: bool = False) -> Tensor:
        """The low-pass P_k x (clamped to [0, 1] when ``clamp``); x itself at the top cutoff."""
        H, W = self.image_size
        k = validate_cutoff(k, self.basis, H, W, self.wavelet)
        if self._last is None or self._last[0] != k:  # a sweep asks for low, high, energy
            with _threads(self.x):
                self._last = (k, self._low(k))
        out = self._last[1]
        return out.clamp(0.0, 1.0) if clamp else out.clone()

    def _low(self, k: int) -> Tensor:
        H, W = self.image_size
        x = self.x
        if k == self.top or x.numel() == 0:  # an empty batch: its (empty) self, as svd gives
            out = x.clone()
        elif self.basis == "svd":
            assert self.factorization is not None
            out = self.factorization.low_rank(k)
        elif self.basis == "fourier":
            mask = _fourier_mask(H, W, k, x.device)
            out = torch.fft.ifft2(self.coeffs * mask).real.to(x.dtype)  # type: ignore[operator]
        elif self.basis == "dct":
            dh, dw = _dct_matrix(H, x.dtype, x.device), _dct_matrix(W, x.dtype, x.device)
            i = torch.arange(H, device=x.device)[:, None] ** 2
            j = torch.arange(W, device=x.device)[None, :] ** 2
            out = dh.mT @ (self.coeffs * ((i + j) <= k * k)) @ dw  # type: ignore[operator]
        else:
            drop = wavelet_levels(H, W, self.wavelet) - k
            ph = _wavelet_projector(H, drop, self.wavelet, x.dtype, x.device)
            pw = _wavelet_projector(W, drop, self.wavelet, x.dtype, x.device)
            out = ph @ x @ pw
        return out

    def high(self, k: int) -> Tensor:
        """x - P_k x (never clamped); zero at the top cutoff."""
        return self.x - self.low(k)

    def energy_kept(self, k: int) -> Tensor:
        """||P_k x||^2 / ||x||^2 per image, summed over (C, H, W) of (N, C, H, W): shape (N,).
        A black image keeps all its (zero) energy: 1."""
        low = self.low(k)
        with _threads(low):
            dims = tuple(range(1, low.ndim))
            kept, total = low.double().square().sum(dims), self.x.double().square().sum(dims)
        return torch.where(total > 0, kept / total.clamp_min(1e-300), torch.ones_like(total))


def decompose(
    x: Tensor, basis: str = "svd", wavelet: str = "haar", max_cutoff: int | None = None
) -> Decomposition:
    """Transform x (..., H, W) once into ``basis`` (float; any range; on x's device).

    ``max_cutoff`` (svd only): the largest rank to serve, so that large images take the
    truncated SVD route (:func:`rankrobust.svd.factorize`'s max_rank); None: every rank.
    """
    x = check_images(x, "x", batched=False, unit_range=False)
    _check_basis(basis, wavelet)
    H, W = int(x.shape[-2]), int(x.shape[-1])
    if max_cutoff is not None:
        max_cutoff = validate_cutoff(max_cutoff, basis, H, W, wavelet)
    if basis == "svd":
        top = None if max_cutoff is None or max_cutoff >= min(H, W) else max_cutoff
        return Decomposition(x, basis, wavelet, factorization=factorize(x, max_rank=top))
    if basis == "fourier":
        if x.numel() == 0:  # MKL's FFT refuses an empty batch; its coefficients are empty too
            coeffs = torch.empty(x.shape, dtype=torch.promote_types(x.dtype, torch.complex64))
            return Decomposition(x, basis, wavelet, coeffs=coeffs.to(x.device))
        with _threads(x):
            return Decomposition(x, basis, wavelet, coeffs=torch.fft.fft2(x))
    if basis == "dct":
        dh, dw = _dct_matrix(H, x.dtype, x.device), _dct_matrix(W, x.dtype, x.device)
        with _threads(x):
            return Decomposition(x, basis, wavelet, coeffs=dh @ x @ dw.mT)
    validate_cutoff(0, basis, H, W, wavelet)  # images the wavelet cannot decompose: say so now
    return Decomposition(x, basis, wavelet)


def low(
    x: Tensor, k: int, basis: str = "svd", clamp: bool = False, wavelet: str = "haar"
) -> Tensor:
    """The low-pass of x (..., H, W) at cutoff k in ``basis`` (see the module docstring)."""
    return decompose(x, basis, wavelet, max_cutoff=k).low(k, clamp=clamp)


def high(x: Tensor, k: int, basis: str = "svd", wavelet: str = "haar") -> Tensor:
    """x - low(x, k, basis), unclamped: low + high = x."""
    return decompose(x, basis, wavelet, max_cutoff=k).high(k)


def energy_kept(x: Tensor, k: int, basis: str = "svd", wavelet: str = "haar") -> Tensor:
    """||low(x, k)||^2 / ||x||^2 per image of x (N, C, H, W) (unclamped low-pass): shape (N,)."""
    x = check_images(x, "x", batched=True, unit_range=False)
    return decompose(x, basis, wavelet, max_cutoff=k).energy_kept(k)


# --------------------------------------------------------------------------- transform


@dataclass
class BasisTransform(RankTransform):
    """:class:`rankrobust.svd.RankTransform` in any basis: ``transform.basis`` (svd, fourier,
    dct, wavelet) and ``wavelet``; ``rank`` is the basis' cutoff k (rank, radius, levels kept).

    basis "svd" is exactly RankTransform (low, high, band). Other bases take modes "low" (the
    low-pass, clamped when ``clamp``) and "high" (x - low-pass, never clamped).
    """

    basis: str = "svd"
    wavelet: str = "haar"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_basis(self.basis, self.wavelet)
        if self.basis != "svd" and self.mode == "band":
            raise ConfigError(
                f"transform=band is an SVD band: it has no {self.basis} form (transform.basis="
                f"{self.basis}). Use transform=low or transform=high with another basis."
            )

    def validate(self, full_rank: int, shape: Sequence[int] | None = None) -> None:
        """Raise ConfigError unless the cutoff is valid for these images."""
        if self.basis == "svd" or self.is_identity:
            return super().validate(full_rank, shape)
        H, W = (int(shape[0]), int(shape[1])) if shape is not None else (full_rank, full_rank)
        validate_cutoff(self.rank, self.basis, H, W, self.wavelet, name="rank")

    def __call__(self, x: Tensor) -> Tensor:
        if self.basis == "svd" or self.is_identity:
            return super().__call__(x)
        x = check_images(x, "x", batched=False, unit_range=False)
        self.validate(min(x.shape[-2:]), tuple(x.shape[-2:]))
        dec = decompose(x if x.is_floating_point() else x.float(), self.basis, self.wavelet)
        k = int(self.rank)  # type: ignore[arg-type]
        return dec.low(k, clamp=self.clamp) if self.mode == "low" else dec.high(k)
