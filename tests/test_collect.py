"""collect: every run folder under a tree becomes one row, failed and unfinished jobs included."""

from __future__ import annotations

import csv
import json

from fake_runs import make_outputs

from rankrobust import collect


def test_collect_finds_single_runs_and_multirun_jobs(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    rows = collect.collect(root)
    by_status = {}
    for r in rows:
        by_status.setdefault(r["status"], []).append(r)
    assert len(rows) == 8
    assert len(by_status["ok"]) == 5
    assert [r["rank"] for r in by_status["failed"]] == [40]
    assert "1 <= rank <= 32" in by_status["failed"][0]["error"]
    assert [r["rank"] for r in by_status["running"]] == [16]
    missing = by_status["missing"]
    assert len(missing) == 1 and missing[0]["rank"] == 4 and missing[0]["attack"] == "none"
    assert "no metrics.json" in missing[0]["error"]
    kinds = {r["attack"]: r["kind"] for r in rows}
    assert kinds == {"none": "natural", "pgd_linf": "robust"}
    sweep_jobs = [r for r in rows if r["group"]]
    assert len(sweep_jobs) == 6 and all(r["group"].endswith("11-00-00") for r in sweep_jobs)


def test_collect_writes_csv_and_json(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    rc = collect.main([str(root), "--out", str(tmp_path / "table")])
    assert rc == 0
    with (tmp_path / "table" / "runs.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 8
    natural = next(r for r in table if r["run_dir"].endswith("natural"))
    assert float(natural["clean_acc"]) == 0.9
    assert float(natural["low@32"]) == 0.9 and "high@4" in natural
    assert float(natural["time_fit"]) == 10.0 and natural["eval_attack"] == "pgd_linf"
    assert float(natural["rig_top4_share"]) > 0
    assert {r["status"] for r in table} == {"ok", "failed", "running", "missing"}
    rows = json.loads((tmp_path / "table" / "runs.json").read_text())
    natural = next(r for r in rows if r["run_dir"].endswith("natural"))
    assert natural["rank_sweep"]["low"]["4"] > 0  # nested in JSON
    assert natural["perturbation_spectrum"]["perturbation"]


def test_collect_keeps_unreadable_metrics_visible(tmp_path):
    bad = tmp_path / "runs" / "broken"
    bad.mkdir(parents=True)
    (bad / "metrics.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    rows = collect.collect(tmp_path)
    assert [r["status"] for r in rows] == ["invalid"]
    assert collect.collect(tmp_path / "nonexistent") == []
