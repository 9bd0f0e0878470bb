"""Rank-trained runs compute only what the figures and the report read (issue 24)."""

from __future__ import annotations

import pytest
from helpers import FAST, make_cfg

from rankrobust.errors import ConfigError
from rankrobust.pipeline import checks
from rankrobust.pipeline.scope import TURN_ON, skipped_line

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
