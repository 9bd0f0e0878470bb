"""Rank-trained runs compute only what the figures and the report read (anything more would
cost time and be thrown away)."""

from __future__ import annotations

import time

import pytest
from helpers import FAST, make_cfg

from rankrobust.errors import ConfigError
from rankrobust.pipeline import checks
from rankrobust.pipeline.rules import TURN_ON, skipped_line

ALL_ON = ["sweep.enabled=true", "analysis.perturbation_spectrum=true", "rig.enabled=true"]


def test_a_rank_trained_run_skips_the_analyses_no_figure_reads():
    spec = checks.check_config(make_cfg(*FAST, *ALL_ON, "rank=4"))
    assert not spec.sweep.enabled
    assert not spec.analysis.perturbation_spectrum
    assert not spec.rig.enabled
    assert spec.skipped == ("rank sweep", "perturbation spectrum", "RIG")
    # the test accuracies C4 reads are untouched
    assert spec.eval.n_robust == make_cfg(*FAST, "rank=4").eval.n_robust


def test_for_rank_trained_all_keeps_every_enabled_analysis():
    spec = checks.check_config(make_cfg(*FAST, *ALL_ON, "rank=4", TURN_ON))
    assert spec.sweep.enabled and spec.analysis.perturbation_spectrum and spec.rig.enabled
    assert spec.skipped == ()


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # full images
        ["rank=4", "transform.apply_to=[test]"],  # tested on rank-4 images, trained on full ones
    ],
)
def test_runs_not_trained_on_rank_k_images_keep_their_analyses(overrides):
    spec = checks.check_config(make_cfg(*FAST, *ALL_ON, *overrides))
    assert spec.sweep.enabled and spec.analysis.perturbation_spectrum and spec.rig.enabled
    assert spec.skipped == ()


def test_a_bad_for_rank_trained_is_one_paragraph_naming_the_key():
    with pytest.raises(ConfigError, match=r"analysis.for_rank_trained='some'.*figures.*all"):
        checks.check_config(make_cfg(*FAST, "rank=4", "analysis.for_rank_trained=some"))


def test_the_closing_line_says_what_was_skipped_and_how_to_turn_it_on():
    line = skipped_line(["rank sweep", "RIG"])
    assert "rank sweep, RIG" in line and TURN_ON in line
    assert skipped_line([]) is None


def _drive(estimate, steps: int, per_epoch: int, total: int, batch) -> None:
    from types import SimpleNamespace

    trainer = SimpleNamespace(
        global_step=0, is_global_zero=True, estimated_stepping_batches=total,
        num_training_batches=per_epoch,
    )  # fmt: skip
    module = SimpleNamespace(device=SimpleNamespace(type="cpu"))
    estimate.on_train_start(trainer, module)
    for step in range(steps):
        trainer.global_step = step
        estimate.on_train_batch_start(trainer, module, batch, step)
        time.sleep(0.02)
        trainer.global_step = step + 1
        estimate.on_train_batch_end(trainer, module, None, batch, step)


def test_the_estimate_counts_the_analyses_and_comes_within_a_short_first_epoch(caplog):
    """A 2-step job (the card's command: 1,000 images, 1 epoch) whose time is in its analyses:
    the estimate comes after its first step, and the test + analyses make it long."""
    import torch

    from rankrobust.pipeline.callbacks import TimeEstimate

    batch = (torch.zeros(4, 3, 8, 8), torch.zeros(4))
    quiet = TimeEstimate(after_steps=5, warn_minutes=1)
    with caplog.at_level("WARNING", logger="rankrobust"):
        _drive(quiet, steps=2, per_epoch=2, total=2, batch=batch)
    assert "will take about" not in caplog.text  # 2 steps of 0.02 s and nothing after them

    # 0.02 s per step of 4 images = 1.7 ms per forward pass: 60,000 passes ~ 100 s > 1 minute
    loud = TimeEstimate(after_steps=5, warn_minutes=1)
    loud.work = lambda: 60_000
    with caplog.at_level("WARNING", logger="rankrobust"):
        _drive(loud, steps=2, per_epoch=2, total=2, batch=batch)
    assert "60000 forward passes" in caplog.text and "make reproduce-demo" in caplog.text
    assert "1 steps to go" in caplog.text  # after the first of the 2 steps, not at the end

    demo = TimeEstimate(after_steps=5, warn_minutes=1, advice=False)  # the demo's own runs
    demo.work = 60_000
    caplog.clear()
    with caplog.at_level("WARNING", logger="rankrobust"):
        _drive(demo, steps=2, per_epoch=2, total=2, batch=batch)
    assert "60000 forward passes" in caplog.text and "make reproduce-demo" not in caplog.text


def test_sweep_jobs_counts_a_multirun_command_line():
    from rankrobust.pipeline.callbacks import sweep_jobs

    card = ["-m", "rank=1,4,16,32", "trainer.max_epochs=1", "model=small_cnn"]
    assert sweep_jobs(card) == 4
    assert sweep_jobs(["-m", "rank=1,4", "seed=0,1,2", "'sweep.ranks=[1,2,4]'"]) == 6
    assert sweep_jobs(["rank=1,4"]) == 1  # not a multirun
    assert sweep_jobs(["-m", "hydra.sweep.subdir=a,b", "rank=2"]) == 1


def test_time_estimates_read_in_seconds_under_two_minutes():
    from rankrobust.pipeline.callbacks import _span

    assert _span(0.3) == "18 s"  # once "about 0 more minutes"
    assert _span(1.99) == "119 s" and _span(2.0) == "2 minutes" and _span(15.4) == "15 minutes"
