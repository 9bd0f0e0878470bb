"""SIGTERM (what SLURM and other schedulers send before a kill) is treated like Ctrl-C:
status `interrupted`, the resume command stored and printed, a non-zero exit, promptly even
inside a long PGD attack (issue 19, item 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import FAST, ROOT


def _start(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
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
    # a training attack far longer than the test: the signal must cut into it
    proc = _start(
        tmp_path, "attack=pgd_linf", "attack.train.steps=100000", "trainer.max_epochs=1",
        "dataset.n_train=128", "dataset.n_test=32",
    )  # fmt: skip
    metrics = tmp_path / "run" / "metrics.json"
    _wait_for(metrics, '"running"')
    time.sleep(2)  # inside the first training step's attack
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()  # never leave a stuck run behind (no-op once it has exited)
    waited = time.monotonic() - sent
    written = json.loads(metrics.read_text())
    assert written["status"] == "interrupted", out[-2000:]
    assert "SIGTERM" in (written["error"] or ""), written["error"]
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, out[-2000:])
    assert waited < 5, f"{waited:.1f} s after SIGTERM"
    assert "interrupted" in out and "hydra.run.dir=" in out


def test_sigterm_after_a_checkpoint_stores_the_resume_command(tmp_path):
    proc = _start(tmp_path, "trainer.max_epochs=50", "dataset.n_train=128", "dataset.n_test=32")
    _wait_for(tmp_path / "run" / "checkpoints" / "last.ckpt")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "interrupted", out[-2000:]
    assert "resume=true" in written["command"] and "resume with" in out
    assert proc.returncode == 128 + signal.SIGTERM
