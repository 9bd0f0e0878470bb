"""The test images' SVD, computed once and kept on disk for every model that sees them.

A zoo evaluates many models on one set of test images: their factorisation (`svd.factorize`)
depends only on the pixels, so it is keyed by the images' content (sha1 of the float32 pixels
and their shape), the largest rank served and the device type that computes it, and stored as
``<cache_dir>/factors-<key>.npz`` (``RANKROBUST_CACHE``, default ~/.cache/rankrobust; written
atomically, a damaged file rebuilt: `cache.cached_arrays`). A second model, a second process
or a rerun reads the factors instead of recomputing them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from rankrobust.data.cache import CACHE_VERSION, cache_dir, cached_arrays
from rankrobust.svd import Factorization, factorize

_KEYS = {"U", "S", "Vh", "meta"}


def factor_key(images: torch.Tensor, max_rank: int | None, device: str) -> str:
    """16 hex digits naming (pixels, shape, max_rank, device type, cache version)."""
    pixels = images.detach().to("cpu", torch.float32).contiguous().numpy()
    h = hashlib.sha1(f"v{CACHE_VERSION}|{tuple(pixels.shape)}|{max_rank}|{device}".encode())
    h.update(memoryview(pixels).cast("B"))
    return h.hexdigest()[:16]


def factorize_batches(images: torch.Tensor, max_rank: int | None, batch_size: int,
                      device: torch.device | str) -> Factorization:  # fmt: skip
    """`svd.factorize` of ``images`` (N, C, H, W) in chunks of ``batch_size`` on ``device``,
    the factors kept on the images' device."""
    return Factorization.cat(
        [
            factorize(images[lo : lo + batch_size].to(device), max_rank=max_rank).to(images.device)
            for lo in range(0, len(images), batch_size)
        ]
    )


def cached_factorization(images: torch.Tensor, max_rank: int | None, batch_size: int,
                         device: torch.device | str) -> Factorization:  # fmt: skip
    """`factorize_batches`'s result, read from the disk cache when these images were factorised
    before (same key), else computed and stored. ``images``: (N, C, H, W) pixels; the result
    equals the uncached one exactly (the stored factors are the computed ones)."""
    kind = torch.device(device).type
    path = cache_dir() / f"factors-{factor_key(images, max_rank, kind)}.npz"

    def build() -> dict[str, np.ndarray]:
        fac = factorize_batches(images, max_rank, batch_size, device)
        truncated = fac.x is not None
        return {
            "U": fac.U.cpu().numpy(), "S": fac.S.cpu().numpy(), "Vh": fac.Vh.cpu().numpy(),
            "meta": np.array([-1 if fac.max_rank is None else fac.max_rank, int(truncated)]),
        }  # fmt: skip

    arrays = cached_arrays(path, build, _KEYS)
    top, truncated = (int(v) for v in arrays["meta"])
    U, S, Vh = (torch.from_numpy(np.ascontiguousarray(arrays[k])).to(images.device)
                for k in ("U", "S", "Vh"))  # fmt: skip
    dtype = images.dtype if images.is_floating_point() else torch.float32
    return Factorization(U, S, Vh, dtype, images.shape, None if top < 0 else top,
                         images if truncated else None)  # fmt: skip
