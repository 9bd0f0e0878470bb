"""SIGTERM (what SLURM and other schedulers send before a kill) is treated like Ctrl-C:
status `interrupted`, the resume command stored and printed, a non-zero exit, promptly even
inside a long PGD attack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers import FAST, ROOT, child_env


def _start(tmp_path, *args):
    env = child_env()
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *FAST, "hydra.run.dir=run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path, status=None, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and (status is None or status in path.read_text()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared")


def test_sigterm_inside_a_long_pgd_attack_is_prompt_and_interrupted(tmp_path):
    # a training attack of 10^7 steps (hours): the run can only end by the signal cutting into it
    proc = _start(
        tmp_path, "attack=pgd_linf", "attack.train.steps=10000000", "trainer.max_epochs=1",
        "dataset.n_train=128", "dataset.n_test=32",
    )  # fmt: skip
    metrics = tmp_path / "run" / "metrics.json"
    _wait_for(metrics, '"running"')
    _wait_for(tmp_path / "run" / "run.log", "resume with")  # said just before training starts
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=120)  # the attack alone would take hours
    finally:
        proc.kill()  # never leave a stuck run behind (no-op once it has exited)
    written = json.loads(metrics.read_text())
    assert written["status"] == "interrupted", out[-2000:]
    assert "SIGTERM" in (written["error"] or ""), written["error"]
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out[-2000:])
    assert "interrupted" in out and "hydra.run.dir=" in out


def test_sigterm_after_a_checkpoint_stores_the_resume_command(tmp_path):
    # a checkpoint every epoch, and far more epochs than the test waits for: the run can only
    # end by the signal, whenever the checkpoint appears
    proc = _start(
        tmp_path, "trainer.max_epochs=1000000", "callbacks.last_checkpoint.every_minutes=0",
        "dataset.n_train=128", "dataset.n_test=32",
    )  # fmt: skip
    _wait_for(tmp_path / "run" / "checkpoints" / "last.ckpt")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "interrupted", out[-2000:]
    assert "resume=true" in written["command"] and "resume with" in out
    assert proc.returncode == 128 + signal.SIGTERM
