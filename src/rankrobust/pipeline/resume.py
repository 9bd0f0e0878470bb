"""What a resumed run continues with: the config its folder saved, changed only where asked.

The rule (`compare`), key by key over the resolved configs (plumbing aside; seed and rank count):

- a setting given on this command line (an override the run's own command did not hold) with
  another value than the run's: refused, named with both values;
- a setting not given whose value differs (its default changed in a later release): the run
  keeps its saved value (said in the log);
- a setting the saved config lacks (added by a later release): its current value, the default;
  given on this command line, refused (the run so far ran without it);
- a setting only the saved config holds (removed since): said in the log; the run goes on
  without it;
- a `_target_` (the class a group builds) is the current release's unless given.

Without a command line (`task.run` from Python), every setting counts as given. The saved config
is metrics.json's `resolved_config` and the overrides of its `command`; without a readable
metrics.json, the folder's `.hydra/config.yaml` and `.hydra/overrides.yaml` (a resume keeps
them: launch/preflight.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankrobust.errors import ConfigError
from rankrobust.identity import PLUMBING
from rankrobust.launch.jobs import JobInfo, command_overrides, fresh_command, own_overrides
from rankrobust.run_folders import FILENAME, load_json

# compared although plumbing elsewhere: a resumed run keeps its seed, rank and band
_COMPARED = ("seed", "rank", "transform.rank", "transform.band")
LEAVE_OUT = tuple(p for p in PLUMBING if p not in _COMPARED) + ("name",)  # name: from the rest
ABSENT = "(absent)"  # how a setting one config lacks is shown


@dataclass(frozen=True)
class SavedRun:
    """The run a folder holds: its resolved config, the overrides it was started with (None when
    unknown) and the file they were read from."""

    config: dict
    overrides: tuple[str, ...] | None
    source: Path
    command: str | None = None  # its stored resume command


@dataclass
class Changes:
    """`compare`'s answer: `refused` ('key: saved -> now'), `kept` ({key: saved value}: the run
    keeps these), `added` and `removed` (keys only the current / the saved config holds)."""

    refused: list[str] = field(default_factory=list)
    kept: dict[str, Any] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _left_out(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in LEAVE_OUT)


def _same(a: Any, b: Any) -> bool:
    """Equal values of one type: 1 and 1.0 differ (Lightning reads limit_train_batches=1 as one
    batch, 1.0 as the whole epoch), so do True and 1."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def compare(saved: dict, now: dict, given: Callable[[str], bool] | None) -> Changes:
    """Apply the module's rule to two resolved configs (nested dicts). `given(key)` says whether
    this command line set a dotted key; None: every key counts as given."""
    out = Changes()

    def is_given(key: str) -> bool:
        return given is None or given(key)

    def walk(old: dict, new: dict, prefix: str) -> None:
        for name in sorted(set(old) | set(new), key=str):
            key = f"{prefix}{name}"
            if _left_out(key):
                continue
            if name not in new:
                out.removed.append(key)
            elif name not in old:
                if given is not None and given(key):
                    out.refused.append(f"{key}: {ABSENT} -> {new[name]!r}")
                else:
                    out.added.append(key)
            elif isinstance(old[name], dict) and isinstance(new[name], dict):
                walk(old[name], new[name], key + ".")
            elif not _same(old[name], new[name]):
                if is_given(key):
                    out.refused.append(f"{key}: {old[name]!r} -> {new[name]!r}")
                elif name != "_target_":
                    out.kept[key] = old[name]

    walk(saved, now, "")
    return out


