"""The claim -> module -> measurement -> figure map (reporting/claims/__init__.py CLAIM_MAP):
each claim has its module c1 ... c5 that says what it claims, and only real figures are named."""

from __future__ import annotations

import importlib

import pytest

from rankrobust.reporting import claims as C
from rankrobust.reporting.figures import FIGURES as DRAWN


@pytest.mark.parametrize("n", range(1, 6))
def test_each_claim_has_its_module_naming_it(n):
    claim = f"C{n}"
    module = importlib.import_module(f"rankrobust.reporting.claims.c{n}")
    assert C.CLAIM_MAP[claim].module is module
    doc = module.__doc__ or ""
    assert doc.startswith(f"{claim} ") or doc.startswith(f"{claim}:"), doc[:40]
    for section in ("Rule", "Measurement", "Figure"):
        assert section in doc, (claim, section)
    for figure in C.CLAIM_MAP[claim].figures:
        assert figure in doc, (claim, figure)  # the docstring names the figures the map names
    assert module.STATEMENT == C.STATEMENTS[claim] and module.RULE
    assert callable(module.decide)


def test_the_map_names_only_figures_that_are_drawn():
    drawn = {f"fig-{name}" for name in DRAWN}
    named = {f for entry in C.CLAIM_MAP.values() for f in entry.figures}
    assert named <= drawn, named - drawn
    assert list(C.CLAIM_MAP) == ["C1", "C2", "C3", "C4", "C5"]
    assert all(entry.measurement for entry in C.CLAIM_MAP.values())


def test_results_carry_their_map_entry():
    """With no runs every claim is not testable, and still says its statement and figures."""
    found = C.claims([])
    assert [c.claim for c in found] == list(C.CLAIM_MAP)
    for c in found:
        assert c.verdict.startswith("not testable (")
        assert c.figures == list(C.CLAIM_MAP[c.claim].figures)
        assert c.as_dict()["statement"] == C.STATEMENTS[c.claim]
        assert getattr(C, f"claim_{c.claim.lower()}")([]).as_dict() == c.as_dict()
