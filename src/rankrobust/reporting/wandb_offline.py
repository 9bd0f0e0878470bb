"""Read what an offline W&B run recorded, without syncing it (wandb ships no reader for this).

A `run-<id>.wandb` file is a LevelDB-style log: a 7-byte file header (":W&B", magic, version),
then 32 KiB blocks of records, each with a 7-byte header (crc32 of the type byte and the data,
little-endian length, type: 1 full, 2 first, 3 middle, 4 last) holding a serialised
`wandb_internal_pb2.Record`.

A resumed run (resume=true: `wandb.init(id=..., resume="allow")`) writes a second
`offline-run-<time>-<id>` folder, whose `_step` restarts at 0 and whose steps repeat those the
interrupted attempt logged after its last checkpoint: `read_offline_run` reads them as one run.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
_STARTED = re.compile(r"run-(\d{8}_\d{6})-")  # offline-run-20250101_120000-<id>


def _read_log(data: bytes) -> tuple[list[bytes], int]:
    """The complete record payloads of a W&B transaction log (fragments joined), and the offset
    where reading stopped: len(data), or the start of an incomplete or corrupt record (a run
    stopped while writing it) after which nothing is read."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log (missing ':W&B' header)")
    out, pending, pos, start = [], b"", HEADER, HEADER  # start: of the record being joined
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        intact = len(chunk) == length and HEADER + length <= left_in_block
        if not intact or kind not in (1, 2, 3, 4) or zlib.crc32(bytes([kind]) + chunk) != crc:
            return out, (start if pending else pos)
        if kind in (1, 2):
            start = pos
        pos += HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        else:
            out.append(pending + chunk)
            pending = b""
    if pending or data[pos:].strip(b"\0"):  # a record begun, or part of a header
        return out, (start if pending else pos)
    return out, len(data)


def _payloads(data: bytes) -> list[bytes]:
    """The complete record payloads of a W&B transaction log, with fragmented records joined."""
    return _read_log(data)[0]


def run_files(path: str | Path) -> list[Path]:
    """The `run-<id>.wandb` files of one W&B run, oldest first: `path` itself when it is a file,
    else those under the folder `path` with the newest run's id (the first attempt and each
    resume of it). Raises FileNotFoundError when there is none."""
    path = Path(path)
    if path.is_file():
        return [path]
    found = {f.resolve() for f in path.rglob("run-*.wandb") if f.is_file()}  # latest-run: a link
    if not found:
        raise FileNotFoundError(f"no run-*.wandb file under {path}")

    def started(f: Path) -> tuple:
        stamp = _STARTED.search(f.parent.name)
        return (stamp.group(1) if stamp else "", f.stat().st_mtime, str(f))

    ordered = sorted(found, key=started)
    return [f for f in ordered if f.name == ordered[-1].name]


def read_offline_run(path: str | Path) -> dict:
    """{"summary": {key: value}, "history": [{key: value}], "config": {key: value}, "tags": [...],
    "group": str, "hydra_config": {...}, "files": [Path], "notes": [str]}.

    `path` is a `run-<id>.wandb` file or a folder holding one (searched recursively; see
    `run_files`: every attempt of the newest run, a resumed run's included, read as one run).
    `history` holds one row per step, in step order: the step is the run's declared step metric
    (a `define_metric("*", step_metric=...)`, e.g. Lightning's trainer/global_step) or else W&B's
    `_step` (numbered on across attempts); rows of one step are merged key by key, a later value
    winning; an attempt replaces what earlier ones logged from its first step on (a resume redoes
    those steps from its checkpoint); `_step` is renumbered as the row's position. `summary` and
    `config` are merged over the attempts, the latest value winning. A file that ends in an
    incomplete record (a run killed while writing) is read up to its last complete record, said
    in `notes`. `config` is what W&B recorded (flattened keys); `hydra_config` is the run's
    whole composed config, nested, from the run folder beside the W&B folder
    (.hydra/config.yaml or metrics.json), or {} when that folder is not there.
    """
    files = run_files(path)
    result: dict = {"summary": {}, "history": [], "config": {}, "tags": [], "group": None}
    result["files"], result["notes"] = files, []
    attempts, step_key = [], "_step"
    for file in files:
        rows, declared = _read_file(file, result)
        attempts.append(rows)
        step_key = declared or step_key
    result["history"] = _merge_history(attempts, step_key)
    if result["history"] and "_step" in result["summary"]:
        result["summary"]["_step"] = result["history"][-1]["_step"]  # as renumbered
    result["hydra_config"] = _hydra_config(Path(path))
    return result


