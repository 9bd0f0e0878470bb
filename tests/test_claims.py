"""claims: grouping, pairing, intervals and three-valued verdicts on synthetic run folders."""

from __future__ import annotations

import math

import pytest
from fake_runs import RANKS, make_outputs, write_run

from rankrobust.reporting import claims as C
from rankrobust.reporting import intervals as I
from rankrobust.reporting.claims import grouping as G
from rankrobust.reporting.collect import collect


def test_wilson_matches_the_textbook_interval():
    lo, hi = I.wilson(0.5, 100)  # Wilson (1927) / Agresti-Coull tables: [0.4038, 0.5962]
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = I.wilson(0.0, 20)  # stays inside [0, 1] where p +- z se would not
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    with pytest.raises(ValueError, match="n=0"):
        I.wilson(0.5, 0)


def test_t_quantiles_and_mean_interval():
    assert I.t975(1) == pytest.approx(12.706) and I.t975(math.inf) == pytest.approx(1.96, 1e-3)
    assert I.t975(60) == pytest.approx(2.000, abs=2e-3) and I.t975(2.7) == I.t975(2)
    e = I.mean_of([0.5, 0.6, 0.7])  # sd 0.1, se 0.0577, t(2) 4.303
    assert e.value == pytest.approx(0.6) and e.hi - e.value == pytest.approx(0.2484, abs=1e-3)
    assert I.mean_of([0.1, 0.9]).lo == 0.0  # clipped to the accuracy range


def test_verdicts_are_three_valued():
    tight, wide = I.binomial(0.3, 10_000), I.binomial(0.3, 20)
    assert I.above(tight, 0.25) == I.HOLDS and I.above(tight, 0.35) == I.FAILS
    assert I.above(wide, 0.25) == I.INCONCLUSIVE  # the interval straddles the threshold
    assert I.above(I.binomial(0.3, None), 0.0) == I.INCONCLUSIVE  # n unknown
    assert I.within(tight, 0.25, 0.35) == I.HOLDS and I.within(tight, 0.4, 0.5) == I.FAILS
    assert I.all_of([I.HOLDS, I.INCONCLUSIVE]) == I.INCONCLUSIVE
    assert I.all_of([I.FAILS, I.INCONCLUSIVE]) == I.FAILS  # one failure decides
    d = I.difference(tight, tight)
    assert d.value == 0 and d.lo < 0 < d.hi


def _pair(root, n_nat=True, n_rob=True, **cfg):
    """A natural/robust pair where C1 holds clearly (kept 42.5% vs 75%)."""
    low_n = {k: min(0.9, 0.1 + 0.8 * (k / 32) ** 0.5) for k in RANKS}
    low_r = {k: min(0.7, 0.35 + 0.35 * (k / 8)) for k in RANKS}
    high = {k: 0.1 for k in RANKS}
    write_run(root / "nat", "none", 0.9, low_n, high, 0.0, counts=n_nat, **cfg)
    write_run(root / "rob", "pgd_linf", 0.7, low_r, high, 0.4, counts=n_rob, **cfg)


def test_runs_of_different_training_never_average_or_pair(tmp_path):
    _pair(tmp_path / "cifar", dataset="cifar10", max_epochs=3)
    write_run(tmp_path / "debug", "none", 0.2, {4: 0.1}, {4: 0.1}, 0.0, dataset="cifar10",
              max_epochs=1)  # fmt: skip
    _pair(tmp_path / "synth")  # dataset synthetic
    gs = C.sweep_groups(collect(tmp_path), "low")
    assert sorted(len(g.runs) for g in gs) == [1] * 5  # nothing averaged
    debug = next(g for g in gs if g.identity["max_epochs"] == 1)
    assert "max_epochs=1" in debug.label and debug.dataset == "CIFAR-10"
    pairs = C.pairs(gs)
    assert {(n.dataset, r.dataset) for n, r in pairs} == {("CIFAR-10", "CIFAR-10"),
                                                          ("synthetic", "synthetic")}  # fmt: skip
    assert all(n.pair_key == r.pair_key for n, r in pairs)


def test_seeds_average_with_a_t_interval(tmp_path):
    for seed, clean in ((0, 0.80), (1, 0.82), (2, 0.84)):
        write_run(tmp_path / f"s{seed}", "none", clean, {4: 0.4}, {4: 0.3}, 0.0, seed=seed)
    (g,) = C.sweep_groups(collect(tmp_path), "low")
    e = g.clean()
    assert len(g.runs) == 3 and "mean of 3 seeds" in g.label
    assert e.method == "t over seeds" and e.value == pytest.approx(0.82)
    assert e.hi - e.value == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)


