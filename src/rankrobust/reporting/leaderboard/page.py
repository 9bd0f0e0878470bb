"""leaderboard.html: one self-contained static page (no server, no network, no CDN).

Inline CSS and JavaScript; figures inlined as base64 PNG. The models' table sorts by any column
on a click of its header (again: the other way): numeric columns numerically, text columns
alphabetically, empty cells last in both directions, ties in their previous order. Every cell
carries its raw value in `data-value` (absent for null), so what is sorted is the number, not
its rounded text. Rows of models whose run did not finish are tinted and say why.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path

TITLE = "rankrobust leaderboard: rank robustness across models"
# Columns shown as percentages (fractions in the data).
_PERCENT = ("clean_acc", "clean_acc_reported", "autoattack_acc", "robust_acc", "rig_top4_share")
# Long columns left out of the page's table (they are in leaderboard.json / .csv).
_HIDDEN = ("run_dir", "threat", "source")

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 12px; }
#leaderboard td { white-space: nowrap; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; white-space: nowrap; }
#leaderboard th { cursor: pointer; user-select: none; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.null { color: #999; }
tr.not-ok { background: #fff1f0; }
#leaderboard td.why { white-space: normal; min-width: 14em; max-width: 28em; font-size: 11px; }
.wrap { overflow-x: auto; }
figure { display: inline-block; width: 48%; min-width: 420px; margin: 0.5em 1% 1em 0; }
figure img { width: 100%; border: 1px solid #ddd; }
.holds { color: #006d2c; font-weight: bold; } .fails { color: #b30000; font-weight: bold; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById("leaderboard");
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function empty(v) { return v === undefined || v === null; }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var numeric = th.getAttribute("data-type") === "num";
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
        if (empty(x) || empty(y)) { return empty(x) === empty(y) ? 0 : (empty(x) ? 1 : -1); }
        if (numeric) { return dir * (parseFloat(x) - parseFloat(y)); }
        return dir * x.localeCompare(y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
"""


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _shown(column: str, v) -> str:
    if v is None:
        return "&mdash;"
    if _is_number(v) and (column in _PERCENT or column.startswith(("low@", "high@", "kept@"))):
        return f"{100 * v:.1f}%"
    if column == "link":
        return f'<a href="{html.escape(str(v))}">link</a>'
    return html.escape(str(v))


def _cell(column: str, v, numeric: bool) -> str:
    classes = [c for c, on in (("num", numeric), ("null", v is None), ("why", column == "why"))
               if on]  # fmt: skip
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    if v is not None:
        raw = repr(float(v)) if numeric else str(v)
        attrs += f' data-value="{html.escape(raw)}"'
    return f"<td{attrs}>{_shown(column, v)}</td>"


def _numeric(column: str, models: Sequence[dict]) -> bool:
    values = [m[column] for m in models if m.get(column) is not None]
    return bool(values) and all(_is_number(v) and math.isfinite(v) for v in values)


def table(models: Sequence[dict], columns: Sequence[str]) -> str:
    """The models' table (id="leaderboard"): one row per model, a header per column (`why`
    right after `status`, where a failed model's row says what to do)."""
    shown = []
    for c in columns:
        if c not in _HIDDEN and c != "why":
            shown += [c, "why"] if c == "status" and "why" in columns else [c]
    numeric = {c: _numeric(c, models) for c in shown}
    head = "".join(
        f'<th data-type="{"num" if numeric[c] else "text"}" title="click to sort">'
        f"{html.escape(c)}</th>"
        for c in shown
    )
    rows = []
    for m in models:
        tint = "" if m.get("status") == "ok" else ' class="not-ok"'
        cells = "".join(_cell(c, m.get(c), numeric[c]) for c in shown)
        rows.append(f"<tr{tint}>{cells}</tr>")
    return (
        f'<div class="wrap"><table id="leaderboard"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _verdict(v: str) -> str:
    css = {"holds": "holds", "does not hold": "fails"}.get(v)
    return f'<span class="{css}">{html.escape(v)}</span>' if css else html.escape(v)


def _interval(found: dict) -> str:
    if found["rho"] is None:
        return "&mdash;"
    if found["lo"] is None:
        return f"{found['rho']:+.3f}"
    return f"{found['rho']:+.3f} [{found['lo']:+.3f}, {found['hi']:+.3f}]"


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(path.stem)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"></figure>'


def population_section(claims: Sequence[dict], figures: dict[str, Path]) -> str:
    """The population claims: a table of verdicts per data set, the rules, the figures
    (`figures`: a claim's `figure` file name -> the PNG file to inline)."""
    if not claims:
        return "<p>No model with a data set: no population claim.</p>"
    rows = []
    for c in claims:
        left = "; ".join(f"{x['name']} ({x['reason']})" for x in c["left_out"]) or "none"
        rows.append(
            f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(c['dataset'])}</td>"
            f"<td>{html.escape(c['column'])}</td><td>{html.escape(c['expected'])}</td>"
            f"<td>{_interval(c)}</td><td>{c['n_models']}</td><td>{_verdict(c['verdict'])}</td>"
            f"<td>{html.escape(left)}</td></tr>"
        )
    names = ("claim", "data set", "against AutoAttack", "expected", "Spearman rho [95%]",
             "models", "verdict", "left out")  # fmt: skip
    head = "<tr>" + "".join(f"<th>{n}</th>" for n in names) + "</tr>"
    statements = "".join(
        f"<li><b>{html.escape(c['claim'])}</b>: {html.escape(c['statement'])} "
        f"<i>Rule:</i> {html.escape(c['rule'])}.</li>"
        for c in {c["claim"]: c for c in claims}.values()
    )
    # in the claims' order: data set, then claim
    images = "".join(_image(figures[c["figure"]]) for c in claims if c.get("figure") in figures)
    return (
        f'<div class="wrap"><table id="population"><thead>{head}</thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f"<ul>{statements}</ul>{images}"
    )


def render(board: dict, columns: Sequence[str], figures: dict[str, Path]) -> str:
    """The whole page for `board` (leaderboard.json's object) and the figures' PNG files
    ({file name: path}, see population_section)."""
    models = board["models"]
    counts: dict[str, int] = {}
    for m in models:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    repeats = "".join(
        f"<li>{html.escape(str(r['run_dir']))} repeats {html.escape(str(r['duplicate_of']))}</li>"
        for r in board.get("repeats", [])
    )
    repeats = f"<p>Left out (same identity and seed as a newer run):</p><ul>{repeats}</ul>" if (
        repeats) else ""  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{html.escape(TITLE)}</title><style>{CSS}</style></head>
<body><h1>{html.escape(TITLE)}</h1>
<p>{len(models)} models ({html.escape(summary)}). Accuracies in percent of the images each run
evaluated; <code>autoattack_acc</code> is the leaderboard's reported number,
<code>robust_acc</code> the run's own (measured) one; <code>kept@k</code> is accuracy on
L_k(x) divided by clean accuracy. Click a column header to sort (again: reverse); empty cells
go last.</p>
{table(models, columns)}
{repeats}
<h2>Population claims</h2>
{population_section(board["population"], figures)}
<script>{SCRIPT}</script>
</body></html>
"""
