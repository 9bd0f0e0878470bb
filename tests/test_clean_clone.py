"""The tests pass on any clean clone: every file they use is committed, no fixture names a path
on the machine that wrote it, and nothing they open lies outside the clone, the temporary folder
and ../shared (the session-wide audit of tests/reach.py, checked here on known cases)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import reach
from helpers import ROOT, child_env

TESTS = ROOT / "tests"
# An absolute path on some machine: a POSIX path under a top-level folder where people keep
# work, or a Windows drive path. Placeholders (@WRITER@) and relative paths do not match.
ABSOLUTE = re.compile(
    r"(?<![\w.~$@-])/(?:work|home|root|tmp|var|opt|mnt|media|srv|scratch|data|Users|private|"
    r"nfs|gpfs|lustre|cluster|storage)/[\w.@+-]+"
    r"|\b[A-Za-z]:\\[\w. -]+\\"
)
SKIP_PARTS = {"__pycache__", ".pytest_cache"}


def _files():
    for path in sorted(TESTS.rglob("*")):
        if path.is_file() and not SKIP_PARTS.intersection(path.relative_to(TESTS).parts):
            yield path


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def test_no_file_under_tests_is_git_ignored():
    """A fixture .gitignore keeps out of the commit exists only where it was made."""
    if shutil.which("git") is None or _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout")
    paths = [str(p.relative_to(ROOT)) for p in _files()]
    ignored = _git("check-ignore", "--no-index", *paths).stdout.split()
    assert not ignored, f"git-ignored, so missing from every clone: {ignored}"


def test_no_fixture_names_an_absolute_path():
    """A path on the machine that wrote a fixture exists there and nowhere else. Fixtures are the
    files under tests/ that are not test code; what test code opens, the audit checks."""
    found = []
    for path in _files():
        if path.suffix == ".py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # a binary fixture (a checkpoint, an image)
        for number, line in enumerate(text.splitlines(), 1):
            found += [f"{path.relative_to(ROOT)}:{number}: {m}" for m in ABSOLUTE.findall(line)]
    assert not found, "\n".join(found[:20])


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ('"checkpoint": "/work/old-run/checkpoints/last.ckpt"', True),
        ("cwd: /home/alice/rankrobust", True),
        ("root: C:\\Users\\alice\\data", True),
        ('"checkpoint": "@WRITER@/old-run/checkpoints/last.ckpt"', False),
        ("eps: 8/255, dataset.root=data/cifar", False),
        ("https://github.com/RobustBench/robustbench", False),
    ],
)
def test_the_absolute_path_pattern(text, hit):
    assert bool(ABSOLUTE.search(text)) is hit


def test_the_audit_records_a_file_outside_and_nothing_inside(tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside.txt"
    inside.mkdir()
    (inside / "a.txt").write_text("a")
    outside.write_text("b")
    log = tmp_path / "log"
    recorder = reach.Recorder(str(log))
    recorder.roots = (str(inside),)
    recorder("open", (str(inside / "a.txt"), "r", 0))
    recorder("open", (str(tmp_path / "missing.txt"), "r", 0))  # absent: nothing depends on it
    recorder("os.listdir", (str(tmp_path),))
    recorder("open", (str(outside), "r", 0))
    assert log.read_text().split() == [str(tmp_path), str(outside)]


def test_a_subprocess_of_a_test_is_audited_too(tmp_path):
    """A Python child started with child_env() logs what it opens outside its allowed places
    (here its temporary folder is tmp_path/tmp, so tmp_path/elsewhere.txt is outside)."""
    (tmp_path / "tmp").mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("x")
    log = tmp_path / "reach.log"
    env = child_env(TMPDIR=str(tmp_path / "tmp"), **{reach.REACH_LOG_ENV: str(log)})
    code = f"open({str(elsewhere)!r}).read(); open({str(tmp_path / 'tmp')!r} + '/x', 'w')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert log.read_text().split() == [str(elsewhere)]


def test_the_audit_fails_a_parallel_session_whose_worker_reached_outside(tmp_path):
    """Under pytest-xdist (make test) the workers record into the controller's log and the
    controller fails the session, naming the path."""
    (tmp_path / "tmp").mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("x")
    probe = tmp_path / "tmp" / "test_probe.py"
    probe.write_text(
        f"def test_reads_outside():\n    assert open({str(elsewhere)!r}).read() == 'x'\n\n"
        "def test_stays_inside():\n    assert True\n"
    )
    # as make test starts it: no audit hook from sitecustomize, no log of the outer session
    env = child_env(TMPDIR=str(tmp_path / "tmp"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(TESTS)])
    env.pop(reach.REACH_LOG_ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "conftest", "-p",
         "no:cacheprovider", "--rootdir", str(tmp_path / "tmp"), str(probe)],
        cwd=tmp_path / "tmp", env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert "2 passed" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.returncode == 1 and str(elsewhere) in done.stdout, done.stdout[-2000:]
