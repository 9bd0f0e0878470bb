"""AutoAttack's plumbing for :func:`rankrobust.attacks.autoattack` (pyautoattack): the checks of
its options, the sandbox around its side effects and its iteration settings. Private: the
public function, its docstring and its argument checks live in attacks.py."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from rankrobust.errors import ConfigError
from rankrobust.inputs import check_eps
from rankrobust.models import eval_mode

AUTOATTACK_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
AUTOATTACK_VERSIONS: tuple[str, ...] = ("standard", "plus", "rand", "custom")
AUTOATTACK_NORMS: tuple[str, ...] = ("Linf", "L2", "L1")


class _Float32Logits(nn.Module):
    """``model`` with float32 inputs and logits, for pyautoattack (which calls it directly)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float()).float()


@contextlib.contextmanager
def _autoattack_sandbox(model: nn.Module, device: torch.device, verbose: bool) -> Iterator[None]:
    """Shield the caller from pyautoattack's side effects.

    It reseeds the global torch RNG (``torch.manual_seed``), calls ``sys.settrace(None)`` in its
    dynamic-defence check (dropping any debugger or coverage tracer), logs warnings on the
    "auto-attack" logger, and FAB calls ``.backward()`` (which would fill parameter ``.grad``).
    """
    logger = logging.getLogger("auto-attack")
    old_level, old_trace = logger.level, sys.gettrace()
    logger.setLevel(logging.DEBUG if verbose else logging.ERROR)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), eval_mode(model):
            yield
    finally:
        for p in frozen:
            p.requires_grad_(True)
        logger.setLevel(old_level)
        if sys.gettrace() is not old_trace:
            sys.settrace(old_trace)


def _check_autoattack(
    eps: float,
    norm: str,
    version: str,
    attacks_to_run: Sequence[str] | None,
    n_iter: int | None = None,
    n_restarts: int | None = None,
) -> None:
    check_eps(eps, norm, "eps")
    for label, value in (("n_iter", n_iter), ("n_restarts", n_restarts)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"AutoAttack {label} must be an integer >= 1 or None; got {value!r}.")
    if norm not in AUTOATTACK_NORMS:
        raise ConfigError(
            f"AutoAttack norm must be one of {', '.join(AUTOATTACK_NORMS)}; got {norm!r}."
        )
    if version not in AUTOATTACK_VERSIONS:
        raise ConfigError(
            f"AutoAttack version must be one of {', '.join(AUTOATTACK_VERSIONS)}; got {version!r}."
        )
    if version == "custom":
        if not attacks_to_run:
            raise ConfigError(
                "AutoAttack version 'custom' needs attacks_to_run, a non-empty list from: "
                f"{', '.join(AUTOATTACK_ATTACKS)} (e.g. ['apgd-ce'] for a fast check)."
            )
        unknown = [a for a in attacks_to_run if a not in AUTOATTACK_ATTACKS]
        if unknown:
            raise ConfigError(
                f"Unknown AutoAttack attack(s) {unknown}; known: {', '.join(AUTOATTACK_ATTACKS)}."
            )
    elif attacks_to_run:
        raise ConfigError(
            f"AutoAttack attacks_to_run is only used with version='custom' (version={version!r} "
            "fixes its own list); set version='custom' or drop attacks_to_run."
        )


def _set_n_iter(attack: object, n_iter: int) -> None:
    """Set iterations (Square: queries); APGD's step-size checkpoints derive from n_iter."""
    if hasattr(attack, "n_queries"):
        attack.n_queries = n_iter
        return
    attack.n_iter = n_iter
    if hasattr(attack, "n_iter_2"):
        attack.n_iter_orig = n_iter
        attack.n_iter_2 = max(int(0.22 * n_iter), 1)
        attack.n_iter_min = max(int(0.06 * n_iter), 1)
        attack.size_decr = max(int(0.03 * n_iter), 1)
