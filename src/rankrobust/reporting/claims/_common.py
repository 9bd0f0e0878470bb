"""What every claim module shares: the result type, the "not testable" verdicts and their
reasons, the reference rank of C1/C2, the runs whose numbers cannot be right.

Intervals (rankrobust.reporting.intervals): Wilson for one run, t over seeds for a group of
several, the delta method for a ratio, Welch for a difference. A verdict is "holds" / "does not
hold" when the interval lies wholly on one side of the rule's threshold, "inconclusive" when it
straddles it or a count it needs is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rankrobust.reporting.claims.grouping import Group, sweep_groups, usable
from rankrobust.reporting.intervals import Estimate, all_of
from rankrobust.results import number_warnings

K_REF = 4  # the rank the C1/C2 rules look at (the nearest measured rank below it if absent)
REPORTED = "reported"  # the verdict of a claim with no pass/fail rule (C4, C5) that has data


def not_testable(reason: str) -> str:
    """The verdict of a claim no pair could test, with the reason in brackets."""
    return f"not testable ({reason})"


NOT_TESTABLE = not_testable("missing runs")


def nearest_k(ks: Sequence[int], k: int = K_REF) -> int:
    below = [x for x in ks if x <= k]
    return max(below) if below else min(ks)


def missing_pair(gs: Sequence[Group], what: str) -> str:
    """'missing runs: ...' for groups `gs` (the runs having `what`) that gave no pair: none at
    all, no run of one kind, or no natural and robust run sharing data and architecture."""
    if not gs:
        return f"missing runs: no finished full-image run has {what}"
    kinds = {g.kind for g in gs}
    have = "; ".join(g.label for g in gs)
    lacking = [k for k in ("natural", "robust") if k not in kinds]
    if lacking:
        return f"missing runs: no {' or '.join(lacking)} run with {what} (have: {have})"
    return f"missing runs: no natural and robust run share data and architecture (have: {have})"


def sweep_verdict(comps: list[dict], skipped: list[dict], rows: Sequence[dict], mode: str) -> str:
    """A rank-sweep claim's verdict (C1: mode "low", C2: "high"): all comparisons' verdicts,
    else why none could be made."""
    if comps:
        return all_of(c["verdict"] for c in comps)
    if skipped:
        return not_testable("; ".join(dict.fromkeys(s["reason"] for s in skipped)))
    sweep = "L_k" if mode == "low" else "H_k"
    return not_testable(missing_pair(sweep_groups(rows, mode), f"a rank sweep on {sweep}(x)"))


@dataclass
class ClaimResult:
    """One claim decided: its rule, verdict, comparisons (one per natural/robust pair), the
    figures that show it (the map in claims/__init__.py) and extra findings."""

    claim: str
    rule: str
    verdict: str
    comparisons: list[dict] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    statement: str = ""  # the claim in the paper's words (its module's STATEMENT)

    def as_dict(self) -> dict:
        def plain(v: Any) -> Any:
            if isinstance(v, Estimate):
                return v.as_dict()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [plain(x) for x in v]
            return v

        return plain(
            {
                "claim": self.claim,
                "statement": self.statement,
                "rule": self.rule,
                "verdict": self.verdict,
                "figures": self.figures,
                "comparisons": self.comparisons,
                **self.extra,
            }
        )


def suspect_runs(rows: Sequence[dict]) -> list[dict]:
    """Usable runs whose numbers cannot be right (results.number_warnings: robust accuracy
    above the clean accuracy of the same images): [{run, warnings}], for the report."""
    return [
        {"run": r.get("run_dir"), "warnings": ws}
        for r in usable(rows)
        if (ws := r.get("warnings") or number_warnings(r))
    ]


def suspects(gs: Sequence[Group]) -> dict:
    """{"suspect_runs": [run_dir, ...]} for the runs of groups a claim compared whose numbers
    cannot be right (`suspect_runs`), else {}."""
    runs = sorted({s["run"] for s in suspect_runs([r for g in gs for r in g.runs])})
    return {"suspect_runs": runs} if runs else {}


def result(
    claim: str,
    statement: str,
    rule: str,
    comps: list[dict],
    verdict: str | None = None,
    untestable: list[dict] | None = None,
    **extra: Any,
) -> ClaimResult:
    """The claim's result (figures are attached by claims/__init__.py from its map);
    `untestable`: the pairs no interval could be made for, each with its reason (listed in the
    report beside the tested ones)."""
    if verdict is None:
        verdict = all_of(c["verdict"] for c in comps) if comps else NOT_TESTABLE
    if untestable:
        extra["not_testable"] = untestable
    return ClaimResult(claim, rule, verdict, comps, [], extra, statement)
