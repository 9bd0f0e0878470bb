"""report: verdicts with intervals in report.md / report.json, its own CLI, the W&B report run."""

from __future__ import annotations

import json

import pytest
from fake_runs import make_outputs

from rankrobust.reporting import report
from rankrobust.reporting.claims import claims
from rankrobust.reporting.collect import collect


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = make_outputs(tmp_path_factory.mktemp("hold") / "outputs")
    out = root / "figures"
    assert report.main([str(root), "--out", str(out)]) == 0
    return out


def test_report_says_claims_hold_on_data_built_to_hold(written):
    text = (written / "report.md").read_text()
    verdicts = {c["claim"]: c["verdict"] for c in json.loads((written / "report.json").read_text())}
    assert verdicts == {
        "C1": "holds", "C2": "holds", "C3": "holds", "C4": "reported", "C5": "reported"
    }  # fmt: skip
    assert "| C1 | **holds** |" in text and "(fig-rank-accuracy.png)" in text
    # 0.3825/0.9 vs 0.525/0.7 at k=4, each with its delta-method interval (n = 1000 images)
    assert "kept natural 42.5% [39.1, 46.0] vs robust 75.0% [69.6, 80.4]" in text
    assert "clean rises (+50.0 points [" in text and "robust falls (-15.0 points [" in text
    assert "Map cleanliness" in text and "| robust | 10-10-00_robust |" in text
    assert "| failed |" in text and "| running |" in text and "| missing |" in text
    assert "**inconclusive** when it straddles" in text  # how to read it, in the report itself
    assert "Figure fig-rig.png: not drawn" in text  # no figures in this folder yet
    assert (written / "runs.csv").is_file() and (written / "runs.json").is_file()


def test_report_json_carries_intervals(written):
    c1 = json.loads((written / "report.json").read_text())[0]
    kept = c1["comparisons"][0]["robust_kept"]
    assert kept["lo"] < kept["value"] < kept["hi"] and kept["method"] == "unpaired: delta method"
    assert c1["comparisons"][0]["natural_clean"]["method"] == "Wilson"
    assert c1["comparisons"][0]["natural_clean"]["n"] == 1000


def test_report_says_claims_fail_on_data_built_to_fail(tmp_path):
    root = make_outputs(tmp_path / "outputs", claims_hold=False)
    _, results = report.report(collect(root), tmp_path / "figs")
    verdicts = {c.claim: c.verdict for c in results}
    assert verdicts == {
        "C1": "does not hold",
        "C2": "does not hold",
        "C3": "does not hold",
        "C4": "reported",
        "C5": "reported",
    }


def test_no_runs_means_not_testable(tmp_path):
    report.report([], tmp_path / "figs")  # (the CLI refuses a folder without runs: exit 2)
    results = json.loads((tmp_path / "figs" / "report.json").read_text())
    assert all(c["verdict"].startswith("not testable (missing runs") for c in results)
    assert "No runs to test it" in (tmp_path / "figs" / "report.md").read_text()


def test_report_summary_is_flat_for_wandb(tmp_path):
    rows = collect(make_outputs(tmp_path / "outputs"))
    summary = report.report_summary(claims(rows))
    assert summary["C1/verdict"] == "holds"
    assert summary["C3/0/robust_top_share"] == pytest.approx(0.9, abs=1e-3)
    assert summary["C3/0/robust_top_share/lo"] < 0.9 < summary["C3/0/robust_top_share/hi"]
    assert all(isinstance(v, int | float | str) for v in summary.values())


def test_report_is_logged_as_an_offline_wandb_run(tmp_path, monkeypatch):
    from rankrobust.reporting.wandb_offline import read_offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = collect(make_outputs(tmp_path / "outputs"))
    _, results = report.report(rows, tmp_path / "figs")
    report.log_wandb(rows, results, tmp_path / "figs")
    run = read_offline_run(tmp_path / "figs" / "wandb")
    assert run["summary"]["C1/verdict"] == "holds"
    assert run["summary"]["C2/0/natural_acc_k"] == pytest.approx(0.54)
