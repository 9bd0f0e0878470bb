"""figures: every figure drawn from synthetic run folders; the claims report's verdicts."""

from __future__ import annotations

import json

import pytest
from fake_runs import make_outputs

from rankrobust import figures
from rankrobust import report as claims_report
from rankrobust.collect import collect


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = make_outputs(tmp_path_factory.mktemp("hold") / "outputs")
    out = root / "figures"
    assert figures.main([str(root), "--out", str(out), "--report"]) == 0
    return out


@pytest.mark.parametrize("name", figures.FIGURES)
def test_every_figure_is_a_real_png_and_pdf(drawn, name):
    png, pdf = drawn / f"fig-{name}.png", drawn / f"fig-{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_report_says_claims_hold_on_data_built_to_hold(drawn):
    text = (drawn / "report.md").read_text()
    verdicts = {c["claim"]: c["verdict"] for c in json.loads((drawn / "report.json").read_text())}
    assert verdicts == {"C1": "holds", "C2": "holds", "C3": "holds", "C4": "reported"}
    assert "| C1 | **holds** |" in text and "(fig-rank-accuracy.png)" in text
    assert "kept natural 42.5% vs robust 75.0%" in text  # 0.3825/0.9 vs 0.525/0.7 at k=4
    assert "clean rises" in text and "robust falls" in text
    assert "Map cleanliness" in text and "| robust | 10-10-00_robust |" in text
    assert "| failed |" in text and "| running |" in text and "| missing |" in text
    assert (drawn / "runs.csv").is_file() and (drawn / "runs.json").is_file()


def test_report_says_claims_fail_on_data_built_to_fail(tmp_path):
    root = make_outputs(tmp_path / "outputs", claims_hold=False)
    _, results = claims_report.report(collect(root), tmp_path / "figs")
    verdicts = {c["claim"]: c["verdict"] for c in results}
    assert verdicts == {
        "C1": "does not hold",
        "C2": "does not hold",
        "C3": "does not hold",
        "C4": "reported",
    }


def test_missing_inputs_skip_figures_and_claims_are_not_testable(tmp_path, capsys):
    out = tmp_path / "figs"
    assert figures.main([str(tmp_path / "no-runs"), "--out", str(out), "--report"]) == 0
    printed = capsys.readouterr().out
    assert "fig-rig skipped" in printed and "fig-train-rank skipped" in printed
    # rank-examples needs no runs: it falls back to synthetic images
    assert (out / "fig-rank-examples.png").is_file()
    assert not (out / "fig-rank-accuracy.png").exists()
    results = json.loads((out / "report.json").read_text())
    assert {c["verdict"] for c in results} == {claims_report.NOT_TESTABLE}
    assert "not testable (missing runs)" in (out / "report.md").read_text()


def test_report_summary_is_flat_for_wandb(tmp_path):
    rows = collect(make_outputs(tmp_path / "outputs"))
    summary = claims_report.report_summary(claims_report.claims(rows))
    assert summary["C1/verdict"] == "holds"
    assert summary["C3/0/robust_top4_share"] == pytest.approx(0.9)
    assert all(isinstance(v, int | float | str) for v in summary.values())


def test_report_is_logged_as_an_offline_wandb_run(tmp_path, monkeypatch):
    from rankrobust.wandb_offline import read_offline_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = collect(make_outputs(tmp_path / "outputs"))
    _, results = claims_report.report(rows, tmp_path / "figs")
    claims_report.log_wandb(rows, results, tmp_path / "figs")
    run = read_offline_run(tmp_path / "figs" / "wandb")
    assert run["summary"]["C1/verdict"] == "holds"
    assert run["summary"]["C2/0/natural_acc_k"] == pytest.approx(0.54)


def test_pipeline_run_feeds_the_perturbation_spectrum_figure(tmp_path):
    """analysis.perturbation_spectrum (on by default) -> metrics.json -> the figure."""
    from helpers import FAST, make_cfg

    from rankrobust import task
    from rankrobust.results import read_metrics

    overrides = [*FAST, "dataset.image_size=16", "dataset.n_train=256", "dataset.n_test=64"]
    overrides += ["trainer.max_epochs=1", "sweep.enabled=false", "analysis.n_images=16"]
    task.run(make_cfg(*overrides), tmp_path / "run")
    spec = read_metrics(tmp_path / "run")["perturbation_spectrum"]
    assert spec["n_images"] == 16 and len(spec["clean"]) == len(spec["perturbation"]) == 16
    assert figures.main([str(tmp_path), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "fig-perturbation-spectrum.png").stat().st_size > 10_000
