"""Run files -> the paper's figures (PNG + PDF); reads files (metrics.json, rig.npz), never models.

    python -m rankrobust.reporting.figures outputs [more dirs] --out outputs/figures \
        [--only rank-accuracy] [--images DATA] [--style paper [--width single|double]]

`--style paper` (figures/paper.py): no titles in the figures, their captions in captions.md
beside them (one section per figure file), exactly one column (3.5 in) or two (7.0 in) wide,
fonts of at least 8 pt at that size, value labels that cross no curve.

Figures (each skipped with a printed note when its inputs are missing):
    rank-accuracy         C1  accuracy on L_k(x) vs k, natural vs robust, clean accuracy dotted
    high-rank             C2  accuracy on H_k(x) vs k, natural vs robust, chance line
    rank-examples             L_k and H_k of a few images for several k
    rig                   C3  image | vanilla gradient | RIG map, natural and robust (rig.npz)
    rig-spectrum          C3  mean rank attribution share vs rank, natural vs robust
    train-rank            C4  clean / robust accuracy of models trained on rank-k data vs k
    perturbation-spectrum     singular values of adversarial perturbations vs clean images
    attribution-maps      C3  image | gradient | IG | RIG | SIG, natural and robust
    attribution-curves    C3  insertion / deletion curves per method (DiffID)
    bases-energy          C5  accuracy on low-pass images vs energy kept, one line per basis
    bases-high            C5  the same for the high-pass images
    heat-maps             C5  Fourier heat map (natural, robust) and its rank analogue
Runs, groups, pairs and 95% intervals come from rankrobust.reporting.claims (as in the report,
which `python -m rankrobust.reporting.report` writes). The drawing lives in `curves` (C1-C4)
and `images` (image grids, spectra); their shared look in `style`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rankrobust.reporting.collect import collect_for_cli, summary_line, write_table
from rankrobust.reporting.figures.attribution import fig_attribution_curves, fig_attribution_maps
from rankrobust.reporting.figures.bases import fig_bases_energy, fig_bases_high, fig_heat_maps
from rankrobust.reporting.figures.curves import (
    fig_high_rank,
    fig_rank_accuracy,
    fig_rig_spectrum,
    fig_train_rank,
)
from rankrobust.reporting.figures.images import (
    fig_perturbation_spectrum,
    fig_rank_examples,
    fig_rig,
)
from rankrobust.reporting.figures.paper import WIDTHS, write_captions
from rankrobust.reporting.figures.style import STYLES, Look, Skip, using

DRAW: dict[str, Callable[..., list[Path]]] = {
    "rank-accuracy": fig_rank_accuracy,
    "high-rank": fig_high_rank,
    "rank-examples": fig_rank_examples,
    "rig": fig_rig,
    "rig-spectrum": fig_rig_spectrum,
    "train-rank": fig_train_rank,
    "perturbation-spectrum": fig_perturbation_spectrum,
    "attribution-maps": fig_attribution_maps,
    "attribution-curves": fig_attribution_curves,
    "bases-energy": fig_bases_energy,
    "bases-high": fig_bases_high,
    "heat-maps": fig_heat_maps,
}
FIGURES = tuple(DRAW)


def draw(
    rows: list[dict],
    out_dir: str | Path,
    only: Sequence[str] | None = None,
    style: str = "default",
    width: str = "double",
    **opts,
) -> dict:
    """Draw the named figures (all by default) in `style` (default | paper) at `width` (single
    | double, paper only); {name: [paths]} or {name: "skipped: why"}. The paper style writes
    each figure's caption to out_dir/captions.md."""
    out_dir = Path(out_dir)
    for name in only or FIGURES:
        if name not in DRAW:
            raise ValueError(f"only={name!r}: expected one of {', '.join(FIGURES)}")
    look = Look(style, width)  # ValueError naming style= or width=
    done: dict[str, Any] = {}
    with using(look):
        for name in only or FIGURES:
            try:
                done[name] = DRAW[name](rows, out_dir, **opts)
                print(f"[figures] fig-{name}: {', '.join(str(p) for p in done[name])}")
            except Skip as why:
                done[name] = f"skipped: {why}"
                print(f"[figures] fig-{name} skipped: {why}")
                for stale in (out_dir / f"fig-{name}.png", out_dir / f"fig-{name}.pdf"):
                    stale.unlink(missing_ok=True)  # an old figure would contradict the report
    # a caption stays only beside the paper figure it describes
    stale = [f"fig-{n}" for n, d in done.items() if isinstance(d, str) or not look.paper]
    if (out_dir / "captions.md").is_file() and stale:
        write_captions(out_dir, {}, drop=tuple(stale))
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The paper's figures from run files.")
    parser.add_argument("runs", nargs="*", default=["outputs"], help="outputs or sweep folders")
    parser.add_argument("--out", default="outputs/figures", help="output folder")
    parser.add_argument("--only", nargs="*", choices=FIGURES, help="draw only these figures")
    parser.add_argument("--images", default=None, help="tarball/ImageFolder for rank-examples")
    parser.add_argument(
        "--style",
        default="default",
        choices=STYLES,
        help="paper: no titles (captions.md instead), column width, fonts >= 8 pt",
    )
    parser.add_argument(
        "--width",
        default="double",
        choices=tuple(WIDTHS),
        help="paper style: single (3.5 in) or double (7.0 in) column",
    )
    args = parser.parse_args(argv)
    if args.images is not None and not Path(args.images).exists():
        parser.error(  # exit 2, before any figure is drawn
            f"--images {args.images}: no such file or folder. Give a tarball or an image-folder "
            "root (the CIFAR-10 copy: ../shared/data/cifar10-jpeg.tar.gz), or leave --images out "
            "to draw the image figures from synthetic images."
        )
    out = Path(args.out)
    rows = collect_for_cli(args.runs, out, "figures")
    write_table(rows, out)
    print(f"[figures] {summary_line(rows)} under {', '.join(args.runs)}")
    draw(rows, out, only=args.only, images=args.images, style=args.style, width=args.width)
    return 0
