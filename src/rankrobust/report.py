"""The claims report: each claim C1-C4 of the paper, the rule that decides it, the numbers it
rests on, and whether it held in these runs (report.md, report.json, a W&B "report" run).

Reads the run table of `rankrobust.collect` (and rig.npz files), never live models.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rankrobust.collect import summary_line
from rankrobust.figures import (
    FIGURES,
    FLAT_C4,
    K_REF,
    MARGIN_C1,
    MARGIN_C2,
    TOP_RANKS_C3,
    _rig_runs,
    nearest_k,
    num_classes,
    ok_runs,
    rank_attribution,
    sweep_groups,
    top_share,
    train_rank_groups,
)

NOT_TESTABLE = "not testable (missing runs)"


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _pairs(groups: list[dict]) -> list[tuple[dict, dict]]:
    nat = [g for g in groups if g["kind"] == "natural"]
    rob = [g for g in groups if g["kind"] == "robust"]
    return [(n, r) for n in nat for r in rob if n["key"][0] == r["key"][0]]


def claim_c1(rows: list[dict]) -> dict:
    rule = (
        f"holds when, at k = {K_REF} (or the nearest measured rank below it), the robust model's "
        "accuracy on L_k(x) divided by its clean accuracy exceeds the natural model's by at "
        f"least {MARGIN_C1:.2f}, for every natural/robust pair of the same dataset"
    )
    out = {"claim": "C1", "figure": "fig-rank-accuracy.png", "rule": rule, "comparisons": []}
    for n, r in _pairs(sweep_groups(rows, "low")):
        k = nearest_k(sorted(set(n["ks"]) & set(r["ks"])))
        if not n["clean"] or not r["clean"]:
            continue
        rel_n = n["acc"][n["ks"].index(k)] / n["clean"]
        rel_r = r["acc"][r["ks"].index(k)] / r["clean"]
        out["comparisons"].append(
            {
                "natural": n["label"],
                "robust": r["label"],
                "k": k,
                "natural_acc_k": n["acc"][n["ks"].index(k)],
                "natural_clean": n["clean"],
                "natural_rel": rel_n,
                "robust_acc_k": r["acc"][r["ks"].index(k)],
                "robust_clean": r["clean"],
                "robust_rel": rel_r,
                "holds": bool(rel_r > rel_n + MARGIN_C1),
            }
        )
    return _verdict(out)


def claim_c2(rows: list[dict]) -> dict:
    chance = 1.0 / num_classes(rows)
    rule = (
        f"holds when, at k = {K_REF} (or the nearest measured rank below it), the natural "
        f"model's accuracy on H_k(x) is above chance + {MARGIN_C2:.2f} and the robust model's "
        f"is within {MARGIN_C2:.2f} of chance (chance = {chance:.2f})"
    )
    out = {"claim": "C2", "figure": "fig-high-rank.png", "rule": rule, "comparisons": []}
    out["chance"] = chance
    for n, r in _pairs(sweep_groups(rows, "high")):
        k = nearest_k(sorted(set(n["ks"]) & set(r["ks"])))
        an, ar = n["acc"][n["ks"].index(k)], r["acc"][r["ks"].index(k)]
        out["comparisons"].append(
            {
                "natural": n["label"],
                "robust": r["label"],
                "k": k,
                "natural_acc_k": an,
                "robust_acc_k": ar,
                "holds": bool(an > chance + MARGIN_C2 and abs(ar - chance) <= MARGIN_C2),
            }
        )
    return _verdict(out)


def claim_c3(rows: list[dict]) -> dict:
    rule = (
        f"holds when the robust model's share of |RIG rank attribution| in the top {TOP_RANKS_C3} "
        "path ranks (metrics.json rig.top4_share, else computed from rig.npz) exceeds the natural "
        "model's, for every natural/robust pair of the same dataset (full-image runs)"
    )
    out = {"claim": "C3", "figure": "fig-rig-spectrum.png", "rule": rule, "comparisons": []}
    out["figures"] = ["fig-rig-spectrum.png", "fig-rig.png"]
    shares: dict[str, list[tuple[dict, float]]] = {"natural": [], "robust": []}
    for r in ok_runs(rows):
        if r.get("rank") is not None or r.get("kind") not in shares:
            continue
        share = (r.get("rig") or {}).get("top4_share")
        if share is None:
            attr = rank_attribution(r)
            share = top_share(*attr) if attr else None
        if share is not None:
            shares[r["kind"]].append((r, float(share)))
    for rn, sn in shares["natural"]:
        for rr, sr in shares["robust"]:
            if rn.get("dataset") != rr.get("dataset"):
                continue
            out["comparisons"].append(
                {
                    "natural": f"{rn['model']} {rn['attack']} seed {rn.get('seed')}",
                    "robust": f"{rr['model']} {rr['attack']} seed {rr.get('seed')}",
                    "natural_top4_share": sn,
                    "robust_top4_share": sr,
                    "holds": bool(sr > sn),
                }
            )
    out["map_structure"] = map_structure(rows)
    return _verdict(out)


def map_structure(rows: list[dict], top: int = TOP_RANKS_C3) -> list[dict]:
    """How structured (clean) the pixel maps in rig.npz are: the share of each channel-summed,
    mean-centred |map|'s energy (sum of squared singular values) in its top `top` singular values,
    averaged over images, for RIG and vanilla-gradient maps (noise spreads it over all ranks)."""
    out = []
    for kind, r in sorted(_rig_runs(rows).items()):
        with np.load(r["rig_npz"]) as z:
            if "pixel" not in z.files or "vanilla" not in z.files:
                continue
            entry = {"kind": kind, "run": Path(r["run_dir"]).name}
            for key in ("pixel", "vanilla"):
                maps = np.abs(z[key]).sum(1)
                maps = maps - maps.mean(axis=(1, 2), keepdims=True)  # the constant part aside
                sv = np.linalg.svd(maps, compute_uv=False) ** 2
                share = sv[:, :top].sum(1) / np.maximum(sv.sum(1), 1e-30)
                entry["rig" if key == "pixel" else key] = float(share.mean())
        out.append(entry)
    return out


def _ranks(v: Sequence[float]) -> np.ndarray:
    """Ranks with ties averaged (as Spearman's rho needs)."""
    v = np.asarray(v, dtype=float)
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):
        ranks[v == value] = ranks[v == value].mean()
    return ranks


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    if len(x) < 2:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def claim_c4(rows: list[dict]) -> dict:
    rule = (
        "reported, no pass/fail rule (our extension): the trend of clean and robust accuracy "
        "with the training rank k: Spearman rank correlation with k (ties averaged) and the "
        "change from the smallest to the largest k; 'rises'/'falls' needs |rho| > 0.5 and a "
        f"change of at least {100 * FLAT_C4:.0f} points, else 'flat' or 'no clear trend'"
    )
    out = {"claim": "C4", "figure": "fig-train-rank.png", "rule": rule, "comparisons": []}
    for g in train_rank_groups(rows):
        entry = {"group": ", ".join(str(x) for x in g["key"]), "ks": g["ks"], "clean": g["clean"]}
        entry["robust"] = g["robust"]
        entry["clean_trend"] = _spearman(g["ks"], g["clean"])
        entry["clean_change"] = g["clean"][-1] - g["clean"][0]
        rob = [(k, v) for k, v in zip(g["ks"], g["robust"], strict=True) if v is not None]
        entry["robust_trend"] = _spearman(*zip(*rob, strict=True)) if len(rob) > 1 else None
        entry["robust_change"] = rob[-1][1] - rob[0][1] if len(rob) > 1 else None
        out["comparisons"].append(entry)
    if len(out["comparisons"]) == 0 or all(len(c["ks"]) < 2 for c in out["comparisons"]):
        out["verdict"] = NOT_TESTABLE
    else:
        out["verdict"] = "reported"
    return out


