"""Readers of run folders (collect -> figures / report, the sweep summary, results status) meet
runs in every valid arrangement: the root itself a run, nested sweeps, links and link loops,
odd names, no .hydra, empty files, files of a newer version, read-only trees."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fake_runs import RANKS, make_outputs, write_run

from rankrobust import results
from rankrobust.launch.summary import summarize_sweep
from rankrobust.reporting import collect, report
from rankrobust.reporting.figures import images as figure_images
from rankrobust.run_folders import find_run_dirs


def _run(path: Path, attack: str = "none", **extra) -> Path:
    write_run(path, attack, clean=0.8, low={k: 0.5 for k in RANKS},
              high={k: 0.1 for k in RANKS}, robust_acc=0.1)  # fmt: skip
    if extra:
        metrics = json.loads((path / "metrics.json").read_text())
        (path / "metrics.json").write_text(json.dumps({**metrics, **extra}))
    return path


def _rows(*roots) -> dict[str, dict]:
    return {r["run_dir"]: r for r in collect.collect(list(roots))}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if not p.is_symlink()
    }


def test_the_root_itself_a_run_or_its_metrics_json(tmp_path):
    run = _run(tmp_path / "one run")
    for root in (run, run / "metrics.json", str(run)):
        rows = collect.collect(root)
        assert [r["run_dir"] for r in rows] == [str(run)] and rows[0]["status"] == "ok"
    assert results.main(["status", str(run / "metrics.json")]) == 0


def test_nested_sweeps_and_a_run_holding_sub_runs(tmp_path):
    outer = tmp_path / "multirun" / "2026-01-01" / "10-00-00"
    outer.mkdir(parents=True)
    (outer / "multirun.yaml").write_text("hydra: {}\n")
    job = _run(outer / "0_rank=2")
    inner = job / "multirun" / "2026-01-02" / "11-00-00"  # a sweep started inside a job folder
    inner.mkdir(parents=True)
    (inner / "multirun.yaml").write_text("hydra: {}\n")
    sub = _run(inner / "0_seed=1")
    rows = _rows(tmp_path)
    assert set(rows) == {str(job), str(sub)}
    assert rows[str(job)]["group"] == str(outer) and rows[str(sub)]["group"] == str(inner)
    summary = summarize_sweep(outer)
    assert sorted(j["job"] for j in summary["jobs"]) == [
        "0_rank=2", "0_rank=2/multirun/2026-01-02/11-00-00/0_seed=1"]  # fmt: skip


def test_links_to_runs_are_followed_and_each_run_counted_once(tmp_path):
    elsewhere = _run(tmp_path / "elsewhere" / "robust", "pgd_linf")
    root = make_outputs(tmp_path / "outputs")
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)  # only reached by link
    real = root / "runs" / "2026-01-01" / "10-00-00_natural"
    (root / "a_link_to_natural").symlink_to(real, target_is_directory=True)  # reached twice
    (root / "runs" / "loop").symlink_to(root, target_is_directory=True)  # a loop: must end
    rows = _rows(root)
    assert len(rows) == 8 + 1
    assert str(root / "linked") in rows and str(real) in rows
    assert str(root / "a_link_to_natural") not in rows
    twice = _rows(root, root / "runs", real)  # overlapping roots: still once each
    assert set(twice) == set(rows)


def test_odd_names_no_hydra_and_a_sweep_without_hydra_folders(tmp_path):
    sweep = tmp_path / "multirun" / "sweep with spaces"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    names = ["0_name=résumé", "1_name=数据 集", "2_name=a b"]
    jobs = [_run(sweep / n) for n in names]
    for job in jobs:  # hydra.output_subdir=null: no .hydra folder at all
        shutil.rmtree(job / ".hydra")
    rows = _rows(tmp_path)
    assert set(rows) == {str(j) for j in jobs} and {r["status"] for r in rows.values()} == {"ok"}
    summary = summarize_sweep(sweep)
    assert sorted(j["job"] for j in summary["jobs"]) == sorted(names)
    assert summary["n_ok"] == 3 and all(j["overrides"] == [] for j in summary["jobs"])
    out = tmp_path / "table"
    assert collect.main([str(tmp_path), "--out", str(out)]) == 0
    assert "数据 集" in (out / "runs.csv").read_text(encoding="utf-8")


def test_empty_files_are_rows_not_crashes(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    empty_metrics = _run(sweep / "0_a=1")
    (empty_metrics / "metrics.json").write_text("")
    list_metrics = _run(sweep / "1_a=2")
    (list_metrics / "metrics.json").write_text("[1, 2]")
    empty_overrides = _run(sweep / "2_a=3")
    (empty_overrides / ".hydra" / "overrides.yaml").write_text("")
    empty_config = sweep / "3_a=4"
    (empty_config / ".hydra").mkdir(parents=True)
    (empty_config / ".hydra" / "config.yaml").write_text("")
    (empty_config / ".hydra" / "overrides.yaml").write_text("- a=4\n")
    rows = _rows(sweep)
    assert rows[str(empty_metrics)]["status"] == "invalid"
    assert rows[str(list_metrics)]["status"] == "invalid"
    assert rows[str(empty_overrides)]["status"] == "ok"
    assert rows[str(empty_config)]["status"] == "missing"
    jobs = {j["job"]: j for j in summarize_sweep(sweep)["jobs"]}
    assert jobs["0_a=1"]["status"] == "missing" and jobs["1_a=2"]["status"] == "invalid"
    assert jobs["2_a=3"]["overrides"] == [] and jobs["3_a=4"]["overrides"] == ["a=4"]
    assert results.run_status(list_metrics) is None


def test_a_newer_metrics_json_keeps_the_readers_own_fields(tmp_path, capsys):
    newer = {"schema": 2, "group": "from the file", "rig_npz": "/elsewhere/rig.npz",
             "run_dir": "/another/machine/run", "future": {"nested": [1, {"a": None}]},
             "timings": {"total": 3.0, "future_phase": 1.0}}  # fmt: skip
    run = _run(tmp_path / "outputs" / "runs" / "new", **newer)
    (row,) = collect.collect(tmp_path / "outputs")
    assert row["status"] == "ok" and row["future"] == newer["future"]
    assert row["run_dir"] == str(run) and row["group"] is None and row["rig_npz"] is None
    out = tmp_path / "figs"
    assert report.main([str(tmp_path / "outputs"), "--out", str(out)]) == 0
    assert (out / "report.md").is_file() and "Traceback" not in capsys.readouterr().err


def test_readers_write_nothing_into_read_only_run_folders(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    before = _snapshot(root)
    modes = {}
    for p in [root, *root.rglob("*")]:
        modes[p] = p.stat().st_mode
        p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
    try:
        rows = collect.collect(root)
        sweep = next(root.glob("multirun/*/*"))
        summarize_sweep(sweep)
        results.main(["status", str(sweep / "0_rank=2")])
        out = tmp_path / "figs"
        assert report.main([str(root), "--out", str(out)]) == 0
    finally:
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))
    assert len(rows) == 8 and _snapshot(root) == before


def _png_tree(root: Path) -> Path:
    from PIL import Image

    for cls in ("cat", "dog"):
        (root / "test" / cls).mkdir(parents=True)
        pixels = np.full((8, 8, 3), 40 if cls == "cat" else 200, np.uint8)
        Image.fromarray(pixels).save(root / "test" / cls / "0.png")
    return root


def test_figure_images_from_a_folder_or_a_tarball(tmp_path):
    folder = _png_tree(tmp_path / "pets")
    tarball = tmp_path / "pets.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="pets")
    for source in (folder, tarball):
        x, what = figure_images._first_images(str(source), 2)
        assert x.shape == (2, 3, 8, 8) and "synthetic" not in what, what
        assert sorted(np.round(x.mean((1, 2, 3)) * 255).astype(int)) == [40, 200]


def test_find_run_dirs_skips_a_runs_own_folders_unless_they_hold_a_run(tmp_path):
    run = _run(tmp_path / "run")
    (run / "checkpoints").mkdir()
    (run / "wandb" / "run-1" / ".hydra").mkdir(parents=True)  # not a run: a logger's copy
    figures_run = _run(run / "figures")  # a folder of a skipped name that is a run
    os.makedirs(run / ".git" / "objects")
    assert find_run_dirs([tmp_path]) == [run, figures_run]
    assert find_run_dirs([tmp_path / "no such folder"]) == []


@pytest.mark.parametrize("as_link", [False, True])
def test_results_status_of_a_linked_or_file_path(tmp_path, as_link):
    run = _run(tmp_path / "run")
    path = run
    if as_link:
        path = tmp_path / "link"
        path.symlink_to(run, target_is_directory=True)
    assert results.run_status(path) == "ok" == results.run_status(path / "metrics.json")
