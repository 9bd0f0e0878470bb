"""figures: every figure drawn from synthetic run folders, ready for a paper (error bars,
mathtext, display names, value labels apart, one legend entry each); the module layout."""

from __future__ import annotations

import numpy as np
import pytest
from fake_runs import make_outputs

from rankrobust.reporting import figures
from rankrobust.reporting.collect import collect
from rankrobust.reporting.figures import curves as figures_claims
from rankrobust.reporting.figures import images as figures_images
from rankrobust.reporting.figures import style as figures_style


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    root = make_outputs(tmp_path_factory.mktemp("hold") / "outputs")
    out = root / "figures"
    assert figures.main([str(root), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def figs(tmp_path_factory):
    """The matplotlib figures themselves (save() intercepted), by file name."""
    import matplotlib.pyplot as plt

    rows = collect(make_outputs(tmp_path_factory.mktemp("figs") / "outputs"))
    kept = {}

    def keep(fig, out_dir, name):
        fig.canvas.draw()
        kept[name] = fig
        return []

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures_claims, "save", keep)
        mp.setattr(figures_images, "save", keep)
        figures.draw(rows, tmp_path_factory.mktemp("unused"))
    yield kept
    plt.close("all")


@pytest.mark.parametrize("name", figures.FIGURES)
def test_every_figure_is_a_real_png_and_pdf(drawn, name):
    png, pdf = drawn / f"fig-{name}.png", drawn / f"fig-{name}.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000


def test_accuracy_figures_have_error_bars_and_mathtext(figs):
    from matplotlib.container import ErrorbarContainer

    for name in ("fig-rank-accuracy", "fig-high-rank", "fig-train-rank"):
        ax = figs[name].axes[0]
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert bars, name
        segments = bars[0].lines[2][0].get_segments()
        assert all(seg[1][1] > seg[0][1] for seg in segments)  # real, non-empty intervals
    assert "$L_k(x)$" in figs["fig-rank-accuracy"].axes[0].get_ylabel()
    assert "$H_k(x)$" in figs["fig-high-rank"].axes[0].get_ylabel()
    assert "$s_i$" in figs["fig-perturbation-spectrum"].axes[0].get_ylabel()
    titles = [t.get_text() for t in figs["fig-rank-examples"].axes[1].texts] + [
        figs["fig-rank-examples"].axes[1].get_title()
    ]
    assert "$L_{1}(x)$" in titles


def test_value_labels_do_not_overlap(figs):
    for name, fig in figs.items():
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().endswith("%")]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert not a.overlaps(b), f"{name}: labels overlap"


def test_value_labels_are_pushed_apart_when_values_coincide():
    plt = figures_style.plt()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [0, 1])
    labels = figures_style.ValueLabels(ax)
    for colour in ("red", "blue", "green"):
        labels.add(1.5, 0.5, colour)  # three labels on one point
    labels.draw()
    boxes = [t.get_window_extent() for t in ax.texts]
    assert len(boxes) == 3 and not any(
        a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]
    )
    plt.close(fig)


def test_train_rank_legend_has_no_duplicates(figs):
    texts = [t.get_text() for t in figs["fig-train-rank"].axes[0].get_legend().get_texts()]
    assert len(texts) == len(set(texts)) and "chance" in texts


def test_figures_name_the_dataset(figs):
    assert "synthetic" in figs["fig-rank-accuracy"].get_suptitle()
    legend = [t.get_text() for t in figs["fig-rank-accuracy"].legends[0].get_texts()]
    assert legend == ["natural: small_cnn, synthetic", "robust: small_cnn (pgd_linf), synthetic"]