def _verdict(out: dict) -> dict:
    comps = out["comparisons"]
    if not comps:
        out["verdict"] = NOT_TESTABLE
    else:
        out["verdict"] = "holds" if all(c["holds"] for c in comps) else "does not hold"
    return out


def _trend_word(rho: float | None, change: float | None = None) -> str:
    """ "rises" / "falls" (Spearman beyond +-0.5 and a change of >= 2 points from the smallest
    to the largest k), "flat" (< 2 points) or "no clear trend"."""
    if rho is None or (isinstance(rho, float) and math.isnan(rho)):
        return "n/a"
    if change is not None and abs(change) < FLAT_C4:
        word = "flat"
    else:
        word = "rises" if rho > 0.5 else "falls" if rho < -0.5 else "no clear trend"
    delta = "" if change is None else f"{100 * change:+.1f} points, "
    return f"{word} ({delta}Spearman {rho:+.2f})"


STATEMENTS = {
    "C1": "On rank-k approximations of test images, robust models keep much more of their "
    "accuracy at small k than natural models do.",
    "C2": "On the high-rank residual H_k = x - L_k(x), natural models stay above chance for "
    "small k; robust models fall to chance.",
    "C3": "RIG attributes a robust model's prediction mostly to the top few ranks, a natural "
    "model's to more, higher ranks.",
    "C4": "Models trained on rank-k data: clean and robust accuracy as k grows.",
}


