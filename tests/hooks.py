"""Callbacks a test adds to a run from the command line (`kill_at_epoch`); none is in the package.

A child `run.py` imports this module as `hooks` (helpers.child_env puts tests/ on its path).
"""

from __future__ import annotations

import os
import signal
import sys

import pytorch_lightning as pl


class KillAtEpoch(pl.Callback):
    """Send `sig` ("KILL" or "TERM") to this process as epoch `epoch` starts (0-based), after epoch
    `epoch - 1`'s checkpoint is on disk. KILL: a hard crash, no cleanup; TERM: a scheduler's stop
    (the run records `interrupted`)."""

    def __init__(self, epoch: int, sig: str = "KILL"):
        self.epoch = epoch
        self.sig = signal.Signals[f"SIG{sig}"]

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            sys.stdout.flush()
            os.kill(os.getpid(), self.sig)


def kill_at_epoch(epoch: int, sig: str = "KILL") -> list[str]:
    """The overrides that add KillAtEpoch(epoch, sig) to a run's callbacks."""
    node = "+callbacks.kill_at_epoch"
    return [f"{node}._target_=hooks.KillAtEpoch", f"{node}.epoch={epoch}", f"{node}.sig={sig}"]
