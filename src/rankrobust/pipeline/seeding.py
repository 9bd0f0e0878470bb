"""Seeds derived from (run seed, optimizer step, process rank): the same after a resume."""

from __future__ import annotations

SEED_MODULUS = 2**63 - 1  # torch.manual_seed takes any 64-bit value; stay positive and signed


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """(seed * 1_000_003 + step * 7919 + rank * 104_729) mod (2^63 - 1).

    A seed that depends only on the run seed, the optimizer step and the process rank, so
    anything seeded with it draws the same numbers whether a run went straight through or was
    resumed from a checkpoint, and different numbers on different DDP processes.
    """
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % SEED_MODULUS