def _read_file(file: Path, result: dict) -> tuple[list[dict], str | None]:
    """One attempt's history rows and declared step metric; its summary, config, tags and group
    go into `result`, a truncated tail into result["notes"]."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    data = file.read_bytes()
    payloads, end = _read_log(data)
    rows, step_key = [], None
    for payload in payloads:
        record = pb.Record()
        try:
            record.ParseFromString(payload)
        except DecodeError:
            end = -1
            break
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                result["summary"][_key(item)] = json.loads(item.value_json)
            for item in record.summary.remove:
                result["summary"].pop(_key(item), None)
        elif kind == "history":
            rows.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "config":
            for item in record.config.update:
                result["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "metric" and record.metric.glob_name == "*" and record.metric.step_metric:
            step_key = record.metric.step_metric
        elif kind == "run":
            result["tags"] = list(record.run.tags)
            for item in record.run.config.update:  # wandb >= 0.31 puts the config here
                result["config"][_key(item)] = json.loads(item.value_json)
            result["group"] = record.run.run_group or None
    if end != len(data):
        where = "a record that does not parse" if end < 0 else f"byte {end} of {len(data)}"
        result["notes"].append(
            f"{file}: read up to {where}, its last complete record (the rest is incomplete: "
            "the run stopped while writing it)"
        )
    return rows, step_key


def _number(value) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _merge_history(attempts: list[list[dict]], step_key: str) -> list[dict]:
    """One row per step over the attempts (oldest first): see `read_offline_run`."""
    merged: dict[float, dict] = {}
    for rows in attempts:
        after = max(merged) + 1 if merged else 0  # where an attempt without steps goes on
        if step_key == "_step":
            steps = [after + (_number(r.get("_step")) or 0) for r in rows]
        else:
            known = [_number(r.get(step_key)) for r in rows]
            steps, last = [], next((k for k in known if k is not None), after)
            for k in known:
                last = k if k is not None else last
                steps.append(last)
        if steps:
            for step in [s for s in merged if s >= steps[0]]:
                del merged[step]  # redone by this attempt
        for step, row in zip(steps, rows, strict=True):
            merged.setdefault(step, {}).update(row)
    history = [merged[step] for step in sorted(merged)]
    for index, row in enumerate(history):
        row["_step"] = index
    return history


def _hydra_config(path: Path) -> dict:
    """The run folder's config: the nearest folder above `path` holding metrics.json or .hydra."""
    from rankrobust.runs import run_config

    for folder in [path, *path.parents]:
        if (folder / "metrics.json").is_file() or (folder / ".hydra").is_dir():
            try:
                return run_config(folder)
            except (OSError, ValueError):
                return _saved_hydra_config(folder)
    return {}


def _saved_hydra_config(folder: Path) -> dict:
    """.hydra/config.yaml resolved (a run that has not written metrics.json yet), else {}."""
    from omegaconf import OmegaConf

    import rankrobust.pipeline.resolvers  # noqa: F401  (${rr_*:...} in the saved config)

    saved = folder / ".hydra" / "config.yaml"
    try:
        return OmegaConf.to_container(OmegaConf.load(saved), resolve=True)
    except Exception:  # an unreadable or partial file: no config rather than a crash
        return {}


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
