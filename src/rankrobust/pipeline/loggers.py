"""Experiment loggers from conf/logger (W&B offline by default) and what the task logs to them.

One place for W&B set-up: offline unless WANDB_MODE=online, quiet, one run id per run folder
(a resumed run continues its W&B run), the analyses' tables and plots, the summary, finish.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import socket
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from rankrobust.errors import ConfigError
from rankrobust.files import write_text
from rankrobust.identity import run_identity
from rankrobust.launch.ddp import rank_zero
from rankrobust.results import FILES

if TYPE_CHECKING:
    from rankrobust.pipeline.spec import RunSpec

RUN_ID_FILE = "wandb_run_id.txt"
DEFAULT_HOST = "https://api.wandb.ai"
NETWORK_TIMEOUT_S = 3.0  # a login or network problem is said within seconds, not minutes


def wandb_env() -> bool:
    """Default W&B to offline and quiet; True when it will log offline.

    WANDB_MODE=online without an API key or without a route to the W&B host falls back to
    offline at once with one warning (instead of a traceback, or a ~100 s hang).
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    if os.environ["WANDB_MODE"] == "online":
        problem = offline_reason()
        if problem:
            log.warning(
                "[rankrobust] WANDB_MODE=online but %s: logging offline instead; upload later "
                "with `make wandb-sync` (wandb sync <run dir>/wandb/offline-run-*).",
                problem,
            )
            os.environ["WANDB_MODE"] = "offline"
    return os.environ["WANDB_MODE"] != "online"


def _host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL") or DEFAULT_HOST).hostname or "api.wandb.ai"


def has_api_key(host: str | None = None) -> bool:
    """WANDB_API_KEY set, or a netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC") or Path.home() / ".netrc")
    try:
        return bool(netrc.netrc(str(path)).authenticators(host or _host()))
    except (OSError, netrc.NetrcParseError):
        return False


def offline_reason(timeout: float = NETWORK_TIMEOUT_S) -> str | None:
    """Why the workspace cannot be saved now (no key; host unreachable), or None."""
    host = _host()
    if not has_api_key(host):
        return (
            f"no W&B API key (WANDB_API_KEY is unset and {os.environ.get('NETRC', '~/.netrc')} "
            f"has no entry for {host})"
        )
    problem = _reach(host, timeout)
    return (
        None
        if problem is None
        else f"{host}:443 cannot be reached within {timeout:g} s ({problem})"
    )


def _reach(host: str, timeout: float) -> str | None:
    """Connect to host:443; the error, or None. Bounded as a whole: the socket timeout does not
    cover the name lookup, which can hang for tens of seconds without a resolver."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else "no answer"


def run_tags(config: dict) -> list[str]:
    """W&B tags of a run from its resolved config: dataset, model, attack, rank, transform."""
    ident = run_identity(config)
    tags = [f"{k}:{ident[k]}" for k in ("dataset", "model", "attack", "rank")]
    return tags + [f"transform:{ident['transform_mode']}"]


def _run_id(run_dir: Path) -> str:
    """The W&B run id kept in the run folder, so resume=true continues the same W&B run."""
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        try:
            saved = path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            saved = ""
        if saved.isascii() and saved.isalnum() and 1 <= len(saved) <= 64:
            return saved
        log.warning("[rankrobust] %s is not a W&B run id: a new W&B run is started", path)
    run_id = secrets.token_hex(4)  # W&B ids: 8 lowercase letters/digits
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, run_id)
    return run_id


def _check_wandb_folder(run_dir: Path) -> None:
    """<run dir>/wandb must be a folder W&B can use: a file of that name stops the run in one
    paragraph (W&B itself fails deep inside its start-up)."""
    path = Path(run_dir) / "wandb"
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"'{path}' is a file, but W&B keeps its offline run in a folder of that name. Move "
            "or rename the file, or log without W&B (logger=csv or logger=none)."
        )


def build(spec: RunSpec, run_dir: Path, group: str | None) -> list:
    """Every logger of the run's `logger` group, with the run folder as its save_dir; W&B's gets
    the run's resolved config, its identity as tags and `group` (the sweep folder) as its
    group. Raises ConfigError for a file named `wandb` in the run folder."""
    from pytorch_lightning.loggers import WandbLogger

    loggers = []
    for plain in (spec.config.get("logger") or {}).values():
        if plain is None:
            continue
        node = OmegaConf.create(plain)
        if issubclass(get_class(node._target_), WandbLogger):
            _check_wandb_folder(run_dir)
            if node.get("offline") is False:  # logger.wandb.offline=false: as WANDB_MODE=online
                os.environ["WANDB_MODE"] = "online"
            offline = wandb_env() and node.get("offline", True)
            loggers.append(
                instantiate(node, _partial_=True, _convert_="all")(
                    save_dir=str(run_dir),
                    id=_run_id(run_dir) if rank_zero() else None,  # only rank 0 logs
                    resume="allow",
                    offline=offline,
                    group=node.get("group") or group or spec.config.get("name"),
                    tags=run_tags(spec.config) + list(node.get("tags") or []),
                    config=spec.config,
                )
            )
            # Lightning passes anonymous=None, which wandb>=0.31 warns about on every run
            loggers[-1]._wandb_init.pop("anonymous", None)
        else:
            loggers.append(instantiate(node, save_dir=str(run_dir)))
    return loggers


