"""The project's W&B dashboard as code: one saved workspace with a section per claim (C1-C5)
and one for the runs, built with `wandb_workspaces` from what the runs and the report run log.

    python -m rankrobust.reporting.dashboard [--entity E] [--project rankrobust]
    python -m rankrobust.reporting.dashboard --dry-run --out dashboard.json

Online it saves the workspace and prints its URL. Without a W&B login or network it says so in
one paragraph and exits with code 2. `--dry-run` saves nothing and needs neither: it writes
`{"workspace", "sections": [{"name", "panels": [{"type", "title", "keys"}]}], "runs_table"}`,
listed from the same panel objects that would be saved, with the exact keys each panel reads
(`config:<dotted key>` for run config; every other key is a summary or history key).

Keys come from the places that log them: loggers.log_results (clean_acc, robust_acc, rig/*,
rank_sweep/*), report.log_wandb (C*/verdict, C*/0/*, figures/fig-*, runs) and claims.FIGURES.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws

from rankrobust.pipeline.loggers import has_api_key, offline_reason  # noqa: F401  (dashboard's API)
from rankrobust.reporting.claims import FIGURES, STATEMENTS

WORKSPACE_NAME = "rankrobust: claims C1-C5"
DEFAULT_PROJECT = "rankrobust"
ATTACK = wr.Config("attack.name")  # natural runs have attack.name = none
TRAIN_RANK = wr.Config("rank")  # null for full-image runs: absent from the C4 scatter
# The runs table's columns (W&B column ids: summary:<key>, config:<top>.value.<rest>).
RUNS_COLUMNS = [
    "config:attack.value.name",
    "config:rank.value",
    "summary:clean_acc",
    "summary:robust_acc",
    "summary:rig/top4_share",
]
EXIT_OFFLINE = 2
SECTION_NAMES = {
    "C1": "C1: accuracy on low-rank images L_k(x)",
    "C2": "C2: accuracy on the high-rank residual H_k(x)",
    "C3": "C3: RIG rank attributions",
    "C4": "C4: models trained on rank-k data",
    "C5": "C5: is it rank, or just frequency? (other bases, one energy axis)",
}


# ---------------------------------------------------------------------------------------------
# The panels: one definition, saved as they are and listed by dry_run.


def _table_line(table: str, y: str, title: str) -> wr.CustomChart:
    """y vs rank from a run's table, one line per run: the chart wandb.plot.line logs
    (loggers.log_results), here across runs. Run names (dataset-model-attack-rank) tell the
    attacks apart in the legend."""
    chart = wr.CustomChart.from_table(
        table,
        chart_fields={"x": "rank", "y": y, "stroke": None},
        chart_strings={"title": f"{title}, one line per run"},
    )
    chart.chart_name = "wandb/line/v0"  # the Vega spec wandb.plot.line uses
    return chart


def _line(table: str, x: str, y: str, title: str) -> wr.CustomChart:
    """y vs x from a run's table, one line per run (as _table_line, any x column)."""
    chart = wr.CustomChart.from_table(
        table,
        chart_fields={"x": x, "y": y, "stroke": None},
        chart_strings={"title": f"{title}, one line per run"},
    )
    chart.chart_name = "wandb/line/v0"
    return chart


def _by_attack(metric: str, title: str) -> wr.BarPlot:
    return wr.BarPlot(
        title=title,
        metrics=[metric],
        groupby=ATTACK,
        groupby_aggfunc="mean",
        groupby_rangefunc="stderr",
        orientation="v",
    )


def _report(claim: str, numbers: dict[str, str]) -> list:
    """The report run's verdict, the numbers it rests on and the claim's figures."""
    panels: list = [
        wr.ScalarChart(title=f"{claim} verdict (report run)", metric=f"{claim}/verdict"),
    ]
    panels += [
        wr.ScalarChart(title=f"{title} (report run)", metric=k) for k, title in numbers.items()
    ]
    panels.append(
        wr.MediaBrowser(
            title=f"{claim} figures (report run)",
            media_keys=[f"figures/{name}" for name in FIGURES[claim]],
            gallery_axis="run",
        )
    )
    return panels


