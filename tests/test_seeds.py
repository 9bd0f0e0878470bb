"""Seeds are seeds: two runs of one identity and one seed are one result (the newer), in the
claims, the figures' groups, runs.csv / runs.json and report.md; real seeds still count."""

from __future__ import annotations

import csv
import json
import os
import shutil

import pytest
from fake_runs import RANKS, write_run

from rankrobust.reporting import claims as C
from rankrobust.reporting import report
from rankrobust.reporting.collect import collect, write_table
from rankrobust.reporting.seeds import duplicates
from rankrobust.results import read_metrics, write_metrics
from rankrobust.run_folders import FILENAME

LOW = {k: min(0.9, 0.1 + 0.8 * (k / 32) ** 0.5) for k in RANKS}
HIGH = {k: 0.1 for k in RANKS}


def _stamp(run_dir, when: str) -> None:
    metrics = read_metrics(run_dir / FILENAME)
    write_metrics(run_dir, {**metrics, "finished_at": when})


def _seed0_twice(root, first=0.29, second=0.29):
    """The same seed-0 configuration trained in two job folders (a sweep rerun in another
    order), the second finishing later."""
    old = write_run(root / "sweep" / "0", "none", first, LOW, HIGH, 0.0, seed=0)
    new = write_run(root / "sweep" / "3", "none", second, LOW, HIGH, 0.0, seed=0)
    _stamp(old, "2026-01-01T10:00:00+00:00")
    _stamp(new, "2026-01-01T12:00:00+00:00")
    return old, new


def test_duplicated_seed_is_one_result_not_two_seeds(tmp_path):
    old, new = _seed0_twice(tmp_path, first=0.28, second=0.29)
    rows = collect(tmp_path)
    (g,) = C.sweep_groups(rows, "low")
    assert [r["run_dir"] for r in g.runs] == [str(new)]  # the newer one is kept
    assert "seeds" not in g.label
    clean = g.clean()
    assert clean.method != "t over seeds" and clean.value == pytest.approx(0.29)
    assert clean.hi - clean.lo > 0.01  # Wilson on n images, not a zero-width mean of copies
    kept = g.kept(4)
    assert kept.hi - kept.lo > 0.01
    assert [r["run_dir"] for r in C.usable(rows)] == [str(new)]


def test_duplicates_are_marked_in_the_table_not_hidden(tmp_path):
    old, new = _seed0_twice(tmp_path)
    rows = collect(tmp_path)
    by_dir = {r["run_dir"]: r for r in rows}
    assert by_dir[str(old)]["duplicate_of"] == str(new) and by_dir[str(new)]["duplicate_of"] is None
    csv_path, json_path = write_table(rows, tmp_path / "out")
    with csv_path.open() as fh:
        table = {r["run_dir"]: r["duplicate_of"] for r in csv.DictReader(fh)}
    assert table == {str(old): str(new), str(new): ""}
    listed = {r["run_dir"]: r["duplicate_of"] for r in json.loads(json_path.read_text())}
    assert listed == {str(old): str(new), str(new): None}


def test_report_says_which_duplicates_were_collapsed(tmp_path):
    old, new = _seed0_twice(tmp_path)
    write_run(tmp_path / "rob", "pgd_linf", 0.7, LOW, HIGH, 0.4)
    path, _ = report.report(collect(tmp_path), tmp_path / "out")
    text = path.read_text()
    assert "Duplicate runs collapsed" in text
    assert f"| `{old}` | `{new}` |" in text
    assert "mean of 2 seeds" not in text


def test_report_says_nothing_of_duplicates_when_there_are_none(tmp_path):
    write_run(tmp_path / "s0", "none", 0.8, LOW, HIGH, 0.0, seed=0)
    write_run(tmp_path / "s1", "none", 0.82, LOW, HIGH, 0.0, seed=1)
    path, _ = report.report(collect(tmp_path), tmp_path / "out")
    assert "Duplicate runs" not in path.read_text()


def test_real_seeds_still_count_as_seeds_beside_a_copy(tmp_path):
    """Seeds 0 and 1, and a copied seed-0 folder: two seeds, the copy dropped."""
    s0 = write_run(tmp_path / "s0", "none", 0.80, LOW, HIGH, 0.0, seed=0)
    write_run(tmp_path / "s1", "none", 0.84, LOW, HIGH, 0.0, seed=1)
    copy = tmp_path / "copied" / "s0"
    shutil.copytree(s0, copy)
    os.utime(copy / FILENAME, (2e9, 2e9))  # no finished_at: the copy's file is newer
    rows = collect(tmp_path)
    (g,) = C.sweep_groups(rows, "low")
    assert sorted(r["seed"] for r in g.runs) == [0, 1] and "mean of 2 seeds" in g.label
    assert {r["run_dir"] for r in g.runs} == {str(copy), str(tmp_path / "s1")}
    assert g.clean().value == pytest.approx(0.82)
    ((dropped, kept),) = duplicates(rows)
    assert (dropped["run_dir"], kept["run_dir"]) == (str(s0), str(copy))


def test_the_kept_run_does_not_depend_on_the_order_found(tmp_path):
    old, new = _seed0_twice(tmp_path)
    rows = collect(tmp_path)
    for order in (rows, rows[::-1]):
        ((dropped, kept),) = duplicates(order)
        assert (dropped["run_dir"], kept["run_dir"]) == (str(old), str(new))


def test_a_rank_series_rerun_is_not_a_zero_width_trend(tmp_path):
    """rank=1,8 then rank=8,1 into one sweep: each rank's seed 0 twice -> one result each."""
    for job, rank in ((0, 1), (1, 8), (2, 8), (3, 1)):
        write_run(tmp_path / "sweep" / str(job), "none", 0.2 + 0.01 * rank, {4: 0.1}, {4: 0.1},
                  0.0, rank=rank, seed=0)  # fmt: skip
    (series,) = C.train_rank_groups(collect(tmp_path))
    assert series["ks"] == [1, 8] and series["n_runs"] == 2
    assert all(e.hi - e.lo > 0.01 for e in series["clean"])
    assert "seeds" not in series["label"]


def test_failed_runs_are_not_counted_as_duplicates(tmp_path):
    done = write_run(tmp_path / "a", "none", 0.8, LOW, HIGH, 0.0, seed=0)
    failed = write_run(tmp_path / "b", "none", 0.8, LOW, HIGH, 0.0, seed=0)
    write_metrics(failed, {**read_metrics(failed / FILENAME), "status": "failed"})
    rows = collect(tmp_path)
    assert duplicates(rows) == [] and [r["run_dir"] for r in C.usable(rows)] == [str(done)]
