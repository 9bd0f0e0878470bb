"""Scale-out: GPU leases, launchers, sweep failure summaries, DDP, kill-and-resume, determinism."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import FAST, make_cfg, run_cli
from hooks import kill_at_epoch

from rankrobust.data import ShardedBatches
from rankrobust.launch import gpus
from rankrobust.launch.summary import SUMMARY, summarize_sweep
from rankrobust.pipeline import task
from rankrobust.results import read_metrics

TINY = [
    *FAST,
    "trainer.max_epochs=1",
    "dataset.n_train=256",
    "dataset.n_test=128",
    "sweep.enabled=false",
]
NUMBERS = ("clean_acc", "robust_acc", "rank_sweep", "perturbation_spectrum")


def numbers(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in NUMBERS}


def job_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("outputs/multirun/*/*/*/metrics.json"))


# ---------------------------------------------------------------------------------------------
# GPU leases (fake GPUs, threads as jobs).


@pytest.mark.parametrize("n_gpus", [1, 2, 8])
def test_gpu_leases_one_job_per_gpu_and_no_gpu_idle(tmp_path, n_gpus):
    slots = gpus.gpu_slots(n_gpus)
    n_workers = gpus.n_jobs(len(slots))
    assert n_workers == n_gpus
    held: dict[str, int] = {}
    lock = threading.Lock()
    events, waits = [], []

    def job(i: int) -> None:
        asked = time.monotonic()
        with gpus.acquire_gpu(slots, tmp_path, poll_s=0.01) as slot:
            waits.append(time.monotonic() - asked)
            with lock:
                assert held.get(slot.name, 0) == 0, f"GPU {slot.name} used twice at once"
                held[slot.name] = 1
                events.append((slot.name, len(held) - list(held.values()).count(0)))
            time.sleep(0.02)
            with lock:
                held[slot.name] = 0

    n_tasks = 3 * n_gpus + 1  # more jobs than GPUs
    with ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(job, range(n_tasks)))
    assert len(events) == n_tasks
    assert {name for name, _ in events} == {s.name for s in slots}  # every GPU got work
    # n_jobs = n_gpus: a job never waits for a GPU (none sits idle while jobs wait)
    assert max(waits) < 0.5, waits


def test_gpu_lease_waits_for_a_busy_gpu_and_respects_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    slots = gpus.gpu_slots(2)
    assert [(s.index, s.name) for s in slots] == [(0, "3"), (1, "5")]
    with gpus.acquire_gpu(slots, tmp_path) as a, gpus.acquire_gpu(slots, tmp_path) as b:
        assert {a.name, b.name} == {"3", "5"}
        with pytest.raises(TimeoutError):
            with gpus.acquire_gpu(slots, tmp_path, poll_s=0.01, timeout_s=0.1):
                pass
    with gpus.acquire_gpu(slots, tmp_path, timeout_s=1) as again:  # released on exit
        assert again.name == "3"
    with gpus.acquire_gpu([], tmp_path) as none:
        assert none is None


def test_sharded_batches_cover_the_test_set_once_and_reshuffle_per_epoch():
    shards = [ShardedBatches(10, 3, shuffle=False, num_replicas=2, rank=r) for r in (0, 1)]
    seen = [i for s in shards for batch in s for i in batch]
    assert sorted(seen) == list(range(10))  # every test image exactly once, no padding
    train = [ShardedBatches(9, 4, shuffle=True, seed=1, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(list(train[0])) == len(list(train[1]))  # equal steps on every DDP process
    one = ShardedBatches(9, 4, shuffle=True, seed=1)
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first
    one.set_epoch(0)
    assert list(one) == first  # order is a function of (seed, epoch): exact after a resume


def test_sharded_batches_draw_the_order_at_the_first_batch_not_at_iter():
    # On a resume from an end-of-epoch checkpoint Lightning calls iter() on the train loader
    # before it advances current_epoch, and never again for that epoch.
    epoch = [0]
    sampler = ShardedBatches(16, 4, shuffle=True, seed=3, epoch_fn=lambda: epoch[0])
    first = list(sampler)
    it = iter(sampler)
    epoch[0] = 1
    assert list(it) == list(sampler) != first


# ---------------------------------------------------------------------------------------------
# Launchers and failure isolation (subprocesses through run.py).


@pytest.mark.parametrize(
    "launcher", [["launcher=submitit_local"], ["launcher=local_gpus", "launcher.cpu_jobs=2"]]
)
def test_multirun_launchers_write_complete_runs(tmp_path, launcher):
    result = run_cli("-m", *launcher, *TINY, "rank=1,4", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = job_dirs(tmp_path)
    assert len(runs) == 2, result.stdout[-2000:]
    ranks = sorted(read_metrics(r)["config"]["rank"] for r in runs)
    assert ranks == [1, 4]
    for r in runs:
        m = read_metrics(r)
        assert m["status"] == "ok" and m["clean_acc"] is not None
        assert (r / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads(next(tmp_path.glob(f"outputs/multirun/*/*/{SUMMARY}")).read_text())
    assert summary["n_ok"] == 2 and summary["failed"] == []


def test_failing_job_leaves_the_others_and_is_named_in_the_summary(tmp_path):
    result = run_cli("-m", *TINY, "rank=4,99", cwd=tmp_path, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]  # the sweep ran on, then said so
    runs = {read_metrics(r)["config"].get("rank"): read_metrics(r) for r in job_dirs(tmp_path)}
    assert runs[4]["status"] == "ok" and runs[4]["clean_acc"] is not None
    assert runs[99]["status"] == "failed" and "rank=99" in runs[99]["error"]
    sweep_dir = next(tmp_path.glob("outputs/multirun/*/*"))
    summary = json.loads((sweep_dir / SUMMARY).read_text())
    assert summary["n_jobs"] == 2 and summary["n_failed"] == 1
    (failed,) = summary["failed"]
    assert "rank=99" in failed["overrides"] and "out of range" in failed["error"]
    assert summarize_sweep(sweep_dir)["failed"] == summary["failed"]


# ---------------------------------------------------------------------------------------------
# DDP on 2 CPU processes (gloo).


def test_ddp_on_two_cpu_processes_matches_one_process(tmp_path):
    common = [*TINY, "eval.n_robust=null"]
    single = run_cli(*common, "hydra.run.dir=single", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    ckpt = tmp_path / "single" / "checkpoints" / "last.ckpt"
    ddp_args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "sweep.enabled=true"]
    ddp = run_cli(*common, *ddp_args, "train=false", f"model.checkpoint={ckpt}",
                  "sweep.ranks=[1,32]", "hydra.run.dir=ddp", cwd=tmp_path)  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = read_metrics(tmp_path / "single")
    two = read_metrics(tmp_path / "ddp")
    assert two["status"] == "ok"
    assert two["clean_acc"] == pytest.approx(one["clean_acc"], abs=1e-6)
    assert two["robust_acc"] == pytest.approx(one["robust_acc"], abs=1e-6)
    # the rank sweep ran once, on rank 0, over the whole test set: full rank = clean accuracy
    assert two["rank_sweep"]["low"][32] == pytest.approx(one["clean_acc"], abs=1e-6)


def test_ddp_training_on_two_cpu_processes_finishes(tmp_path):
    """Every process trains (not only rank 0), then rank 0 writes one complete metrics.json."""
    ddp_args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    result = run_cli(*TINY, *ddp_args, "hydra.run.dir=ddp_train", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # a child that exits with its process group alive aborts at interpreter exit (whether or not
    # Lightning's launcher notices before the job ends): every process ends cleanly
    said = result.stdout + result.stderr
    assert "terminate called" not in said and "Child process" not in said, said[-3000:]
    metrics = read_metrics(tmp_path / "ddp_train")
    assert metrics["status"] == "ok" and metrics["timings"]["fit"] > 0
    assert (tmp_path / "ddp_train" / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------------------------------
# Kill-and-resume and determinism (CPU, deterministic=true).

RESUMABLE = [
    *TINY,
    "trainer.max_epochs=2",
    "dataset.batch_size=32",  # 8 steps an epoch (OneCycle needs a few)
    "deterministic=true",
    "seed=3",
    "dataset.augment=true",  # seeded per (seed, step, rank)
    "attack=fgsm_rs",  # random start: seeded per step
    "eval.n_robust=64",
    "sweep.enabled=true",
    "sweep.ranks=[1,32]",
    "analysis.n_images=16",  # perturbation spectrum: eval attack random starts
    "callbacks.last_checkpoint.every_minutes=0",  # a checkpoint every epoch: resumable at once
]


def test_two_deterministic_runs_give_bit_identical_metrics(tmp_path):
    cfg = [*RESUMABLE, "trainer.max_epochs=1"]
    first = task.run(make_cfg(*cfg), tmp_path / "first")
    second = task.run(make_cfg(*cfg), tmp_path / "second")
    assert first["status"] == "ok" and first["rank_sweep"] is not None
    assert numbers(second) == numbers(first)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    straight = task.run(make_cfg(*RESUMABLE), tmp_path / "straight")

    # SIGKILL as epoch 2 starts (epoch 1's checkpoint saved)
    killed = run_cli(*RESUMABLE, *kill_at_epoch(1), "hydra.run.dir=run", cwd=tmp_path)
    assert killed.returncode != 0
    assert read_metrics(tmp_path / "run")["status"] == "running"
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    command = next(
        line for line in killed.stdout.splitlines() if line.startswith("[rankrobust] resume with:")
    )
    assert "resume=true" in command and "hydra.run.dir=" in command

    resumed = run_cli(*RESUMABLE, "hydra.run.dir=run", "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    assert numbers(read_metrics(tmp_path / "run")) == numbers(straight)  # bit-identical
