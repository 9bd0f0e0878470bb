"""The claims report: each claim C1-C5, the rule that decides it, the numbers with 95% intervals
it rests on, and its verdict (report.md, report.json, optionally a W&B "report" run).

    python -m rankrobust.reporting.report outputs [more dirs] --out outputs/figures [--wandb]

Reads run files through rankrobust.reporting.collect and decides through
rankrobust.reporting.claims; never loads a model. Figures (rankrobust.reporting.figures) are
linked when they exist in the output folder.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankrobust.files import write_json, write_text
from rankrobust.reporting.attribution_report import attribution_lines
from rankrobust.reporting.claims import (
    NOT_TESTABLE,
    TOP_RANKS_C3,
    USABLE,
    ClaimResult,
    claims,
    suspect_runs,
    unlabelled,
)
from rankrobust.reporting.collect import collect_for_cli, summary_line, write_table, writing
from rankrobust.reporting.intervals import Estimate, fmt
from rankrobust.reporting.seeds import duplicates

__all__ = ["NOT_TESTABLE", "log_wandb", "main", "render_report", "report", "report_summary"]

HOW_TO_READ = (
    "Numbers are point estimates with 95% intervals in brackets: Wilson intervals for one run's "
    "accuracy on n test images, t-intervals over seeds when a group has several runs. C1's share "
    "kept (accuracy on L_k(x) / clean accuracy on the same images) and the robust - natural "
    "difference of it: a paired percentile bootstrap over the test images both models evaluated "
    "(2000 resamples, image indices drawn jointly; with several seeds, seeds first, then images), "
    "from the runs' per-image records; runs without them (older folders) keep the delta method "
    "for the ratio and Welch's rule for the difference, flagged 'unpaired'. C2's chance is each "
    "model's own: sum over classes of p(predicted) * p(true) on the images it was evaluated on "
    "(1/classes for runs without per-image records, flagged). A verdict is **holds** when the "
    "interval of the quantity its rule tests lies wholly on the rule's side of the threshold, "
    "**does not hold** when it lies wholly on the other side, and **inconclusive** when it "
    "straddles the threshold or the image count behind a number was not recorded "
    "('n unknown'). Runs are averaged only over seeds of one training identity (two runs of one "
    "seed count once) and compared only within the same data and architecture."
)


HEADERS = {
    "k": "k",
    "natural_chance": "natural chance",
    "robust_chance": "robust chance",
    "chance_from": "chance from",
    "pairing": "interval",
    "natural_acc_k": "natural on image_k",
    "natural_clean": "natural clean",
    "natural_kept": "natural kept",
    "robust_acc_k": "robust on image_k",
    "robust_clean": "robust clean",
    "robust_kept": "robust kept",
    "kept_difference": "kept: robust - natural",
    "natural_above_chance": "natural above chance",
    "robust_at_chance": "robust at chance",
    "natural_top_share": "natural top-rank share",
    "robust_top_share": "robust top-rank share",
    "share_difference": "share: robust - natural",
    "energy": "energy kept",
    "svd_minus_fourier_difference": "SVD gap - Fourier gap",
    **{f"{b}_{part}": f"{b} {label}" for b in ("svd", "fourier", "dct", "wavelet")
       for part, label in (("natural", "natural"), ("robust", "robust"),
                           ("difference", "gap: robust - natural"))},
}  # fmt: skip


def _cell(v: Any, key: str = "") -> str:
    if isinstance(v, Estimate) and key.endswith("_difference"):
        return fmt_change(v)
    if isinstance(v, Estimate):
        return fmt(v)
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{100 * v:.1f}%"
    return "" if v is None else str(v)


def _trend(t: dict | None) -> str:
    if not t:
        return "n/a"
    return f"{t['word']} ({fmt_change(t['change'])}, Spearman {t['rho']:+.2f})"


def fmt_change(e: Estimate) -> str:
    text = f"{100 * e.value:+.1f} points"
    if e.known:
        text += f" [{100 * e.lo:+.1f}, {100 * e.hi:+.1f}]"
    return text


def _key_numbers(c: ClaimResult) -> str:
    parts = []
    for x in c.comparisons:
        if c.claim == "C1":
            unpaired = " (unpaired)" if x["kept_difference"].method.startswith("unpaired") else ""
            parts.append(
                f"k={x['k']}: kept natural {fmt(x['natural_kept'])} vs robust "
                f"{fmt(x['robust_kept'])}{unpaired}"
            )
        elif c.claim == "C2":
            parts.append(
                f"k={x['k']}: natural {fmt(x['natural_acc_k'])}, robust "
                f"{fmt(x['robust_acc_k'])}, chance {100 * x['natural_chance']:.1f}% / "
                f"{100 * x['robust_chance']:.1f}%"
            )
        elif c.claim == "C3":
            parts.append(
                f"top-{TOP_RANKS_C3} share natural {fmt(x['natural_top_share'])} vs robust "
                f"{fmt(x['robust_top_share'])}"
            )
        elif c.claim == "C5":
            parts.append(
                f"energy {x['energy']:g}: gap SVD {fmt_change(x['svd_difference'])}, Fourier "
                f"{fmt_change(x['fourier_difference'])}"
            )
        else:
            parts.append(
                f"{x['group']}: clean {_trend(x['clean_trend'])}, "
                f"robust {_trend(x['robust_trend'])}"
            )
    return "; ".join(parts) or "-"


def _comparison_table(c: ClaimResult) -> list[str]:
    comps = c.comparisons
    if c.claim == "C4":
        lines = ["| series | k | clean | robust |", "|---|---|---|---|"]
        for x in comps:
            for k, cl, rb in zip(x["ks"], x["clean"], x["robust"], strict=True):
                lines.append(f"| {x['group']} | {k} | {fmt(cl)} | {fmt(rb)} |")
            lines.append(
                f"| {x['group']} | trend | {_trend(x['clean_trend'])} | "
                f"{_trend(x['robust_trend'])} |"
            )
        return lines
    keys = [k for k in comps[0] if k not in ("natural", "robust", "verdict")]
    head = ["natural", "robust", *keys, "verdict"]
    image = "L_k(x)" if c.claim == "C1" else "H_k(x)"
    keys = [k for k in keys if k != "energy"] if c.claim == "C5" else keys
    head = ["natural", "robust", "energy", *keys, "verdict"] if c.claim == "C5" else head
    names = [HEADERS.get(h, h).replace("image_k", image) for h in head]
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(head)]
    for x in comps:
        cells = [
            str(x.get(h, c.verdict if h == "verdict" else "")) if h in ("k", "energy")
            else _cell(x.get(h, c.verdict if h == "verdict" else None), h)
            for h in head
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _needs(claim: str) -> str:
    return {
        "C1": "a natural and a robust full-image run of the same data and model with the "
        "low-rank sweep (sweep.enabled=true).",
        "C2": "as C1, with the high-rank sweep (sweep.modes has high).",
        "C3": "a natural and a robust full-image run of the same data and model with RIG "
        "(rig.enabled=true).",
        "C4": "a `-m rank=k1,k2,...` sweep (at least two ranks).",
        "C5": "a natural and a robust full-image run of the same data and model with "
        "sweep.bases=[svd,fourier,...] (make reproduce-demo runs them).",
    }[claim]


def _figure_lines(c: ClaimResult, out_dir: Path) -> list[str]:
    lines = []
    for name in c.figures:
        png = f"{name}.png"
        if (out_dir / png).is_file():
            lines.append(f"![{png}]({png})")
        else:
            lines.append(f"Figure {png}: not drawn (run `make figures`).")
    return lines


def render_report(rows: list[dict], results: Sequence[ClaimResult], out_dir: Path) -> str:
    lines = [
        "# Claims report",
        "",
        f"Built from {summary_line(rows)}; runs table: [runs.csv](runs.csv), "
        "[runs.json](runs.json). Regenerate with `make report`.",
        "",
        HOW_TO_READ,
        "",
        "| claim | verdict | key numbers (95% intervals) | figure |",
        "|---|---|---|---|",
    ]
    for c in results:
        fig = f"{c.figures[0]}.png"
        lines.append(f"| {c.claim} | **{c.verdict}** | {_key_numbers(c)} | [{fig}]({fig}) |")
    for c in results:
        lines += ["", f"## {c.claim}: {c.verdict}", "", f"Claim: {c.statement}", ""]
        lines += [f"Rule: {c.rule}.", ""]
        lines += _figure_lines(c, out_dir)
        lines.append("")
        lines += (
            _comparison_table(c) if c.comparisons else ["No runs to test it: " + _needs(c.claim)]
        )
        for x in c.extra.get("not_testable") or []:
            lines.append(f"- not testable: {x['natural']} vs {x['robust']}: {x['reason']}")
        if c.extra.get("map_structure"):
            lines += [
                "",
                "Map cleanliness (not part of the rule): share of each |map|'s energy in its top "
                f"{TOP_RANKS_C3} singular values (maps mean-centred), mean over the rig.npz "
                "images with a t-interval (higher = more structured, less noise-like).",
                "",
                "| model | run | RIG map | vanilla gradient | RIG cleaner |",
                "|---|---|---|---|---|",
            ]
            for m in c.extra["map_structure"]:
                rig, van = m["rig"], m["vanilla"]
                cleaner = "yes" if rig.value > van.value else "no"
                if rig.known and van.known and rig.lo <= van.hi and van.lo <= rig.hi:
                    cleaner += " (intervals overlap)"
                lines.append(f"| {m['kind']} | {m['run']} | {fmt(rig)} | {fmt(van)} | {cleaner} |")
        if c.extra.get("cleaner_maps"):
            lines += attribution_lines(c.extra["cleaner_maps"])
        if c.extra.get("suspect_runs"):
            runs = ", ".join(f"`{r}`" for r in c.extra["suspect_runs"])
            lines += [
                "",
                f"Numbers to check in runs used here: {runs} (robust accuracy above "
                "clean accuracy: gradient masking suspected; see Numbers to check below).",
            ]
    lines += _suspect_lines(rows)
    lines += _unlabelled_lines(rows)
    lines += _duplicate_lines(rows)
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        lines += ["", "## Runs not finished (only `partial` ones count above)", ""]
        lines += ["| run | status | error |", "|---|---|---|"]
        for r in bad:
            used = " (used)" if r.get("status") in USABLE else ""
            lines.append(f"| `{r['run_dir']}` | {r['status']}{used} | {r.get('error') or ''} |")
    return "\n".join(lines) + "\n"


def _suspect_lines(rows: list[dict]) -> list[str]:
    """Runs whose robust accuracy is above the clean accuracy of the same images."""
    suspects = suspect_runs(rows)
    if not suspects:
        return []
    lines = [
        "",
        "## Numbers to check (gradient masking suspected)",
        "",
        "An attack can only add errors, so robust accuracy above the clean accuracy of the same "
        "images means the attack did not work on the model, not that the model is robust: its "
        "robust numbers, and the claims that use them, are no evidence. Evaluate these runs with "
        "AutoAttack (`attack=autoattack`) and check the attack's gradients (Croce & Hein: "
        "https://github.com/fra31/auto-attack/issues/45).",
        "",
    ]
    return lines + [f"- `{s['run']}`: {w}" for s in suspects for w in s["warnings"]]


def _unlabelled_lines(rows: list[dict]) -> list[str]:
    """Runs of loaded weights whose kind nobody declared: never paired, so name them."""
    unknown = unlabelled(rows)
    if not unknown:
        return []
    lines = [
        "",
        "## Runs to label (kind unknown, not compared)",
        "",
        "These runs evaluated loaded weights without saying whether the model is natural or "
        "robust, so no claim uses them. Rerun each with `model.kind=natural` or "
        "`model.kind=robust 'model.threat={norm: linf, eps: 0.0157}'` (its training threat "
        "model):",
        "",
    ]
    return lines + [f"- `{r['run_dir']}` ({r.get('model')}, {r.get('weights')})" for r in unknown]


def _duplicate_lines(rows: list[dict]) -> list[str]:
    """Runs of one identity and one seed, collapsed to one result (seeds.duplicates)."""
    found = duplicates(rows)
    if not found:
        return []
    lines = ["", "## Duplicate runs collapsed (one identity, one seed: one result)", ""]
    lines += [
        "These runs repeat a newer run of the same identity and seed (a sweep rerun into the "
        "same folder, or a copied run folder): each counts once, as the newer run, never as "
        "another seed.",
        "",
        "| left out | kept (newer) |",
        "|---|---|",
    ]
    return lines + [f"| `{d.get('run_dir')}` | `{k.get('run_dir')}` |" for d, k in found]


def report(rows: list[dict], out_dir: str | Path) -> tuple[Path, list[ClaimResult]]:
    """Write out_dir/report.md and report.json; return (report.md path, claim results)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = claims(rows)
    path = out_dir / "report.md"
    write_text(path, render_report(rows, results, out_dir))
    write_json(out_dir / "report.json", [c.as_dict() for c in results], indent=2, default=str)
    print(f"[report] {path}: " + ", ".join(f"{c.claim} {c.verdict}" for c in results))
    return path, results


