"""Reading config values and checking them against a range or a set of choices (the primitives
of checks.py and group_checks.py)."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rankrobust.errors import ConfigError

INF = math.inf


def _is_number(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, int | float)


def check_range(key: str, value: Any, kind: type, low: float, high: float, nullable: bool) -> None:
    """Raise ConfigError unless `value` is a `kind` in [low, high] (or None when nullable)."""
    if value is None and nullable:
        return
    what = "an integer" if kind is int else "a finite number"
    span = f">= {low:g}" if high == INF else f"in [{low:g}, {high:g}]"
    null = " (or null)" if nullable else ""
    # NaN and inf are never valid (inf passed `low <= value <= INF`: optim.lr=inf trained to NaN)
    if not _is_number(value, kind) or not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{key}={value!r} is not valid: it must be {what} {span}{null}.")


def _get(cfg: DictConfig, key: str, default: Any = "__missing__") -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def full_rank(cfg: DictConfig) -> int | None:
    """min(H, W) of the images when the config fixes it (dataset.image_size), else None."""
    size = _get(cfg, "dataset.image_size", None)
    return int(size) if isinstance(size, int) else None


def check_choice(key: str, value: Any, choices: tuple) -> None:
    """Raise ConfigError unless value is one of choices (booleans compared as booleans)."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        shown = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
        raise ConfigError(f"{key}={value!r} is not valid: use one of {shown}.")
