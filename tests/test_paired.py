"""C1's paired intervals, C2's chance from the data and the reasons for "not testable", on run
folders with per-image records of known joint outcomes (each checked against an independent
computation written here)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_runs import write_run

from rankrobust import runs
from rankrobust.reporting import claims as C
from rankrobust.reporting.collect import collect
from rankrobust.reporting.paired import MIN_IMAGES, RESAMPLES, chance
from rankrobust.reporting.report import render_report
from rankrobust.results import read_metrics, write_metrics
from rankrobust.runs import Outcomes

K = 4


def recorded_run(run_dir, attack, clean, low, high_pred=None, index=None, seed=0, labels=None):
    """A finished run whose per_image.npz holds these outcomes: clean / low are bool (N,)
    correctness at k = K (labels 0 unless given; a wrong image predicts label + 1), high_pred the
    H_k predictions; metrics.json's accuracies are computed from them."""
    clean, low = np.asarray(clean, bool), np.asarray(low, bool)
    n = len(clean)
    index = np.arange(n) if index is None else np.asarray(index)
    label = np.zeros(n, int) if labels is None else np.asarray(labels)
    high = label.copy() if high_pred is None else np.asarray(high_pred)
    groups = {
        "clean": Outcomes(index, label, np.where(clean, label, label + 1)),
        "rank_sweep.low": Outcomes(index, label, np.where(low, label, label + 1)[None], [K]),
        "rank_sweep.high": Outcomes(index, label, high[None], [K]),
    }
    counts = {"n_test": n, "n_robust": n, "rank_sweep_n": n}
    write_run(run_dir, attack, clean=clean.mean(), low={K: low.mean()},
              high={K: groups["rank_sweep.high"].accuracy()[K]}, robust_acc=0.0, counts=counts,
              seed=seed)  # fmt: skip
    runs.write_per_image(run_dir / runs.PER_IMAGE, groups)
    metrics = read_metrics(run_dir)
    write_metrics(run_dir, {**metrics, "per_image": runs.PER_IMAGE})
    return run_dir


def plain_bootstrap(seeds, stat, resamples=RESAMPLES, rng_seed=0):
    """An independent percentile bootstrap: Python loops, the documented RNG stream."""
    rng = np.random.default_rng(rng_seed)
    values = []
    for _ in range(resamples):
        picked = list(rng.integers(0, len(seeds), size=len(seeds))) if len(seeds) > 1 else [0]
        per_seed = []
        for s in picked:
            n = len(seeds[s][0])
            draw = rng.integers(0, n, size=n)
            per_seed.append(stat(*[[a[i] for i in draw] for a in seeds[s]]))
        values.append(sum(per_seed) / len(per_seed))
    values.sort()
    return tuple(float(q) for q in np.percentile(values, [2.5, 97.5]))


def kept(clean, low):
    return sum(low) / sum(clean)


def diff(n_clean, n_low, r_clean, r_low):
    return kept(r_clean, r_low) - kept(n_clean, n_low)


def joint(rng, n, p_clean, p_low_given_clean, p_low_given_wrong=0.0):
    clean = rng.random(n) < p_clean
    low = np.where(clean, rng.random(n) < p_low_given_clean, rng.random(n) < p_low_given_wrong)
    return clean, low


def test_paired_interval_equals_an_independent_bootstrap(tmp_path):
    rng = np.random.default_rng(5)
    nc, nl = joint(rng, 60, 0.8, 0.3, 0.05)
    rc, rl = joint(rng, 60, 0.6, 0.9)
    recorded_run(tmp_path / "n", "none", nc, nl)
    recorded_run(tmp_path / "r", "pgd_linf", rc, rl)
    (c1,) = C.claim_c1(collect(tmp_path)).comparisons
    d = c1["kept_difference"]
    assert (d.lo, d.hi) == pytest.approx(plain_bootstrap([(nc, nl, rc, rl)], diff), abs=1e-12)
    assert d.value == pytest.approx(diff(nc, nl, rc, rl))
    want_n = plain_bootstrap([(nc, nl)], kept)
    assert (c1["natural_kept"].lo, c1["natural_kept"].hi) == pytest.approx(want_n, abs=1e-12)
    assert d.method.startswith("paired bootstrap") and "paired on 60 images" in c1["pairing"]


def test_identical_models_differ_by_exactly_zero(tmp_path):
    rng = np.random.default_rng(1)
    c, lo = joint(rng, 40, 0.7, 0.5)
    recorded_run(tmp_path / "n", "none", c, lo)
    recorded_run(tmp_path / "r", "pgd_linf", c, lo)
    d = C.claim_c1(collect(tmp_path)).comparisons[0]["kept_difference"]
    assert (d.value, d.lo, d.hi) == (0.0, 0.0, 0.0)  # exact: every resample pairs the images


