"""Readers never crash on one bad file and never delete outputs when nothing was found
(issue 19, item 5): collect / figures / report turn each malformed metrics.json into an
`invalid` row naming the file and the field, and report the rest."""

from __future__ import annotations

import json
import math

import pytest
from fake_runs import make_outputs

from rankrobust.reporting import collect, intervals, report
from rankrobust.reporting import figures as figures_cli

# (file content, the field the error must name)
BAD_FILES = {
    "null": ("null", "metrics.json"),
    "config_null": ({"config": None}, "config"),
    "string_acc": ({"clean_acc": "0.9"}, "clean_acc"),
    "sweep_list": ({"rank_sweep": [0.1, 0.2]}, "rank_sweep"),
    "sweep_str": ({"rank_sweep": {"low": {"4": "high"}}}, "rank_sweep.low.4"),
    "timings_list": ({"timings": [1, 2]}, "timings"),
    "rig_list": ({"rig": [1]}, "rig"),
}


def _good(seed: int) -> dict:
    cfg = {"dataset": "synthetic", "model": "small_cnn", "attack": "none", "rank": None}
    return {
        "schema": 1,
        "status": "ok",
        "error": None,
        "clean_acc": 0.8,
        "robust_acc": 0.1,
        "config": {**cfg, "seed": seed},
        "timings": {},
        "rank_sweep": {"low": {"1": 0.2, "4": None, "32": 0.8}},  # None: the writer's NaN
    }


@pytest.fixture()
def outputs(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    bad = root / "runs" / "bad"
    for name, (content, _) in BAD_FILES.items():
        folder = bad / name
        folder.mkdir(parents=True)
        text = content if isinstance(content, str) else json.dumps({**_good(0), **content})
        (folder / "metrics.json").write_text(text)
    nan = root / "runs" / "nan_in_sweep"
    nan.mkdir(parents=True)
    (nan / "metrics.json").write_text(json.dumps(_good(1)))
    return root


def test_each_bad_file_is_an_invalid_row_naming_file_and_field(outputs):
    rows = {r["run_dir"]: r for r in collect.collect(outputs)}
    for name, (_, field) in BAD_FILES.items():
        row = rows[str(outputs / "runs" / "bad" / name)]
        assert row["status"] == "invalid", (name, row)
        assert field in row["error"] and "metrics.json" in row["error"], (name, row["error"])
    nan_row = rows[str(outputs / "runs" / "nan_in_sweep")]
    assert nan_row["status"] == "ok" and nan_row["rank_sweep"]["low"][4] is None
    assert sum(r["status"] == "ok" for r in rows.values()) >= 6  # the rest is reported


def test_figures_and_report_survive_bad_files(outputs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert figures_cli.main([str(outputs), "--out", str(out), "--only", "rank-accuracy"]) == 0
    assert (out / "fig-rank-accuracy.png").is_file()
    assert report.main([str(outputs), "--out", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert "invalid" in capsys.readouterr().out


@pytest.mark.parametrize("cli", [collect.main, figures_cli.main, report.main])
def test_a_missing_runs_folder_is_exit_2_and_deletes_nothing(cli, tmp_path, capsys):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "fig-rank-accuracy.png").write_bytes(b"png")
    (out / "runs.csv").write_text("run_dir\nx\n")
    with pytest.raises(SystemExit) as info:
        cli([str(tmp_path / "no_such_outputs"), "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_outputs" in err and "Traceback" not in err
    assert (out / "fig-rank-accuracy.png").read_bytes() == b"png"
    assert (out / "runs.csv").read_text() == "run_dir\nx\n"


@pytest.mark.parametrize("cli", [collect.main, figures_cli.main, report.main])
def test_out_that_is_a_file_is_one_paragraph(cli, outputs, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as info:
        cli([str(outputs), "--out", str(target)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(target) in err and err.strip().count("\n") == 0
    assert target.read_text() == "keep me"


def test_difference_of_a_zero_spread_mean_and_a_binomial_is_finite():
    same = intervals.mean_of([0.5, 0.5])  # two identical seeds: se = 0 over 1 df
    diff = intervals.difference(same, intervals.binomial(0.4, 100))
    assert diff.value == pytest.approx(0.1) and math.isfinite(diff.hi - diff.lo)
    assert diff.lo < diff.value < diff.hi
    assert intervals.difference(same, same).value == 0.0