def test_shares_above_100_percent_are_explained(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from fake_runs import write_run

    low = {1: 0.3, 4: 0.5, 32: 0.72}  # 72% on L_32(x) vs 70% clean: a share of 103%
    write_run(tmp_path / "r", "pgd_linf", 0.7, low, low, 0.4)
    kept = {}
    monkeypatch.setattr(figures_claims, "save", lambda fig, out, name: kept.update({name: fig}))
    figures_claims.fig_rank_accuracy(collect(tmp_path), tmp_path / "figs")
    texts = " ".join(t.get_text() for t in kept["fig-rank-accuracy"].axes[1].texts)
    assert "above 100%" in texts
    plt.close(kept["fig-rank-accuracy"])


def test_rig_grid_shows_true_and_predicted_class_and_a_colour_bar(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from rankrobust.attribution.plot import save_rig_grid

    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.uniform(0, 1, (2, 3, 8, 8)),
        "vanilla": rng.normal(size=(2, 3, 8, 8)),
        "pixel": rng.normal(size=(2, 3, 8, 8)),
        "targets": np.array([1, 2]),
        "labels": np.array([1, 0]),
    }
    path = save_rig_grid(arrays, tmp_path / "rig.png", "RIG", ["cat", "dog", "ship"])
    assert path.read_bytes()[:4] == b"\x89PNG"
    fig = closed[0]
    assert len(fig.axes) == 7  # 2 x 3 panels and the colour bar
    assert "attribution" in fig.axes[-1].get_ylabel()
    assert fig.axes[0].get_ylabel() == "true: dog" and fig.axes[3].get_ylabel() == "true: cat"
    assert fig.axes[2].get_xlabel() == "pred: dog" and fig.axes[5].get_xlabel() == "pred: ship"
    plt.close("all")


def test_missing_inputs_skip_figures(tmp_path, capsys):
    out = tmp_path / "figs"
    figures.draw([], out)  # no rows (the CLI refuses a folder without runs: exit 2)
    printed = capsys.readouterr().out
    assert "fig-rig skipped" in printed and "fig-train-rank skipped" in printed
    # rank-examples needs no runs: it falls back to synthetic images
    assert (out / "fig-rank-examples.png").is_file()
    assert not (out / "fig-rank-accuracy.png").exists()


def test_pipeline_run_feeds_the_perturbation_spectrum_figure(tmp_path):
    """analysis.perturbation_spectrum (on by default) -> metrics.json -> the figure."""
    from helpers import FAST, make_cfg

    from rankrobust.pipeline import task
    from rankrobust.results import read_metrics

    overrides = [*FAST, "dataset.image_size=16", "dataset.n_train=256", "dataset.n_test=64"]
    overrides += ["trainer.max_epochs=1", "sweep.enabled=false", "analysis.n_images=16"]
    task.run(make_cfg(*overrides), tmp_path / "run")
    spec = read_metrics(tmp_path / "run")["perturbation_spectrum"]
    assert spec["n_images"] == 16 and len(spec["clean"]) == len(spec["perturbation"]) == 16
    assert figures.main([str(tmp_path), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "fig-perturbation-spectrum.png").stat().st_size > 10_000


def test_rig_spectrum_draws_signed_rank_attributions(tmp_path):
    """Rank attributions may be negative: the error bars must stay valid (regression)."""
    from fake_runs import write_run

    signed = np.array([0.5, -0.3, 0.2, 0.1, -0.05, 0.03, 0.02, 0.01])
    write_run(tmp_path / "r", "pgd_linf", 0.7, {4: 0.5}, {4: 0.1}, 0.4, per_rank=signed)
    (png, _) = figures_claims.fig_rig_spectrum(collect(tmp_path), tmp_path / "figs")
    assert png.stat().st_size > 10_000


def test_unknown_counts_are_said_and_no_point_is_cut_off(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from fake_runs import write_run

    low = {1: 0.3, 4: 0.5, 32: 0.9}  # kept share 0.9 / 0.7 = 129%, with no count recorded
    write_run(tmp_path / "r", "pgd_linf", 0.7, low, low, 0.4, counts=False)
    kept = {}
    monkeypatch.setattr(figures_claims, "save", lambda fig, out, name: kept.update({name: fig}))
    figures_claims.fig_rank_accuracy(collect(tmp_path), tmp_path / "figs")
    fig = kept["fig-rank-accuracy"]
    assert "n unknown" in fig.legends[0].get_texts()[0].get_text()
    assert fig.axes[1].get_ylim()[1] > 0.9 / 0.7
    plt.close(fig)


def test_figures_with_images_that_do_not_exist_is_exit_2_naming_them(tmp_path, capsys):
    missing = tmp_path / "no-such.tar.gz"
    with pytest.raises(SystemExit) as stop:
        figures.main([str(tmp_path), "--out", str(tmp_path / "figs"), "--images", str(missing)])
    assert stop.value.code == 2
    assert f"--images {missing}: no such file" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()  # refused before any work


def _many_rows(tmp_path, n: int, labels: int, field: str) -> list[dict]:
    """n copies of the fake full-image runs holding `field`, under `labels` model names."""
    rows = [r for r in collect(make_outputs(tmp_path / "outputs")) if r.get(field)]
    rows = [r for r in rows if r.get("rank") is None and r.get("kind")]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        r = {**rows[i % len(rows)], "run_dir": f"{rows[i % len(rows)]['run_dir']}-{i}"}
        if field == "perturbation_spectrum":
            spec = dict(r[field])
            spec["perturbation"] = list(np.asarray(spec["perturbation"]) * rng.uniform(0.8, 1.2))
            r[field] = spec
        out.append({**r, "model": f"net{i % labels}"})
    return out


FIGURES_PER_RUN = {  # figure -> (the field its runs hold, its module)
    "fig_perturbation_spectrum": ("perturbation_spectrum", figures_images),
    "fig_rig_spectrum": ("rig", figures_claims),
    "fig_rank_accuracy": ("rank_sweep", figures_claims),  # one curve per training identity
    "fig_high_rank": ("rank_sweep", figures_claims),
}


@pytest.mark.parametrize("name", sorted(FIGURES_PER_RUN))
@pytest.mark.parametrize(("n", "labels"), [(2000, 2000), (2000, 3)])
def test_a_figure_of_thousands_of_runs_has_a_normal_size(tmp_path, name, n, labels, caplog):
    from PIL import Image

    field, module = FIGURES_PER_RUN[name]
    draw = getattr(module, name)
    rows = _many_rows(tmp_path, n, labels, field)
    few = draw(rows[:2], tmp_path / "few")
    many = draw(rows, tmp_path / "many")
    size = Image.open(next(p for p in many if p.suffix == ".png")).size
    normal = Image.open(next(p for p in few if p.suffix == ".png")).size
    assert size[0] <= normal[0] * 1.1 and size[1] <= normal[1] * 1.6, (size, normal)
    left_out = f"not drawn: at most {figures_style.MAX_CURVES} curves"
    assert (left_out in caplog.text) == (labels > figures_style.MAX_CURVES), caplog.text