def wandb_run(loggers: list):
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def log_results(loggers: list, metrics: dict, run_dir: Path) -> None:
    """Summary (clean/robust accuracy, rig/*), the rank sweep as a table and line plots, the RIG
    grid and rank-attribution curve: what a W&B dashboard shows."""
    run = wandb_run(loggers)
    if run is None:
        return
    import wandb

    summary = {k: metrics[k] for k in ("clean_acc", "robust_acc") if metrics.get(k) is not None}
    for name, value in (metrics.get("rig") or {}).items():
        if isinstance(value, int | float):
            summary[f"rig/{name}"] = value
    run.summary.update(summary)
    sweep = metrics.get("rank_sweep") or {}
    if sweep:
        rows = [[m, int(k), float(a)] for m, accs in sweep.items() for k, a in accs.items()]
        plots = {
            f"rank_sweep/{mode}": wandb.plot.line(
                wandb.Table(
                    data=[[int(k), float(a)] for k, a in accs.items()], columns=["rank", "accuracy"]
                ),
                "rank",
                "accuracy",
                title=f"Accuracy on {mode}-rank images vs rank",
            )
            for mode, accs in sweep.items()
        }
        table = wandb.Table(data=rows, columns=["mode", "rank", "accuracy"])
        run.log({"rank_sweep/table": table, **plots})
    log_bases(run, metrics)
    rig = metrics.get("rig") or {}
    png = run_dir / FILES["rig_png"]
    if rig and png.is_file():
        curve = wandb.Table(
            data=[[r, s] for r, s in zip(rig["ranks"], rig["mean_per_rank"], strict=True)],
            columns=["rank", "share"],
        )
        run.log(
            {
                "rig/grid": wandb.Image(str(png), caption="image | vanilla gradient | RIG"),
                "rig/rank_attribution": wandb.plot.line(
                    curve, "rank", "share", title="Mean RIG rank attribution share vs rank"
                ),
            }
        )


def wandb_dir(loggers: list) -> str | None:
    run = wandb_run(loggers)
    return getattr(run, "dir", None) if run is not None else None


def finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts a fresh one."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
            wandb.teardown()  # flush the offline files now: readers may open them at once


# ---------------------------------------------------------------------------------------------
# The run's own log: console and <run dir>/run.log (Hydra's job logging), quiet by default.

log = logging.getLogger("rankrobust")
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning")
# Messages every run would print that tell a researcher nothing about the run.
NOISE = ("💡 Tip:",)  # Lightning's litlogger advertisement
NOISY_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6 on torch 2.14
    r".*does not have many workers.*",  # in-memory tensors need none
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def record_failure(err: BaseException, raw: BaseException) -> None:
    """Write why the run failed to the run's log files (run.log under Hydra) only: a
    ConfigError's one paragraph, else the traceback of `raw`. The console gets the same from
    the task's failure policy (stderr), so it is not repeated there."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:
        return
    if isinstance(err, ConfigError):
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "[rankrobust] %s: %s",
                                (type(err).__name__, err), None)  # fmt: skip
    else:
        info = (type(raw), raw, raw.__traceback__)
        record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "[rankrobust] run failed",
                                (), info)  # fmt: skip
    for handler in files:
        handler.handle(record)


def setup_logging() -> None:
    """Route Lightning's messages into the run's log and drop the noise.

    Under Hydra the root logger has the console and run.log handlers: Lightning's loggers
    (which add their own handler when imported before Hydra configures logging) propagate
    there instead. Outside Hydra, rankrobust's messages go to stdout.
    """
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    root = logging.getLogger()
    drop = _DropNoise()
    if root.handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
        handlers = root.handlers
    else:
        if not log.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
        handlers = [h for name in LIGHTNING_LOGGERS for h in logging.getLogger(name).handlers]
    for handler in handlers:
        if not any(isinstance(f, _DropNoise) for f in handler.filters):
            handler.addFilter(drop)


def log_bases(run, metrics: dict) -> None:
    """The basis sweep (C5) as tables: basis_sweep/table (basis, cutoff, energy, low, high) and
    basis_sweep/<basis>_table (energy, accuracy on the low-pass) for the energy-axis lines; the
    heat maps as heat_maps/fourier_table (k_y, k_x, error) and heat_maps/rank_table (rank,
    error)."""
    import wandb

    sweep = metrics.get("basis_sweep") or {}
    logged: dict = {}
    if sweep:
        rows = []
        for basis, parts in sweep.items():
            low, high, energy = (parts.get(m) or {} for m in ("low", "high", "energy"))
            rows += [[basis, int(k), energy.get(k), low.get(k), high.get(k)] for k in low]
            line = [[float(energy[k]), float(low[k])] for k in low if k in energy]
            logged[f"basis_sweep/{basis}_table"] = wandb.Table(
                data=sorted(line), columns=["energy", "accuracy"]
            )
        logged["basis_sweep/table"] = wandb.Table(
            data=rows, columns=["basis", "cutoff", "energy", "low", "high"]
        )
    heat = metrics.get("heat_maps") or {}
    if heat:
        f, r = heat["fourier"], heat["rank"]
        cells = [
            [ky, kx, float(e)]
            for ky, row in zip(f["freqs"], f["error"], strict=True)
            for kx, e in zip(f["freqs"], row, strict=True)
        ]
        logged["heat_maps/fourier_table"] = wandb.Table(data=cells, columns=["k_y", "k_x", "error"])
        logged["heat_maps/rank_table"] = wandb.Table(
            data=[[k, float(e)] for k, e in zip(r["ranks"], r["error"], strict=True)],
            columns=["rank", "error"],
        )
    if logged:
        run.log(logged)
