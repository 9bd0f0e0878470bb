"""Each setting's rule is stated once (pipeline/settings.py) and enforced: a value outside every
declared range or set of choices stops the run with one paragraph naming the key and the
value; no other module holds a table of ranges."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from helpers import CONF, FAST, ROOT, make_cfg
from omegaconf import OmegaConf, open_dict

from rankrobust.errors import ConfigError
from rankrobust.pipeline import checks, settings
from rankrobust.pipeline.settings import INF, Rule


def _bad_values(rule: Rule) -> list:
    """Values the rule refuses, made from the rule itself."""
    if rule.each:
        bad: list = [["no_such_choice"], "low", *([] if rule.empty else [[]])]
    elif rule.choices:
        bad = ["no_such_choice", 3.5]
    else:
        bad = ["abc", float("nan")]
        step = 1 if rule.kind is int else 0.5
        if rule.low != -INF:
            bad.append(rule.low if rule.low_open else rule.low - step)
        if rule.high != INF:
            bad.append(rule.high if rule.high_open else rule.high + step)
        if rule.kind is int:
            bad.append(rule.low + 1.5 if rule.low != -INF else 1.5)
    bad += [] if rule.nullable else [None]
    return [v for v in bad if not isinstance(v, rule.passes or ())]


BASE = make_cfg(*FAST)
RULES = {
    f"{prefix}.{name}" if prefix else name: rule
    for prefix, declaration in settings.declarations(BASE).items()
    for name, rule in settings.rules_of(declaration).items()
}


def test_every_group_declares_its_rules():
    found = settings.declarations(BASE)
    groups = {"", "dataset", "model", "module", "optim", "trainer", "transform", "eval"}
    groups |= {"sweep", "rig", "analysis", "attribution", "callbacks.last_checkpoint"}
    assert groups <= set(found)
    assert all(settings.rules_of(d) for d in found.values())
    assert len(RULES) > 50


@pytest.mark.parametrize("key", RULES)
def test_every_declared_rule_is_enforced_naming_the_key(key):
    rule = RULES[key]
    present = OmegaConf.select(BASE, key, default="__absent__") != "__absent__"
    for i, bad in enumerate(_bad_values(rule)):
        cfg = copy.deepcopy(BASE)
        with open_dict(cfg):
            OmegaConf.update(cfg, key, bad, merge=False, force_add=True)
        with pytest.raises(ConfigError) as info:
            settings.validate(cfg)
        message = str(info.value)
        assert message.startswith(f"{key}=") and "is not valid" in message, (bad, message)
        assert "\n" not in message
        if present and i == 0:  # the whole check (exit 2 under the CLI) stops on it too
            with pytest.raises(ConfigError, match=re.escape(f"{key}=")):
                checks.check_config(cfg)


def test_the_defaults_and_the_edges_of_each_range_pass():
    settings.validate(BASE)
    for key, rule in RULES.items():
        if rule.low != -INF and not rule.low_open:
            settings.check(key, int(rule.low) if rule.kind is int else float(rule.low), rule)
        if rule.high != INF and not rule.high_open:
            settings.check(key, rule.high, rule)
        if rule.nullable:
            settings.check(key, None, rule)
        for choice in rule.choices:
            settings.check(key, [choice] if rule.each else choice, rule)


@pytest.mark.parametrize("group", settings.BUILT)
def test_a_built_groups_yaml_and_dataclass_defaults_agree(group):
    """The analysis settings' defaults live in their dataclass and in their yaml (what users
    change): the two must not drift."""
    node = yaml.safe_load((CONF / group / "default.yaml").read_text())
    declaration = settings.declarations(BASE)[group]
    defaults = declaration()
    for f in dataclasses.fields(declaration):
        assert f.name in node, f"{group}.{f.name} is missing from conf/{group}/default.yaml"
        assert node[f.name] == getattr(defaults, f.name), f"{group}.{f.name}"


RANGE_ROW = re.compile(r"""\(\s*["'][a-z_]+\.[a-z_.]+["']\s*,\s*(int|float)\s*,""")
LITERAL_RANGE = re.compile(r"""check_range\(\s*["'][a-z_.]+["']""")


def test_no_other_module_holds_a_range_table():
    """Ranges are field declarations in pipeline/settings.py (or the dataclass a yaml builds),
    never rows of dotted keys or a literal key's range checked elsewhere."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "pipeline":
            continue
        text = path.read_text(encoding="utf-8")
        if "RANGES" in text or RANGE_ROW.search(text) or LITERAL_RANGE.search(text):
            found.append(str(Path(path).relative_to(ROOT)))
    assert not found, found
