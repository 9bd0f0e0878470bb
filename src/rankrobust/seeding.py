"""The step seed: one definition for every per-step random stream (attacks, augmentation)."""

from __future__ import annotations


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A seed that depends only on (run seed, optimizer step, process rank)."""
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)
