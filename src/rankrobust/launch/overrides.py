"""Command-line overrides of keys the config does not have: one paragraph, before Hydra starts.

Hydra refuses `model.widht=8` (a key absent from the composed config, given without `+`) with
its own "Key 'widht' is not in struct" and exit 1, from inside its composition, where no
callback runs. `check_cli` composes the config first (with the group choices of the command
line; a sweep's first choice) and stops with exit 2 and one paragraph naming the key, its
closest valid key, and `+key=...` only where adding the key means something: the node is
built by a `_target_` that takes an argument of that name. Anything else it leaves to Hydra.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rankrobust.launch.preflight import _stop


def _cli_overrides(argv: Sequence[str]) -> list[str] | None:
    """The overrides of a run.py command line (None when it names another config)."""
    from hydra._internal.utils import get_args_parser

    try:  # quietly: Hydra parses it again and reports what is wrong
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = get_args_parser().parse_args(list(argv))
    except SystemExit:  # a malformed command line, or --help: Hydra's own answer
        return None
    if args.config_path or args.config_name or args.config_dir or args.info:
        return None
    return list(args.overrides)


def _paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of a config node (Hydra's own node left out)."""
    if OmegaConf.is_dict(node):
        for key in node:
            if not prefix and key == "hydra":
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path
            yield from _paths(node._get_node(key), path)


def _takes(node: Any, name: str) -> bool:
    """Whether the `_target_` building `node` names an argument `name` (so `+` can add it)."""
    if not OmegaConf.is_dict(node) or "_target_" not in node:
        return False
    try:
        from hydra.utils import get_object

        params = inspect.signature(get_object(node._target_)).parameters
    except Exception:  # noqa: BLE001 - an unimportable target: check_targets says so later
        return False
    return name in params and params[name].kind is not inspect.Parameter.VAR_KEYWORD


def _has(cfg: DictConfig, key: str) -> bool:
    """Whether `cfg` has the dotted `key` (set, `???` or an element of a list)."""
    node: Any = cfg
    for part in key.split("."):
        if OmegaConf.is_list(node):
            return True  # an index: Hydra checks it
        if not OmegaConf.is_dict(node) or part not in list(node.keys()):
            return False
        node = node._get_node(part)
    return True


def unknown_key_message(cfg: DictConfig, key: str, value: str) -> str | None:
    """The paragraph for overriding `key` in `cfg`, or None when `cfg` has it."""
    if _has(cfg, key):
        return None
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if OmegaConf.is_dict(node):  # the closest sibling, by its own name
        siblings = [str(k) for k in node if not str(k).startswith("_") and k != "hydra"]
        found = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
        close = [f"{parent}.{found[0]}" if parent else found[0]] if found else []
    else:  # the parent is missing too: the closest key of the same depth
        valid = [p for p in _paths(cfg) if p.count(".") == key.count(".")]
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    message = f"`{key}={value}`: {key} is not a setting of this configuration."
    if close:
        message += f" Did you mean {close[0]} (`{close[0]}={value}`)?"
    elif parent and OmegaConf.is_dict(node):
        keys = [str(k) for k in node if not str(k).startswith("_")]
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        message += f" {parent} has: {shown}."
    elif parent and node is None:
        message += f" {parent} does not exist either."
    if parent and _takes(node, leaf):
        message += (
            f" {parent} is built by {node._target_}, which takes {leaf}: to add it, write "
            f"`+{key}={value}`."
        )
    return message


def check_cli(argv: Sequence[str], config_dir: str | Path, config_name: str = "config") -> None:
    """Exit 2 with one paragraph for an override (without `+`) of a key the composed config
    lacks; return otherwise, also when the command line or composition fails for another reason
    (Hydra then reports it as before)."""
    overrides = _cli_overrides(argv)
    if not overrides:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # noqa: BLE001 - a syntax error: Hydra's message names it
        return
    groups = {p.name for p in Path(config_dir).iterdir() if p.is_dir()}
    changes, compose_with = [], []
    for o in parsed:
        key = o.key_or_group
        plain = not (o.is_add() or o.is_force_add() or o.is_delete())
        if plain and key not in groups and not key.startswith("hydra.") and key != "hydra":
            changes.append(o)
            continue
        if not o.is_sweep_override():
            compose_with.append(o.input_line)
        elif o.is_choice_sweep():
            prefix = o.input_line.split(key, 1)[0]  # +, ++ or nothing
            compose_with.append(f"{prefix}{key}={next(iter(o.sweep_string_iterator()))}")
    if not changes:
        return
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=compose_with)
    except Exception:  # noqa: BLE001 - a missing group option, ...: Hydra's message names it
        return
    for o in changes:
        value = o.input_line.split("=", 1)[1] if "=" in o.input_line else ""
        message = unknown_key_message(cfg, o.key_or_group, value)
        if message:
            _stop(message)