def report_summary(results: Sequence[ClaimResult]) -> dict:
    """Flat {key: number or string} for a W&B run summary (an interval as key/lo, key/hi)."""
    summary: dict[str, Any] = {}
    for c in results:
        summary[f"{c.claim}/verdict"] = c.verdict
        for i, x in enumerate(c.comparisons):
            for k, v in x.items():
                key = f"{c.claim}/{i}/{k}"
                if isinstance(v, Estimate):
                    summary[key] = v.value
                    if v.known:
                        summary[f"{key}/lo"], summary[f"{key}/hi"] = v.lo, v.hi
                elif isinstance(v, bool):
                    summary[key] = int(v)
                elif isinstance(v, int | float | str):
                    summary[key] = v
    return summary


def log_wandb(
    rows: list[dict], results: Sequence[ClaimResult], out_dir: Path, project="rankrobust"
):
    """A small W&B run (job_type "report") with the verdicts as summary, the runs table and
    the figures; offline unless WANDB_MODE=online. Grouped with the runs when they share one."""
    import os

    import wandb

    from rankrobust.pipeline.loggers import wandb_env

    wandb_env()  # the one W&B set-up: offline unless WANDB_MODE=online, quiet
    from rankrobust.reporting.collect import _flat

    groups = {r.get("group") for r in rows}  # one sweep's runs: the report joins their group
    run = wandb.init(
        project=project,
        name="report",
        job_type="report",
        group=groups.pop() if len(groups) == 1 and None not in groups else "report",
        dir=str(out_dir),
        reinit=True,
    )
    flats = [_flat(r) for r in rows]
    cols = sorted({c for f in flats for c in f})
    table = wandb.Table(columns=cols, data=[[str(f.get(c, "")) for c in cols] for f in flats])
    images = {f"figures/{p.stem}": wandb.Image(str(p)) for p in sorted(out_dir.glob("fig-*.png"))}
    run.log({"runs": table, **images})
    run.summary.update(report_summary(results))
    run.finish()
    wandb.teardown()  # flush: the first run of a process may otherwise reach disk after return
    print(f"[report] W&B run 'report' logged ({os.environ['WANDB_MODE']}) under {out_dir}/wandb")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The claims report from run files.")
    parser.add_argument("runs", nargs="*", default=["outputs"], help="outputs or sweep folders")
    parser.add_argument("--out", default="outputs/figures", help="output folder")
    parser.add_argument("--wandb", action="store_true", help="also log the report as a W&B run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = collect_for_cli(args.runs, out, "report")
    with writing("report", out):
        write_table(rows, out)
        print(f"[report] {summary_line(rows)} under {', '.join(args.runs)}")
        _, results = report(rows, out)
    if args.wandb:
        try:
            log_wandb(rows, results, out)
        except Exception as err:  # noqa: BLE001 - the report files are written already
            print(f"[report] W&B logging skipped: {type(err).__name__}: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
