"""The LightningModule's pieces that do not need a Trainer."""

from __future__ import annotations

import pytest
import torch

from rankrobust.pipeline.lightning_module import warmup


@pytest.mark.parametrize("steps", range(1, 12))
def test_one_cycle_schedule_runs_for_any_number_of_steps(steps):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=0.1, total_steps=steps, pct_start=warmup(steps)
    )
    lrs = []
    for _ in range(steps):
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert max(lrs) <= 0.1 + 1e-12 and min(lrs) > 0


def test_warmup_keeps_the_usual_fraction_for_long_runs():
    assert warmup(1000) == 0.25
    assert warmup(4) == 0.5  # 0.25 * 4 steps would leave a zero-length warm-up phase