def claims(rows: list[dict]) -> list[dict]:
    return [claim_c1(rows), claim_c2(rows), claim_c3(rows), claim_c4(rows)]


def render_report(rows: list[dict], results: list[dict], figures: dict | None = None) -> str:
    lines = [
        "# Claims report",
        "",
        f"Built from {summary_line(rows)}; runs table: [runs.csv](runs.csv), "
        "[runs.json](runs.json). Regenerate with `make report` (or `make figures report`).",
        "",
        "| claim | verdict | key numbers | figure |",
        "|---|---|---|---|",
    ]
    for c in results:
        lines.append(
            f"| {c['claim']} | **{c['verdict']}** | {_key_numbers(c)} | "
            f"[{c['figure']}]({c['figure']}) |"
        )
    for c in results:
        lines += [
            "",
            f"## {c['claim']}: {c['verdict']}",
            "",
            f"Claim: {STATEMENTS[c['claim']]}",
            "",
        ]
        lines += [f"Rule: {c['rule']}.", ""]
        for fig in c.get("figures", [c["figure"]]):
            status = (figures or {}).get(fig.removeprefix("fig-").removesuffix(".png"))
            if isinstance(status, str):
                lines.append(f"Figure {fig}: {status}.")
            else:
                lines.append(f"![{fig}]({fig})")
        lines.append("")
        if not c["comparisons"]:
            lines.append("No runs to test it: " + _needs(c["claim"]))
        else:
            lines += _comparison_table(c)
        if c.get("map_structure"):
            lines += [
                "",
                f"Map cleanliness (not part of the rule): share of each |map|'s energy in its top "
                f"{TOP_RANKS_C3} singular values (maps mean-centred), mean over the rig.npz "
                "images (higher = more structured, less noise-like).",
                "",
                "| model | run | RIG map | vanilla gradient | RIG cleaner |",
                "|---|---|---|---|---|",
            ]
            for m in c["map_structure"]:
                lines.append(
                    f"| {m['kind']} | {m['run']} | {_pct(m['rig'])} | {_pct(m['vanilla'])} | "
                    f"{'yes' if m['rig'] > m['vanilla'] else 'no'} |"
                )
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        lines += [
            "",
            "## Runs that did not finish",
            "",
            "| run | status | error |",
            "|---|---|---|",
        ]
        for r in bad:
            lines.append(f"| `{r['run_dir']}` | {r['status']} | {r.get('error') or ''} |")
    return "\n".join(lines) + "\n"


def _needs(claim: str) -> str:
    return {
        "C1": "a natural and a robust full-image run with the low-rank sweep (sweep.enabled=true).",
        "C2": "a natural and a robust full-image run with the high-rank sweep "
        "(sweep.modes has high).",
        "C3": "a natural and a robust full-image run with RIG (rig.enabled=true).",
        "C4": "a `-m rank=k1,k2,...` sweep (at least two ranks).",
    }[claim]


