"""The rank rules (svd.py re-exports them): a rank k, a band (a, b], a rank path r_1 < ... < r_n.

One definition each, used by the SVD transforms, the rank sweep, RIG and the config checks.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from torch import Tensor

from rankrobust.errors import ConfigError


def _is_int(v: object) -> bool:
    """True for Python/numpy integers, False for bool (and numpy bool) and everything else."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _where(full_rank: int, shape: Sequence[int] | None) -> str:
    if shape is not None and len(shape) == 2:
        return f"for {int(shape[0])}x{int(shape[1])} images"
    return f"for images of full rank {full_rank}"


def validate_rank(
    k: object, full_rank: int, name: str = "rank", shape: Sequence[int] | None = None
) -> int:
    """Check that ``k`` is an integer rank with ``1 <= k <= full_rank`` and return it as int.

    Bools, floats (even integral ones such as 2.0), strings and None are rejected; Python and
    numpy integers are accepted. ``shape`` = (H, W), when given, is named in the message.

    Raises:
        ConfigError: naming the valid range, e.g. "rank=33 is out of range: for 32x32 images
            rank must be an integer with 1 <= rank <= 32".
    """
    if not _is_int(full_rank) or int(full_rank) < 1:
        raise ConfigError(f"full_rank={full_rank!r} is invalid: it must be a positive integer")
    full_rank = int(full_rank)
    rule = f"{name} must be an integer with 1 <= {name} <= {full_rank}"
    if not _is_int(k):
        raise ConfigError(
            f"{name}={k!r} is not an integer ({type(k).__name__}): "
            f"{_where(full_rank, shape)} {rule}"
        )
    k = int(k)  # type: ignore[arg-type]
    if not 1 <= k <= full_rank:
        raise ConfigError(f"{name}={k} is out of range: {_where(full_rank, shape)} {rule}")
    return k


def validate_band(
    a: object, b: object, full_rank: int, shape: Sequence[int] | None = None
) -> tuple[int, int]:
    """Check that the band (a, b] has integers ``0 <= a < b <= full_rank``; return (a, b).

    Raises:
        ConfigError: naming the valid range.
    """
    if not _is_int(full_rank) or int(full_rank) < 1:
        raise ConfigError(f"full_rank={full_rank!r} is invalid: it must be a positive integer")
    full_rank = int(full_rank)
    rule = f"a band (a, b) must be integers with 0 <= a < b <= {full_rank}"
    if not (_is_int(a) and _is_int(b)):
        raise ConfigError(
            f"band=({a!r}, {b!r}) is not a pair of integers: {_where(full_rank, shape)} {rule}"
        )
    a, b = int(a), int(b)  # type: ignore[arg-type]
    if not 0 <= a < b <= full_rank:
        raise ConfigError(f"band=({a}, {b}) is out of range: {_where(full_rank, shape)} {rule}")
    return a, b


def validate_rank_path(ranks: object, full_rank: int, name: str = "ranks") -> list[int]:
    """A rank path r_1 < r_2 < ... < r_n = full rank of positive integers (RIG's path; the one
    rule for rig.ranks and `rank_integrated_gradients(ranks=...)`); None = every rank 1..full.

    Raises ConfigError naming ``name``.
    """
    if ranks is None:
        return list(range(1, full_rank + 1))
    if isinstance(ranks, str | bytes) or not isinstance(ranks, Sequence | Tensor | np.ndarray):
        raise ConfigError(f"{name} must be a list of integers, got {ranks!r}")
    out = []
    for r in list(ranks):
        if isinstance(r, Tensor | np.ndarray) and getattr(r, "ndim", 1) == 0:
            r = r.item()
        if not _is_int(r):
            raise ConfigError(f"{name} must be integers, got {r!r} in {list(ranks)!r}")
        out.append(int(r))
    if not out or out[0] < 1 or any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ConfigError(f"{name}={out} is not valid: the ranks must be positive and increase.")
    if out[-1] != full_rank:
        raise ConfigError(
            f"{name}={out} is not valid: the rank path must end at full rank ({full_rank})."
        )
    return out