def test_dataset_display_names():
    folder = {
        "dataset": "image_folder",
        "resolved_config": {"dataset": {"root": "/d/cifar10-jpeg"}},
    }
    assert C.dataset_name(folder) == "CIFAR-10" and C.dataset_name({"dataset": "cifar10"})
    assert C.dataset_name({"dataset": "cifar10"}) == "CIFAR-10"
    other = {"dataset": "image_folder", "resolved_config": {"dataset": {"root": "/d/pets"}}}
    assert C.dataset_name(other) == "image folder pets"
    assert C.dataset_name({"dataset": "mnist"}) == "mnist"
    assert G.data_key(folder) != G.data_key(other)  # two image folders never group together


def test_small_samples_make_c1_inconclusive(tmp_path):
    small = {"n_test": 30, "n_robust": 30, "rank_sweep_n": 30}
    _pair(tmp_path, n_nat=small, n_rob=small)
    c1 = C.claim_c1(collect(tmp_path))
    (comp,) = c1.comparisons
    assert comp["kept_difference"].value == pytest.approx(0.325, abs=1e-3)
    assert comp["kept_difference"].lo < C.MARGIN_C1 < comp["kept_difference"].hi
    assert c1.verdict == I.INCONCLUSIVE


def test_unknown_counts_are_inconclusive_only_where_they_matter(tmp_path):
    _pair(tmp_path, n_rob=False)
    rows = collect(tmp_path)
    assert C.claim_c1(rows).verdict == I.INCONCLUSIVE  # the robust side's n is needed
    c2 = C.claim_c2(rows)  # natural on H_4 = 10%: fails whatever the robust model's n
    assert c2.comparisons[0]["robust_at_chance"] == I.INCONCLUSIVE
    assert c2.verdict == I.FAILS


def test_partial_runs_count_interrupted_and_failed_do_not(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    rows = collect(root)
    for r in rows:
        if r["run_dir"].endswith("robust"):
            r["status"] = "interrupted"
    want = "missing runs: no robust run with a rank sweep on L_k(x) (have: natural: small_cnn, "
    assert C.claim_c1(rows).verdict == C.not_testable(want + "synthetic)")
    for r in rows:
        if r["status"] == "interrupted":
            r["status"] = "partial"
    assert C.claim_c1(rows).verdict == I.HOLDS


def test_c3_share_interval_comes_from_the_rig_images(tmp_path):
    rows = collect(make_outputs(tmp_path / "outputs"))
    robust = next(r for r in rows if r["run_dir"].endswith("robust"))
    e = C.top_share(robust)
    assert e.method == "t over images" and e.n == 3 and e.value == pytest.approx(0.9, abs=1e-3)
    robust["rig_npz"] = None  # metrics.json alone: the share without its spread
    assert not C.top_share(robust).known


def test_runs_differing_in_a_setting_are_not_seeds_of_one_identity():
    """model.width=8,32 attack=none (seed 0 each): two identities, labelled by the width; the
    same config with seeds 0 and 1 (and another output folder): one identity, two seeds."""
    from fake_runs import composed

    from rankrobust.results import run_identity

    def row(width: int, seed: int, folder: str) -> dict:
        cfg = composed("none", seed=seed)
        cfg["model"]["width"] = width
        cfg["hydra"] = {"run": {"dir": folder}}
        ident = run_identity(cfg)
        return {**ident, "status": "ok", "clean_acc": 0.5, "n_test": 100, "resolved_config": cfg}

    split = G.groups([row(8, 0, "a"), row(32, 0, "b")])
    assert len(split) == 2 and all(len(g.runs) == 1 for g in split)
    assert {"model.width=8" in g.label for g in split} == {True, False}
    seeds = G.groups([row(8, 0, "a"), row(8, 1, "b")])
    assert len(seeds) == 1 and "mean of 2 seeds" in seeds[0].label


def test_a_one_batch_limit_is_a_limit():
    from rankrobust.results import _limits

    assert _limits({"limit_train_batches": 1}) == "limit_train_batches=1"  # one batch
    assert _limits({"limit_train_batches": 1.0}) is None  # the whole epoch
    assert _limits({"limit_train_batches": 0.5, "max_steps": -1}) == "limit_train_batches=0.5"