def test_several_seeds_resample_seeds_then_images(tmp_path):
    rng = np.random.default_rng(2)
    data = []
    for seed in (0, 1, 2):
        nc, nl = joint(rng, 30, 0.8, 0.3)
        rc, rl = joint(rng, 30, 0.7, 0.8)
        recorded_run(tmp_path / f"n{seed}", "none", nc, nl, seed=seed)
        recorded_run(tmp_path / f"r{seed}", "pgd_linf", rc, rl, seed=seed)
        data.append((nc, nl, rc, rl))
    (c1,) = C.claim_c1(collect(tmp_path)).comparisons
    d = c1["kept_difference"]
    assert (d.lo, d.hi) == pytest.approx(plain_bootstrap(data, diff), abs=1e-12)
    assert "seeds, then images" in d.method and "3 seed(s)" in c1["pairing"]


def test_imagenet_pair_at_33_percent_stays_inside_0_1(tmp_path):
    """Two 33%-accurate models on 30 images: the unpaired rule said 'kept 100.0% [-13.2, 213.2]'.
    Paired, an L_k-correct image is a clean-correct one, so the share kept lies in [0, 1]."""
    clean = np.arange(30) < 10
    recorded_run(tmp_path / "n", "none", clean, clean)  # keeps all: 100%
    recorded_run(tmp_path / "r", "pgd_linf", np.roll(clean, 5), np.roll(np.arange(30) < 7, 5))
    result = C.claim_c1(collect(tmp_path))
    (c1,) = result.comparisons
    for key in ("natural_kept", "robust_kept"):
        assert 0.0 <= c1[key].lo <= c1[key].value <= c1[key].hi <= 1.0, key
    assert (c1["natural_kept"].lo, c1["natural_kept"].hi) == (1.0, 1.0)
    assert -1.0 <= c1["kept_difference"].lo and c1["kept_difference"].hi <= 1.0
    text = render_report(collect(tmp_path), [result], tmp_path)
    assert "paired percentile bootstrap" in text and "paired on 30 images" in text


def test_old_runs_keep_the_delta_method_flagged_unpaired(tmp_path):
    write_run(tmp_path / "n", "none", clean=0.9, low={K: 0.3}, high={K: 0.5}, robust_acc=0.0)
    write_run(tmp_path / "r", "pgd_linf", clean=0.7, low={K: 0.6}, high={K: 0.1}, robust_acc=0.3)
    rows = collect(tmp_path)
    result = C.claim_c1(rows)
    (c1,) = result.comparisons
    assert c1["kept_difference"].method == "unpaired: difference (Welch)"
    assert c1["robust_kept"].method == "unpaired: delta method" and c1["robust_kept"].lo >= 0
    assert "(unpaired)" in render_report(rows, [result], tmp_path)
    (c2,) = C.claim_c2(rows).comparisons
    assert c2["natural_chance"] == 0.1 and c2["chance_from"] == "1/classes (no per-image records)"