def sections() -> list[ws.Section]:
    """The workspace's sections: C1-C5 (curves, per-attack numbers, verdicts, figures), Runs."""
    c1 = [
        _table_line("rank_sweep/low_table", "accuracy", "Accuracy on L_k(x) vs k"),
        _by_attack("clean_acc", "Clean accuracy by attack"),
    ]
    c2 = [_table_line("rank_sweep/high_table", "accuracy", "Accuracy on H_k(x) = x - L_k(x) vs k")]
    c3 = [
        _by_attack("rig/top4_share", "RIG: share of |rank attribution| in ranks <= 4, by attack"),
        _table_line(
            "rig/rank_attribution_table", "share", "Mean RIG rank attribution share vs rank"
        ),
        wr.MediaBrowser(title="RIG maps per run", media_keys=["rig/grid"], gallery_axis="run"),
    ]
    c4 = [
        wr.ScatterPlot(title="Clean accuracy vs training rank k", x=TRAIN_RANK, y="clean_acc"),
        wr.ScatterPlot(title="Robust accuracy vs training rank k", x=TRAIN_RANK, y="robust_acc"),
    ]
    c5 = [
        _line("basis_sweep/svd_table", "energy", "accuracy", "SVD low-pass: accuracy vs energy"),
        _line(
            "basis_sweep/fourier_table",
            "energy",
            "accuracy",
            "Fourier low-pass: accuracy vs energy",
        ),
        wr.WeavePanelSummaryTable(table_name="basis_sweep/table"),
        _line("heat_maps/rank_table", "rank", "error", "Rank heat map: error vs rank i"),
        wr.WeavePanelSummaryTable(table_name="heat_maps/fourier_table"),
    ]
    runs = [
        _by_attack("robust_acc", "Robust accuracy by attack"),
        wr.WeavePanelSummaryTable(table_name="runs"),  # the report run's run table
        wr.WeavePanelSummaryTable(table_name="rank_sweep/table"),
    ]
    # report_summary's keys for the first natural/robust pair (C4 has only its verdict)
    numbers = {
        "C1": {"C1/0/kept_difference": "C1 share of clean accuracy kept at k=4: robust - natural"},
        "C2": {
            "C2/0/natural_acc_k": "C2 natural accuracy on H_4(x)",
            "C2/0/robust_acc_k": "C2 robust accuracy on H_4(x)",
            "C2/0/natural_chance": "C2 natural model's chance",
            "C2/0/robust_chance": "C2 robust model's chance",
        },
        "C3": {"C3/0/share_difference": "C3 top-4 share: robust - natural"},
        "C4": {},
        "C5": {
            "C5/0/svd_difference": "C5 SVD gap at energy 0.95: robust - natural",
            "C5/0/fourier_difference": "C5 Fourier gap at energy 0.95: robust - natural",
            "C5/0/svd_minus_fourier_difference": "C5 SVD gap - Fourier gap",
        },
    }
    claims = {"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5}
    out = [
        ws.Section(
            name=SECTION_NAMES[claim],
            panels=[wr.MarkdownPanel(markdown=f"**{claim}.** {STATEMENTS[claim]}"), *panels]
            + _report(claim, numbers[claim]),
            is_open=True,
        )
        for claim, panels in claims.items()
    ]
    return out + [ws.Section(name="Runs", panels=runs, is_open=True)]


def workspace(entity: str, project: str = DEFAULT_PROJECT) -> ws.Workspace:
    """The saved view: the sections above and a runs table with the columns the claims read."""
    return ws.Workspace(
        entity=entity,
        project=project,
        name=WORKSPACE_NAME,
        sections=sections(),
        runset_settings=ws.RunsetSettings(pinned_columns=list(RUNS_COLUMNS)),
    )


# ---------------------------------------------------------------------------------------------
# What each panel reads (the dry run).


def _key(metric) -> str:
    """A panel's metric as the key a run logs: `config:<dotted>` for config, else the name."""
    if isinstance(metric, wr.Config):
        return f"config:{metric.name}"
    return metric if isinstance(metric, str) else metric.name


def _column_key(column: str) -> str:
    """A runs-table column id as a key: summary:<k> -> k; config:a.value.b -> config:a.b."""
    section, name = column.split(":", 1)
    if section == "config":
        return "config:" + ".".join(p for p in name.split(".") if p != "value")
    return name


def panel_entry(panel) -> dict:
    """{"type", "title", "keys"}: the panel's class name, title and the keys it reads."""
    if isinstance(panel, wr.MarkdownPanel):
        title, keys = panel.markdown.split(".**")[0].strip("*"), []
    elif isinstance(panel, wr.CustomChart):
        title = (panel.chart_strings or {}).get("title", "")
        keys = [panel.query["summaryTable"]["tableKey"]]
    elif isinstance(panel, wr.WeavePanelSummaryTable):
        title, keys = panel.table_name, [panel.table_name]
    elif isinstance(panel, wr.MediaBrowser):
        title, keys = panel.title, list(panel.media_keys)
    elif isinstance(panel, wr.ScalarChart):
        title, keys = panel.title, [_key(panel.metric)]
    elif isinstance(panel, wr.ScatterPlot):
        title, keys = panel.title, [_key(m) for m in (panel.x, panel.y, panel.z) if m]
    elif isinstance(panel, wr.BarPlot):
        title = panel.title
        keys = [_key(m) for m in panel.metrics] + ([_key(panel.groupby)] if panel.groupby else [])
    else:
        raise TypeError(f"panel={panel!r}: no key listing for {type(panel).__name__}")
    return {"type": type(panel).__name__, "title": title or "", "keys": keys}


def dry_run(view: ws.Workspace) -> dict:
    """What `view.save()` would save, as plain JSON (the wire model is validated too)."""
    view._to_model()  # the same conversion save() makes: a bad panel fails here, offline
    return {
        "workspace": view.name,
        "sections": [
            {"name": s.name, "panels": [panel_entry(p) for p in s.panels]} for s in view.sections
        ],
        "runs_table": [
            _column_key(c) for c in view.runset_settings.pinned_columns if not c.startswith("run:")
        ],
    }


# ---------------------------------------------------------------------------------------------
# Online: login and network, checked fast and said in one paragraph.


def _say(reason: str) -> int:
    print(
        f"rankrobust.reporting.dashboard: the workspace was not saved: {reason}. Log in with "
        "`wandb login` (or set WANDB_API_KEY), check the network, then rerun `make dashboard`; "
        "`python -m rankrobust.reporting.dashboard --dry-run --out dashboard.json` lists the "
        "panels without either.",
        file=sys.stderr,
    )
    return EXIT_OFFLINE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save the project's W&B workspace (C1-C5).")
    parser.add_argument("--entity", default=None, help="W&B entity (default: your default)")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="W&B project")
    parser.add_argument("--dry-run", action="store_true", help="save nothing; write --out")
    parser.add_argument("--out", default=None, help="with --dry-run: the JSON file")
    args = parser.parse_args(argv)
    if args.dry_run:
        text = json.dumps(dry_run(workspace(args.entity or "<entity>", args.project)), indent=2)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
            print(f"[dashboard] dry run: {args.out}")
        else:
            print(text)
        return 0
    reason = offline_reason()
    if reason:
        return _say(reason)
    try:
        import wandb

        entity = args.entity or wandb.Api(timeout=10).default_entity
        view = workspace(entity, args.project).save()
    except Exception as err:  # noqa: BLE001 - the server's refusal, said in one paragraph
        return _say(f"W&B refused it ({type(err).__name__}: {err})")
    print(f"[dashboard] saved: {view.url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
