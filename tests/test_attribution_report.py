"""C3's attribution part in the report: the method x metric table with paired intervals and the
verdict of "RIG maps are cleaner than vanilla gradients" (reporting.claims.attribution)."""

from __future__ import annotations

import numpy as np
import pytest
from fake_runs import RANKS, write_run

from rankrobust.reporting import report
from rankrobust.reporting.claims import claims
from rankrobust.reporting.claims.attribution import cleaner_maps, metric_table
from rankrobust.reporting.collect import collect
from rankrobust.results import read_metrics, write_metrics

N = 12


def _attribution(seed: int, gini_shift: float, entropy_shift: float) -> dict:
    rng = np.random.default_rng(seed)
    base = {"sparseness": rng.uniform(0.3, 0.5, N), "complexity": rng.uniform(5.0, 6.0, N),
            "diffid": rng.uniform(0.0, 0.2, N), "mprt": rng.uniform(-0.1, 0.2, N)}  # fmt: skip
    per_image = {"gradient": {k: v.tolist() for k, v in base.items()}}
    for method in ("ig", "rig", "sig"):
        noise = {k: rng.normal(0, 0.01, N) for k in base}
        shift = {"sparseness": gini_shift, "complexity": entropy_shift, "diffid": 0.1, "mprt": 0}
        per_image[method] = {k: (base[k] + shift[k] + noise[k]).tolist() for k in base}
    per_image["rig"]["mprt"][0] = None  # a constant map gives no correlation (NaN -> null)
    for method, scale in (("ig", 0.01), ("rig", 0.004), ("sig", 0.03)):  # known medians
        per_image[method]["completeness_gap"] = (scale * (1 + np.arange(N))).tolist()
    methods, metrics = list(per_image), list(base)
    return {
        "methods": methods, "metrics": metrics, "n_images": N, "steps": 64,
        "evaluations": {"gradient": 1, "ig": 64, "rig": 64, "sig": 64},
        "per_image": per_image,
        "mean": {m: {k: float(np.nanmean(np.array(v, dtype=float)))
                     for k, v in per_image[m].items()} for m in methods},
        "mprt_layers": {m: {"layers": ["fc"], "mean_correlation": [0.05]} for m in methods},
    }  # fmt: skip


def _outputs(root, shifts: tuple[float, float]):
    flat = dict.fromkeys(RANKS, 0.5)
    for name, attack, seed in (("natural", "none", 0), ("robust", "fgsm_rs", 1)):
        run = write_run(root / name, attack, clean=0.8, low=flat, high=flat, robust_acc=0.3)
        metrics = read_metrics(run)
        metrics["attribution"] = _attribution(seed, *shifts)
        write_metrics(run, metrics)
    return collect(root)


@pytest.mark.parametrize(
    ("shifts", "verdict"),
    [((0.1, -0.5), "holds"), ((-0.1, -0.5), "does not hold"), ((0.1, 0.0), "inconclusive")],
)
def test_cleaner_maps_verdict_from_paired_intervals(tmp_path, shifts, verdict):
    rows = _outputs(tmp_path, shifts)
    cm = cleaner_maps(rows)
    assert [k["kind"] for k in cm["per_kind"]] == ["natural", "robust"]
    assert cm["verdict"] == verdict
    c3 = next(c for c in claims(rows) if c.claim == "C3")
    assert c3.extra["cleaner_maps"]["verdict"] == verdict
    path, _ = report.report(rows, tmp_path / "figures")
    text = path.read_text()
    assert f"### RIG maps are cleaner than vanilla gradients: **{verdict}**" in text
    assert "| method | sparseness | complexity | diffid | mprt | completeness gap |" in text
    assert "gradient evaluations per image: gradient 1, ig 64, rig 64, sig 64" in text
    # each path method's completeness gap: median [min, max] over the images, in every kind
    rows_of = [line for line in text.splitlines() if line.startswith("| rig |")]
    assert len(rows_of) == 2 and all(r.endswith(" | 0.026 [0.004, 0.048] |") for r in rows_of)
    ig = [line for line in text.splitlines() if line.startswith("| ig |")]
    assert all(r.endswith(" | 0.065 [0.010, 0.120] |") for r in ig)
    gradient = [line for line in text.splitlines() if line.startswith("| gradient |")]
    assert all(r.endswith(" | n/a |") for r in gradient)


