"""The LightningModule's pieces that do not need a Trainer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from rankrobust.pipeline.lightning_module import RobustClassifier, warmup


def _configured(schedule: str, steps: int, lr: float = 0.1):
    """RobustClassifier.configure_optimizers as Lightning calls it, for a run of `steps` steps."""
    module = RobustClassifier(torch.nn.Linear(2, 2), num_classes=2, lr=lr, schedule=schedule)
    module.trainer = SimpleNamespace(estimated_stepping_batches=steps)  # what it reads of one
    return module.configure_optimizers()


@pytest.mark.parametrize("steps", range(1, 12))
def test_one_cycle_schedule_runs_for_any_number_of_steps(steps):
    out = _configured("onecycle", steps)
    opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
    assert out["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(steps):
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert max(lrs) <= 0.1 + 1e-12 and min(lrs) > 0
    assert max(lrs) == pytest.approx(0.1, rel=0.05) or steps < 3  # it reaches the peak lr


def test_schedules_none_and_cosine():
    opt = _configured("none", 10, lr=0.3)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.3
    out = _configured("cosine", 10, lr=0.3)
    assert isinstance(out["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)


def test_warmup_keeps_the_usual_fraction_for_long_runs():
    assert warmup(1000) == 0.25
    assert warmup(4) == 0.5  # 0.25 * 4 steps would leave a zero-length warm-up phase
