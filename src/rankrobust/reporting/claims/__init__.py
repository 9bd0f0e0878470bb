"""The paper's claims C1-C4 and our C5, decided on the run table (rankrobust.reporting.collect):
each claim's rule and verdict with 95% intervals lives in its own module, c1 ... c5; `CLAIM_MAP`
below says where each claim is decided, what it reads and which figures show it.

    claims/c1.py ... c5.py   one claim each: its statement, rule, thresholds and `decide(rows)`
    claims/attribution.py    the method comparison behind C3's "RIG maps are cleaner"
    claims/grouping.py       which runs are averaged (seeds) and paired (natural vs robust)
    claims/_common.py        ClaimResult, "not testable" reasons, suspect runs

Data flows one way: results -> collect -> claims -> figures / report (both read this package).
A verdict is "holds" / "does not hold" when the interval lies wholly on one side of the rule's
threshold, "inconclusive" when it straddles it or a count it needs is unknown; C4 and C5 are
"reported" (no pass/fail rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from rankrobust.reporting.claims import c1, c2, c3, c4, c5
from rankrobust.reporting.claims._common import (
    K_REF,
    NOT_TESTABLE,
    REPORTED,
    ClaimResult,
    nearest_k,
    not_testable,
    suspect_runs,
)
from rankrobust.reporting.claims.c1 import MARGIN_C1
from rankrobust.reporting.claims.c2 import MARGIN_C2
from rankrobust.reporting.claims.c3 import TOP_RANKS_C3, group_top_share, map_structure, top_share
from rankrobust.reporting.claims.c4 import FLAT_C4, trend
from rankrobust.reporting.claims.grouping import (
    USABLE,
    Group,
    dataset_name,
    full_image,
    groups,
    num_classes,
    pairs,
    rank_attribution,
    rig_runs,
    sweep_groups,
    train_rank_groups,
    unlabelled,
    usable,
)
from rankrobust.reporting.intervals import FAILS, HOLDS, INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """Where a claim is decided (`module`), what it reads (`measurement`: metrics.json keys,
    per-image files) and the figures that show it (names drawn by rankrobust.reporting.figures)."""

    module: ModuleType
    measurement: str
    figures: tuple[str, ...]


# The claim -> module -> measurement -> figure map: report.md links and the dashboard shows each
# claim's figures from it; the measurement names metrics.json keys unless a file is named.
CLAIM_MAP: dict[str, Claim] = {
    "C1": Claim(c1, "rank_sweep.low, clean_acc; per_image.npz clean, rank_sweep.low",
                ("fig-rank-accuracy",)),
    "C2": Claim(c2, "rank_sweep.high; per_image.npz rank_sweep.high (each model's chance)",
                ("fig-high-rank",)),
    "C3": Claim(c3, "rig (top4_share, mean_per_rank); rig.npz; attribution (maps compared)",
                ("fig-rig-spectrum", "fig-rig", "fig-attribution-maps", "fig-attribution-curves")),
    "C4": Claim(c4, "clean_acc, robust_acc of runs trained on rank-k data (rank)",
                ("fig-train-rank",)),
    "C5": Claim(c5, "basis_sweep (energy, low, high per basis), basis_sweep_n",
                ("fig-bases-energy", "fig-bases-high", "fig-heat-maps")),
}  # fmt: skip
STATEMENTS = {claim: entry.module.STATEMENT for claim, entry in CLAIM_MAP.items()}
FIGURES = {claim: list(entry.figures) for claim, entry in CLAIM_MAP.items()}

__all__ = [
    "CLAIM_MAP",
    "FAILS",
    "FIGURES",
    "FLAT_C4",
    "HOLDS",
    "INCONCLUSIVE",
    "K_REF",
    "MARGIN_C1",
    "MARGIN_C2",
    "NOT_TESTABLE",
    "REPORTED",
    "STATEMENTS",
    "TOP_RANKS_C3",
    "USABLE",
    "Claim",
    "ClaimResult",
    "Group",
    "claim_c1",
    "claim_c2",
    "claim_c3",
    "claim_c4",
    "claim_c5",
    "claims",
    "dataset_name",
    "full_image",
    "group_top_share",
    "groups",
    "map_structure",
    "nearest_k",
    "not_testable",
    "num_classes",
    "pairs",
    "rank_attribution",
    "rig_runs",
    "suspect_runs",
    "sweep_groups",
    "top_share",
    "train_rank_groups",
    "trend",
    "unlabelled",
    "usable",
]


def _decided(claim: str, rows: Sequence[dict]) -> ClaimResult:
    """The claim's module decides; its figures come from CLAIM_MAP."""
    entry = CLAIM_MAP[claim]
    found = entry.module.decide(rows)
    found.figures = list(entry.figures)
    return found


def claim_c1(rows: Sequence[dict]) -> ClaimResult:
    """Robust models keep more of their accuracy on L_k(x) (claims/c1.py)."""
    return _decided("C1", rows)


def claim_c2(rows: Sequence[dict]) -> ClaimResult:
    """Natural models stay above chance on H_k(x), robust ones fall to it (claims/c2.py)."""
    return _decided("C2", rows)


def claim_c3(rows: Sequence[dict]) -> ClaimResult:
    """RIG puts a robust model's attribution in the top ranks (claims/c3.py)."""
    return _decided("C3", rows)


def claim_c4(rows: Sequence[dict]) -> ClaimResult:
    """Accuracy of models trained on rank-k data as k grows (claims/c4.py)."""
    return _decided("C4", rows)


def claim_c5(rows: Sequence[dict]) -> ClaimResult:
    """Is it rank, or just frequency? (claims/c5.py)."""
    return _decided("C5", rows)


def claims(rows: Sequence[dict]) -> list[ClaimResult]:
    """C1-C5 decided on the run table."""
    return [_decided(claim, rows) for claim in CLAIM_MAP]