def test_verdict_only_from_converged_rig_maps_and_says_how_many_were_left_out(tmp_path):
    """Four images whose RIG map did not converge (gap 0.5 > GAP_THRESHOLD) and whose RIG map
    is far less sparse: left out, the verdict still holds on the other eight, and report.md
    counts them; a run without per-image gaps uses every image and says so."""
    rows = _outputs(tmp_path, (0.1, -0.5))
    for row in rows:
        rig = row["attribution"]["per_image"]["rig"]
        for i in range(4):
            rig["completeness_gap"][i] = 0.5
            rig["sparseness"][i] -= 5.0
    cm = cleaner_maps(rows)
    assert cm["verdict"] == "holds" and "completeness gap <= 0.05" in cm["rule"]
    assert [(k["n_kept"], k["gini_difference"].n) for k in cm["per_kind"]] == [(8, 8), (8, 8)]
    text = report.report(rows, tmp_path / "figures")[0].read_text()
    assert text.count("Verdict from the 8 images whose RIG map converged") == 2
    assert text.count("(completeness gap <= 0.05); 4 left out.") == 2
    for row in rows:  # an older run: no per-image gaps
        for per in row["attribution"]["per_image"].values():
            per.pop("completeness_gap", None)
    cm = cleaner_maps(rows)
    assert cm["verdict"] == "does not hold"  # the unconverged maps now count
    assert [k["n_kept"] for k in cm["per_kind"]] == [None, None]
    text = report.report(rows, tmp_path / "figures")[0].read_text()
    assert "Per-image completeness gaps not recorded (an older run): every image used." in text


def test_paired_interval_equals_scipys_paired_t_interval(tmp_path):
    from scipy import stats

    att = _attribution(3, 0.05, -0.2)
    row = next(r for r in metric_table(att) if (r["method"], r["metric"]) == ("rig", "sparseness"))
    rig, grad = att["per_image"]["rig"]["sparseness"], att["per_image"]["gradient"]["sparseness"]
    d = np.array(rig) - np.array(grad)
    ci = stats.ttest_rel(rig, grad).confidence_interval(0.95)
    est = row["vs_gradient"]
    assert est.value == pytest.approx(d.mean())
    assert (est.lo, est.hi) == pytest.approx((ci.low, ci.high), abs=2e-4)  # t table to 3 digits
    # a null per-image value (NaN MPRT) is left out of the mean and of the pairs
    mprt = next(r for r in metric_table(att) if (r["method"], r["metric"]) == ("rig", "mprt"))
    assert mprt["mean"].n == N - 1 and mprt["vs_gradient"].n == N - 1


def test_no_attribution_runs_is_not_testable(tmp_path):
    flat = dict.fromkeys(RANKS, 0.5)
    write_run(tmp_path / "natural", "none", clean=0.8, low=flat, high=flat, robust_acc=0.3)
    assert cleaner_maps(collect(tmp_path))["verdict"] == "not testable"


def test_attribution_figures_from_real_run_files(cifar_images, one_thread, tmp_path):
    from types import SimpleNamespace

    import torch

    from rankrobust.models import small_cnn
    from rankrobust.pipeline import explain
    from rankrobust.reporting.figures import draw

    x, y = cifar_images
    dm = SimpleNamespace(
        test_tensors=lambda raw=False, n=None, seed=None: (x[:n], y[:n]),
        test_set=SimpleNamespace(classes=[f"c{i}" for i in range(10)]),
    )
    flat = dict.fromkeys(RANKS, 0.5)
    settings = explain.AttributionSettings(
        enabled=True, n_images=3, steps=32, metrics=["diffid", "sparseness", "complexity"]
    )
    for seed, (name, attack) in enumerate((("natural", "none"), ("robust", "fgsm_rs"))):
        run = write_run(tmp_path / name, attack, clean=0.8, low=flat, high=flat, robust_acc=0.3)
        torch.manual_seed(seed)
        out = explain.run_attribution(small_cnn(10, width=8).eval(), dm, settings, run, name)
        write_metrics(run, {**read_metrics(run), **out})
    done = draw(
        collect(tmp_path), tmp_path / "figs", only=["attribution-maps", "attribution-curves"]
    )
    for name in ("attribution-maps", "attribution-curves"):
        png = tmp_path / "figs" / f"fig-{name}.png"
        assert done[name][0] == png and png.stat().st_size > 20_000
