"""collect: every run folder under a tree becomes one row, failed and unfinished jobs included."""

from __future__ import annotations

import csv
import json

from fake_runs import make_outputs

from rankrobust.reporting import collect


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


def test_failed_run_with_its_identity_is_failed_and_empty_config_is_invalid(tmp_path):
    from fake_runs import _config

    from rankrobust.identity import IDENTITY_KEYS
    from rankrobust.results import write_metrics

    failed = {"clean_acc": None, "robust_acc": None, "timings": {"total": 0.1}}
    failed |= {"status": "failed", "error": "RuntimeError: CUDA out of memory"}
    write_metrics(tmp_path / "a", {**failed, "config": _config("fgsm_rs", seed=3)})
    write_metrics(tmp_path / "b", {**failed, "config": {}})
    a, b = collect.collect(tmp_path)
    assert a["status"] == "failed" and "out of memory" in a["error"]
    assert set(IDENTITY_KEYS) <= set(a) and a["attack"] == "fgsm_rs" and a["seed"] == 3
    assert a["kind"] == "robust"
    assert b["status"] == "invalid" and "config lacks" in b["error"]


def test_partial_and_interrupted_runs_keep_their_status(tmp_path):
    from fake_runs import _config

    from rankrobust.results import write_metrics

    for status, acc in (("partial", 0.5), ("interrupted", None)):
        write_metrics(
            tmp_path / status,
            {"status": status, "error": None, "clean_acc": acc, "robust_acc": acc,
             "config": _config("none"), "timings": {}},
        )  # fmt: skip
    rows = {r["status"]: r for r in collect.collect(tmp_path)}
    assert set(rows) == {"partial", "interrupted"} and rows["partial"]["clean_acc"] == 0.5


def test_missing_job_identity_comes_from_the_hydra_config_even_unresolvable(tmp_path):
    job = tmp_path / "sweep" / "0_rank=2"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: cifar10\n  n_train: null\nmodel:\n  name: preact_resnet18\n"
        "attack:\n  name: fgsm_rs\nrank: 2\nseed: ${oc.env:NO_SUCH_VAR_RR,7}\n"
        "transform:\n  mode: low\n  apply_to: [train, test]\ntrain: true\n"
        "trainer:\n  max_epochs: 15\n  default_root_dir: ${hydra:runtime.output_dir}\n"
        "name: ${dataset.name}-${model.name}\n"
    )
    (job / ".hydra" / "overrides.yaml").write_text("- experiment=cifar10_robust\n- rank=2\n")
    (row,) = collect.collect(tmp_path)
    assert row["status"] == "missing" and row["kind"] == "robust"
    assert (row["dataset"], row["model"], row["rank"], row["max_epochs"]) == (
        "cifar10",
        "preact_resnet18",
        2,
        15,
    )
    assert row["experiment"] == "cifar10_robust" and row["apply_to"] == ["train", "test"]


def test_collect_has_one_robustness_rule():
    import inspect

    from rankrobust import identity

    assert not hasattr(collect, "is_robust") or collect.is_robust is identity.is_robust
    assert "spectra.npz" not in inspect.getsource(collect)


def test_resolved_config_falls_back_to_the_hydra_config(tmp_path):
    """metrics.json without resolved_config (older runs): the dataset root still shows."""
    from fake_runs import _config

    from rankrobust.reporting.claims import dataset_name
    from rankrobust.results import write_metrics

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: image_folder\n  root: /data/cifar10-jpeg.tar.gz\n"
    )
    config = {**_config("none"), "dataset": "image_folder"}
    write_metrics(run, {"status": "ok", "error": None, "clean_acc": 0.5, "robust_acc": 0.0,
                        "config": config, "timings": {}})  # fmt: skip
    (row,) = collect.collect(tmp_path)
    assert row["resolved_config"]["dataset"]["root"] == "/data/cifar10-jpeg.tar.gz"
    assert dataset_name(row) == "CIFAR-10"