def _key_numbers(c: dict) -> str:
    if not c["comparisons"]:
        return "-"
    parts = []
    for x in c["comparisons"]:
        if c["claim"] == "C1":
            parts.append(
                f"k={x['k']}: kept natural {_pct(x['natural_rel'])} "
                f"vs robust {_pct(x['robust_rel'])}"
            )
        elif c["claim"] == "C2":
            parts.append(
                f"k={x['k']}: natural {_pct(x['natural_acc_k'])}, "
                f"robust {_pct(x['robust_acc_k'])}, "
                f"chance {_pct(c['chance'])}"
            )
        elif c["claim"] == "C3":
            parts.append(
                f"top-4 share natural {_pct(x['natural_top4_share'])} vs robust "
                f"{_pct(x['robust_top4_share'])}"
            )
        else:
            parts.append(
                f"{x['group']}: clean {_trend_word(x['clean_trend'], x['clean_change'])}, "
                f"robust {_trend_word(x['robust_trend'], x['robust_change'])}"
            )
    return "; ".join(parts)


def _comparison_table(c: dict) -> list[str]:
    comps = c["comparisons"]
    if c["claim"] == "C4":
        lines = ["| group | k | clean | robust |", "|---|---|---|---|"]
        for x in comps:
            for k, cl, rb in zip(x["ks"], x["clean"], x["robust"], strict=True):
                lines.append(f"| {x['group']} | {k} | {_pct(cl)} | {_pct(rb)} |")
            lines.append(
                f"| {x['group']} | trend | {_trend_word(x['clean_trend'], x['clean_change'])} | "
                f"{_trend_word(x['robust_trend'], x['robust_change'])} |"
            )
        return lines
    keys = [k for k in comps[0] if k not in ("natural", "robust")]
    head = ["natural", "robust", *keys]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in comps:
        cells = []
        for h in head:
            v = x[h]
            if isinstance(v, float) and h != "k":
                cells.append(_pct(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(rows: list[dict], out_dir: str | Path, figures: dict | None = None) -> tuple[Path, list]:
    """Write out_dir/report.md and report.json; return (report.md path, claim results)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = claims(rows)
    if figures is None:
        figures = {
            name: [out_dir / f"fig-{name}.png"]
            if (out_dir / f"fig-{name}.png").is_file()
            else "not drawn yet (run `make figures`)"
            for name in FIGURES
        }
    path = out_dir / "report.md"
    path.write_text(render_report(rows, results, figures))
    (out_dir / "report.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"[report] {path}: " + ", ".join(f"{c['claim']} {c['verdict']}" for c in results))
    return path, results


def report_summary(results: list[dict]) -> dict:
    """Flat {key: number or string} for a W&B run summary."""
    summary: dict[str, Any] = {}
    for c in results:
        summary[f"{c['claim']}/verdict"] = c["verdict"]
        for i, x in enumerate(c["comparisons"]):
            for k, v in x.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    summary[f"{c['claim']}/{i}/{k}"] = v
                elif isinstance(v, bool):
                    summary[f"{c['claim']}/{i}/{k}"] = int(v)
    return summary


def log_wandb(rows: list[dict], results: list[dict], out_dir: Path, project: str = "rankrobust"):
    """A small W&B run (job_type "report") with the verdicts as summary, the runs table and
    the figures; offline unless WANDB_MODE=online. Grouped with the runs when they share one."""
    import os

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    groups = {r.get("group") for r in rows}  # one sweep's runs: the report joins their group
    run = wandb.init(
        project=project,
        name="report",
        job_type="report",
        group=groups.pop() if len(groups) == 1 and None not in groups else "report",
        dir=str(out_dir),
        reinit=True,
    )
    from rankrobust.collect import _flat

    flats = [_flat(r) for r in rows]
    cols = sorted({c for f in flats for c in f})
    table = wandb.Table(columns=cols, data=[[str(f.get(c, "")) for c in cols] for f in flats])
    images = {f"figures/{p.stem}": wandb.Image(str(p)) for p in sorted(out_dir.glob("fig-*.png"))}
    run.log({"runs": table, **images})
    run.summary.update(report_summary(results))
    run.finish()
    wandb.teardown()  # flush: the first run of a process may otherwise reach disk after return
    print(f"[report] W&B run 'report' logged ({os.environ['WANDB_MODE']}) under {out_dir}/wandb")


# ---------------------------------------------------------------------------------------------
# CLI.