def test_chance_of_a_1000_class_model_on_3_classes_is_the_formula(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.choice([5, 17, 400], size=2000, p=[0.5, 0.3, 0.2])
    nat = np.where(rng.random(2000) < 0.6, labels, rng.integers(0, 1000, 2000))
    rob = np.full(2000, 17)  # one class whatever the image: at chance by construction
    # independent: count pairs directly
    want = {}
    for name, pred in (("natural", nat), ("robust", rob)):
        want[name] = sum(
            (pred == c).sum() / 2000 * (labels == c).sum() / 2000 for c in set(pred) | set(labels)
        )
    assert chance(Outcomes(np.arange(2000), labels, rob)) == pytest.approx(want["robust"])
    assert want["robust"] == pytest.approx((labels == 17).mean())  # the share of 17, not 1/1000
    ok = np.ones(2000, bool)
    recorded_run(tmp_path / "n", "none", ok, ok, high_pred=nat, labels=labels)
    recorded_run(tmp_path / "r", "pgd_linf", ok, ok, high_pred=rob, labels=labels)
    result = C.claim_c2(collect(tmp_path))
    (c2,) = result.comparisons
    assert c2["natural_chance"] == pytest.approx(want["natural"])
    assert c2["robust_chance"] == pytest.approx(want["robust"])
    assert c2["chance_from"] == "from the predictions" and c2["robust_at_chance"] == C.HOLDS
    assert "chance 1" not in render_report(collect(tmp_path), [result], tmp_path)


# ---------------------------------------------------------------------------------------------
# Every "not testable" says why.


def test_missing_runs_names_what_is_missing(tmp_path):
    write_run(tmp_path / "n", "none", clean=0.9, low={K: 0.3}, high={K: 0.5}, robust_acc=0.0)
    rows = collect(tmp_path)
    for claim, sweep in ((C.claim_c1, "L_k"), (C.claim_c2, "H_k")):
        verdict = claim(rows).verdict
        want = f"not testable (missing runs: no robust run with a rank sweep on {sweep}(x)"
        assert verdict.startswith(want)
        assert "natural: small_cnn, synthetic" in verdict
    assert C.claim_c1([]).verdict == C.not_testable(
        "missing runs: no finished full-image run has a rank sweep on L_k(x)"
    )
    # the other claims name what they miss too
    assert C.claim_c3(rows).verdict == C.not_testable(
        "missing runs: no finished full-image run has RIG (rig.enabled=true)"
    )
    assert C.claim_c4(rows).verdict == C.not_testable(
        "missing runs: no finished run trained on rank-k data (rank=k)"
    )
    assert C.claim_c5(rows).verdict == C.not_testable(
        "missing runs: no finished full-image run has SVD and Fourier basis sweeps"
    )


@pytest.mark.parametrize("records", [False, True])
def test_zero_clean_accuracy_is_an_undefined_share_naming_the_run(tmp_path, records):
    if records:
        recorded_run(tmp_path / "n", "none", np.ones(20, bool), np.zeros(20, bool))
        recorded_run(tmp_path / "r", "pgd_linf", np.zeros(20, bool), np.zeros(20, bool))
    else:
        write_run(tmp_path / "n", "none", clean=0.9, low={K: 0.3}, high={K: 0.5}, robust_acc=0.0)
        write_run(tmp_path / "r", "pgd_linf", clean=0.0, low={K: 0.0}, high={K: 0.1},
                  robust_acc=0.0)  # fmt: skip
    result = C.claim_c1(collect(tmp_path))
    want = f"share kept undefined: clean accuracy is 0 in robust run {tmp_path / 'r'}"
    assert result.verdict == C.not_testable(want)
    assert result.extra["not_testable"][0]["reason"] == want
    assert C.claim_c2(collect(tmp_path)).comparisons  # C2 still pairs them


def test_no_common_images_and_too_few_images(tmp_path):
    ok = np.ones(20, bool)
    recorded_run(tmp_path / "a" / "n", "none", ok, ok, index=np.arange(20))
    recorded_run(tmp_path / "a" / "r", "pgd_linf", ok, ok, index=np.arange(20) + 100)
    verdict = C.claim_c1(collect(tmp_path / "a")).verdict
    assert verdict.startswith("not testable (no common images: ")
    few = MIN_IMAGES - 1
    recorded_run(tmp_path / "b" / "n", "none", ok, ok, index=np.arange(20))
    recorded_run(tmp_path / "b" / "r", "pgd_linf", ok, ok, index=np.arange(20) + 20 - few)
    verdict = C.claim_c1(collect(tmp_path / "b")).verdict
    assert verdict.startswith(f"not testable (too few images: {few} common test images")


def test_no_common_ranks(tmp_path):
    write_run(tmp_path / "n", "none", clean=0.9, low={2: 0.3}, high={2: 0.5}, robust_acc=0.0)
    write_run(tmp_path / "r", "pgd_linf", clean=0.7, low={8: 0.6}, high={8: 0.1}, robust_acc=0.3)
    rows = collect(tmp_path)
    assert C.claim_c1(rows).verdict == C.not_testable(
        "no common ranks in the two models' L_k sweeps"
    )
    assert C.claim_c2(rows).verdict == C.not_testable(
        "no common ranks in the two models' H_k sweeps"
    )
    text = render_report(rows, C.claims(rows), tmp_path)
    assert "- not testable: natural: small_cnn, synthetic vs robust" in text


def test_c4_with_one_training_rank_says_so(tmp_path):
    from fake_runs import make_outputs

    rows = [r for r in collect(make_outputs(tmp_path / "outputs")) if r.get("rank") in (None, 2)]
    verdict = C.claim_c4(rows).verdict
    assert verdict.startswith("not testable (missing runs: one training rank per series (")
    assert "(k=2)" in verdict and verdict.endswith("C4 needs two)")


def test_the_rank_accuracy_figure_draws_the_paired_share_kept(tmp_path):
    """fig-rank-accuracy's share-kept error bars are C1's paired intervals (groups with records),
    the delta method only for runs without them."""
    rng = np.random.default_rng(9)
    nc, nl = joint(rng, 50, 0.7, 0.6, 0.1)
    recorded_run(tmp_path / "n", "none", nc, nl)
    (group,) = [g for g in C.sweep_groups(collect(tmp_path), "low") if g.kind == "natural"]
    got = group.kept_paired(K)
    assert (got.lo, got.hi) == pytest.approx(plain_bootstrap([(nc, nl)], kept), abs=1e-12)
    assert got.value == pytest.approx(kept(nc, nl))
    (tmp_path / "n" / runs.PER_IMAGE).unlink()  # an older folder: today's delta method
    (group,) = [g for g in C.sweep_groups(collect(tmp_path), "low") if g.kind == "natural"]
    assert group.kept_paired(K) == group.kept(K)
