"""figures --style paper: no titles (captions.md instead, a section per figure file), exactly
the column width in PDF and PNG, fonts of at least 8 pt, value labels crossing no curve."""

from __future__ import annotations

import re
import struct

import numpy as np
import pytest
from fake_runs import make_outputs

from rankrobust.reporting import figures
from rankrobust.reporting.figures import paper

IMAGE_GRIDS = {"rank-examples", "rig", "attribution-maps", "heat-maps"}


def _names(out):
    return [f"fig-{n}" for n in figures.FIGURES if (out / f"fig-{n}.png").is_file()]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Both widths: {width: (out folder, [figures in drawing order])}."""
    import matplotlib.pyplot as plt

    root = make_outputs(tmp_path_factory.mktemp("paper") / "outputs")
    done = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(plt.rcParams, "figure.max_open_warning", 0)  # all are kept to be inspected
        for width in ("double", "single"):
            kept: list = []
            mp.setattr(plt, "close", kept.append)  # save() closes each figure: keep it
            out = root.parent / f"figs-{width}"
            argv = [str(root), "--out", str(out), "--style", "paper", "--width", width]
            assert figures.main(argv) == 0
            done[width] = (out, kept)
    yield done
    plt.close("all")


def _png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def _pdf_width(path):
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)", path.read_bytes())
    return float(box.group(1))


@pytest.mark.parametrize("width", ["double", "single"])
def test_every_figure_has_a_caption_and_the_column_width(drawn, width):
    out, kept = drawn[width]
    names = _names(out)
    assert len(names) == len(figures.FIGURES) == len(kept)  # every figure drawn here
    captions = paper.read_captions(out)
    assert sorted(captions) == sorted(names)
    for name in names:
        short = name.removeprefix("fig-")
        inches = 7.0 if width == "double" or short in IMAGE_GRIDS else 3.5
        assert _png_size(out / f"{name}.png")[0] == round(inches * 300), name
        assert _pdf_width(out / f"{name}.pdf") == pytest.approx(inches * 72, abs=0.5), name
        assert f"{name}.pdf" in captions[name] and len(captions[name]) > 40, name
        if width == "single" and short in IMAGE_GRIDS:
            assert "double-column width" in captions[name]
    c1 = captions["fig-rank-accuracy"]
    assert "C1 (synthetic)" in c1 and "(a) Accuracy on rank-$k$" in c1 and "(b) Share" in c1


@pytest.mark.parametrize("width", ["double", "single"])
def test_no_titles_and_no_text_under_8_points(drawn, width):
    from matplotlib.text import Text

    _, kept = drawn[width]
    for fig in kept:
        assert not (fig.get_suptitle() and fig._suptitle.get_visible())
        for ax in fig.axes:
            if not ax.images and ax.get_label() != "<colorbar>":
                assert ax.get_title() == "" and ax.get_title("left") == ""
        sizes = [
            t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()
        ]
        assert sizes and min(sizes) >= paper.MIN_FONT
        assert fig.get_figwidth() == pytest.approx(7.0 if width == "double" else (3.5, 7.0)[
            any(ax.images for ax in fig.axes)])  # fmt: skip


def _segments(ax):
    """Every plotted line and error bar of the axes as display-coordinate segments."""
    from matplotlib.collections import LineCollection

    segs = []
    for line in ax.lines:
        if line.get_visible() and line.get_linestyle() not in ("None", "none", "", " "):
            xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
            segs += list(zip(xy[:-1], xy[1:], strict=True))
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            for seg in coll.get_segments():
                xy = coll.get_transform().transform(np.asarray(seg, dtype=float))
                segs += list(zip(xy[:-1], xy[1:], strict=True))
    return segs


def _crosses(box, p, q) -> bool:
    """Whether segment p-q passes through the box: sampled densely (an independent check)."""
    t = np.linspace(0, 1, 400)[:, None]
    pts = p + t * (q - p)
    inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0)
    return bool((inside & (pts[:, 1] < box.y1)).any())


@pytest.mark.parametrize("width", ["double", "single"])
def test_value_labels_cross_no_curve_and_have_no_leader_lines(drawn, width):
    _, kept = drawn[width]
    checked = 0
    for fig in kept:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            labels = [t for t in ax.texts if t.get_gid() == "value-label"]
            segs = _segments(ax)
            for label in labels:
                assert label.arrow_patch is None  # no leader line
                box = label.get_window_extent(renderer)
                hits = [(p, q) for p, q in segs if _crosses(box, p, q)]
                assert not hits, f"{label.get_text()} crosses a curve"
                checked += 1
    assert checked >= 8  # the C1, C2, C3 and C4 figures' labels were checked


def test_a_label_with_no_free_place_goes_to_the_caption(tmp_path):
    """Labels on a point buried in curves: left out of a paper figure, said in its caption."""
    from rankrobust.reporting.figures import style

    with style.using(style.Look("paper", "single")):
        pyplot = style.plt()
        fig, ax = style.subplots(pyplot, figsize=(6, 4))
        for v in np.linspace(0, 1, 80):  # a mesh of lines closer than a label's height
            ax.plot([0, 2], [v, v], color="grey")
            ax.plot([2 * v, 2 * v], [0, 1], color="grey")
        labels = style.ValueLabels(ax)
        labels.add(1.0, 0.5, "black")
        labels.draw()
        caption = paper.finish(fig, 3.5)
    assert not [t for t in ax.texts if t.get_gid() == "value-label"]
    assert caption.count("50.0% (at 1)") == 1
    pyplot.close(fig)


def test_a_default_run_drops_the_captions_of_the_figures_it_redraws(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    out = tmp_path / "figs"
    only = ["--only", "high-rank", "rig-spectrum"]
    assert figures.main([str(root), "--out", str(out), "--style", "paper", *only]) == 0
    assert sorted(paper.read_captions(out)) == ["fig-high-rank", "fig-rig-spectrum"]
    assert figures.main([str(root), "--out", str(out), "--only", "high-rank"]) == 0
    assert sorted(paper.read_captions(out)) == ["fig-rig-spectrum"]  # high-rank has its title


def test_an_unknown_style_or_width_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        figures.main([str(tmp_path), "--style", "poster"])
    assert stop.value.code == 2 and "--style" in capsys.readouterr().err
    with pytest.raises(ValueError, match="width='triple'"):
        figures.draw([], tmp_path, style="paper", width="triple")
    with pytest.raises(ValueError, match="style='poster'"):
        figures.draw([], tmp_path, style="poster")
