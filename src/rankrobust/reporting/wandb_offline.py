"""Read what an offline W&B run recorded, without syncing it (wandb ships no reader for this).

A `run-<id>.wandb` file is a LevelDB-style log: a 7-byte file header (":W&B", magic, version),
then 32 KiB blocks of records, each with a 7-byte header (crc32, little-endian length, type:
1 full, 2 first, 3 middle, 4 last) holding a serialised `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def _payloads(data: bytes) -> list[bytes]:
    """The record payloads of a W&B transaction log, with fragmented records joined."""
    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log (missing ':W&B' header)")
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return out


def read_offline_run(path: str | Path) -> dict:
    """{"summary": {key: value}, "history": [{key: value}], "config": {key: value}, "tags": [...],
    "group": str, "hydra_config": {...}}.

    `path` is the `run-<id>.wandb` file or a folder holding one (searched recursively).
    `config` is what W&B recorded (flattened keys); `hydra_config` is the run's whole composed
    config, nested, from the run folder beside the W&B folder (.hydra/config.yaml or
    metrics.json), or {} when that folder is not there.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    start = path
    if path.is_dir():
        found = sorted(path.rglob("run-*.wandb"))
        if not found:
            raise FileNotFoundError(f"no run-*.wandb file under {path}")
        path = found[-1]
    result: dict = {"summary": {}, "history": [], "config": {}, "tags": [], "group": None}
    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                result["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            result["history"].append(
                {_key(i): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "config":
            for item in record.config.update:
                result["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "run":
            result["tags"] = list(record.run.tags)
            for item in record.run.config.update:  # wandb >= 0.31 puts the config here
                result["config"][_key(item)] = json.loads(item.value_json)
            result["group"] = record.run.run_group or None
    result["hydra_config"] = _hydra_config(start)
    return result


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
