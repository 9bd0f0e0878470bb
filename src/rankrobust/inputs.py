"""The one check of image tensors handed to the library (bottom module: imports only torch).

The library's images are floating-point pixels in [0, 1] (normalisation lives inside the
model), shaped (N, C, H, W) for batches or (..., H, W) for per-matrix maths such as the SVD.
:func:`check_images` rejects everything else with a message naming the argument and what is
expected, instead of letting uint8 or normalised pixels, a missing batch dimension or NaNs
turn into plausible-looking numbers further down.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rankrobust.errors import ConfigError

__all__ = ["UNIT_RANGE_TOL", "check_images"]

# Pixels may leave [0, 1] by this much (float rounding of resizing, low-precision dtypes)
# before check_images calls them out of range.
UNIT_RANGE_TOL = 1e-3


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_images(
    x: object, name: str = "images", batched: bool = True, unit_range: bool = True
) -> Tensor:
    """Return ``x`` if it is a finite floating-point image tensor, else raise naming ``name``.

    Args:
        x: the value to check.
        name: the caller's argument name, used in every message.
        batched: require shape (N, C, H, W) with N >= 1; else any (..., H, W) with ndim >= 2.
        unit_range: require pixels in [0, 1] (up to :data:`UNIT_RANGE_TOL`).

    Raises:
        TypeError: ``x`` is not a tensor, or not floating point (uint8 pixels: divide by 255).
        ConfigError: (a ValueError) wrong number of dims, an empty batch or image, NaN or
            infinite values, or pixels outside [0, 1] when ``unit_range``.
    """
    shape = "(N, C, H, W)" if batched else "(..., H, W)"
    what = "a floating point tensor" + (" in [0, 1]" if unit_range else "") + f" of shape {shape}"
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected {what}, got {type(x).__name__}")
    if not x.is_floating_point():
        pixels = x.dtype == torch.uint8 or (unit_range and not x.is_complex())
        hint = ": divide by 255" if pixels else ""
        raise TypeError(f"{name}: expected {what}, got {_dtype_name(x.dtype)}{hint}")
    got = tuple(x.shape)
    if batched and x.ndim != 4:
        hint = f": add the batch dimension with {name}.unsqueeze(0)" if x.ndim == 3 else ""
        raise ConfigError(f"{name}: expected shape (N, C, H, W), got shape {got}{hint}")
    if x.ndim < 2:
        raise ConfigError(f"{name}: expected shape (..., H, W) with at least 2 dims, got {got}")
    if batched and x.shape[0] == 0:
        raise ConfigError(f"{name}: expected at least one image, got an empty batch {got}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ConfigError(f"{name}: expected images with H, W >= 1, got shape {got}")
    if x.numel() == 0:  # e.g. (0, H, W) for the per-matrix maths
        return x
    # one pass: min and max propagate NaN and show +-inf
    lo, hi = (float(v) for v in torch.stack(torch.aminmax(x)).float().cpu())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(
            f"{name} contains NaN or infinite values: expected finite pixels "
            "(check the data loading / normalisation)"
        )
    if unit_range and (lo < -UNIT_RANGE_TOL or hi > 1.0 + UNIT_RANGE_TOL):
        raise ConfigError(
            f"{name}: expected pixels in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(0-255 pixels: divide by 255; normalised pixels: the normalisation belongs "
            "inside the model)"
        )
    return x