def _override_key(override: str) -> str:
    """'+trainer.gradient_clip_val=1' -> 'trainer.gradient_clip_val'; 'model@x=y' -> 'model'."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


def given_keys(
    overrides: tuple[str, ...], saved: tuple[str, ...] | None, config: dict
) -> Callable[[str], bool] | None:
    """Which settings this command line gives: those of the overrides the run's own command did
    not hold (all of them when that is unknown). A key is given when it and an override's key lie
    on one path (`model=x` gives every model.* key). An override naming no key of the config (a
    global group such as experiment= or debug=, a deletion) can set any key: then every key
    counts as given (None)."""
    new = [o for o in own_overrides(overrides) if o not in set(saved or ())]
    keys = [_override_key(o) for o in new if not o.startswith("hydra.")]
    for key in keys:
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]

    def given(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)

    return given


def saved_run(run_dir: Path) -> SavedRun | None:
    """The run the folder holds (metrics.json, else .hydra/), or None when neither is readable."""
    path = run_dir / FILENAME
    try:
        record = load_json(path)
        config, command = record.get("resolved_config"), record.get("command")
    except (OSError, ValueError, AttributeError):
        config = command = None
    if isinstance(config, dict) and config:
        found = command_overrides(command) if isinstance(command, str) else None
        return SavedRun(config, None if found is None else tuple(found), path, command)
    return _saved_hydra(run_dir)


def _saved_hydra(run_dir: Path) -> SavedRun | None:
    """.hydra/config.yaml, resolved where it resolves, and .hydra/overrides.yaml."""
    from omegaconf import OmegaConf

    import rankrobust.pipeline.resolvers  # noqa: F401  (${rr_*:...} in the saved config)

    path = run_dir / ".hydra" / "config.yaml"
    try:
        loaded = OmegaConf.load(path)
        try:
            config = OmegaConf.to_container(loaded, resolve=True)
        except Exception:  # ${hydra:...} and the like, outside the run that wrote it
            config = OmegaConf.to_container(loaded, resolve=False)
    except Exception:  # missing, or not YAML
        return None
    if not isinstance(config, dict) or not config:
        return None
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml"))
        overrides = tuple(own_overrides([str(o) for o in overrides]))
    except Exception:
        overrides = None
    return SavedRun(config, overrides, path)


def check(job: JobInfo, config: dict, last: Path) -> Changes:
    """Compare this resume's resolved `config` with the run its folder holds (the module's rule).

    Returns the Changes (`kept`: the saved values the run continues with, for the caller to put
    back into the config). Raises ConfigError (one paragraph: what differs, saved and now, and
    the commands that continue the run or start a new one) when a given setting differs, or
    when the folder holds no readable record of its run (the checkpoint cannot be matched to a
    config).
    """
    fresh = fresh_command(job)
    saved = saved_run(job.run_dir)
    if saved is None:
        raise ConfigError(
            f"resume=true but '{job.run_dir}' holds no readable record of the run its "
            f"checkpoint '{last}' belongs to ({FILENAME} and .hydra/config.yaml are missing or "
            "unreadable), so it cannot be continued with its own settings; nothing was "
            f"changed. Start a new run in another folder: {fresh}"
        )
    given = given_keys(job.overrides, saved.overrides, config) if job.hydra else None
    changes = compare(saved.config, config, given)
    if changes.refused:
        shown = "; ".join(changes.refused[:6]) + (" ..." if len(changes.refused) > 6 else "")
        keep = f" (or run its stored command: {saved.command})" if saved.command else ""
        raise ConfigError(
            f"resume=true in '{job.run_dir}' changes settings of the run it holds (saved -> "
            f"now): {shown}. A resumed run continues the same training with its own settings "
            f"(saved in {saved.source.name}), and nothing in the folder was changed. To continue "
            f"it, drop those overrides{keep}; to train with the new settings (a longer "
            f"schedule too), start a new run in another folder: {fresh}"
        )
    return changes


def notes(changes: Changes) -> list[str]:
    """Log lines for what a resume continues with that the command line alone does not say."""
    lines = []
    if changes.kept:
        kept = ", ".join(f"{k}={v!r}" for k, v in changes.kept.items())
        lines.append(f"the run keeps its own settings, not this release's defaults: {kept}")
    if changes.added:
        lines.append(f"settings added since the run started take their defaults: "
                     f"{', '.join(changes.added)}")  # fmt: skip
    if changes.removed:
        lines.append(f"settings of the run that this release no longer has (ignored): "
                     f"{', '.join(changes.removed)}")  # fmt: skip
    return lines
