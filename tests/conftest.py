"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import reach
import torch

from rankrobust.data import CIFAR10_CLASSES, read_images

# The JPEG copy of CIFAR-10 (see ../shared/data/README.md); never committed into the project.
CIFAR_TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def load_cifar_test_images(n: int, path: Path = CIFAR_TARBALL) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of the tarball in archive order, read sequentially.

    Returns (images float32 in [0, 1] of shape (n, 3, 32, 32), labels int64 of shape (n,)).
    """
    data = read_images(path, n, splits=("test",), classes=CIFAR10_CLASSES)
    return data.images, data.labels


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models and tensors: one intra-op thread is fastest and immune to busy shared cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def cifar_images() -> tuple[torch.Tensor, torch.Tensor]:
    """64 real CIFAR-10 test images (float32 [0, 1], N x 3 x 32 x 32) and their labels."""
    if not CIFAR_TARBALL.is_file():
        pytest.skip(f"CIFAR-10 JPEG copy not found at {CIFAR_TARBALL} (see shared/data/README.md)")
    return load_cifar_test_images(64)


def pytest_configure(config):
    """Record every file this session and its subprocesses open outside the clone, the temporary
    folder, ../shared and the installed software (tests/reach.py).

    Under pytest-xdist the controller makes the folder and the log before its workers start; the
    workers inherit the environment, record into the same log, and the controller reports."""
    if _is_worker(config):
        reach.install(os.environ[reach.REACH_LOG_ENV])
        # The cores shared among the workers (more threads than cores only wait for each
        # other), in this process and the runs it starts: a test comparing a run in this process
        # with one in a subprocess needs both at one thread count to be bit-identical.
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        threads = max(1, torch.get_num_threads() // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        return
    folder = tempfile.mkdtemp(prefix="rankrobust-reach-")
    log = os.path.join(folder, "outside.log")
    os.environ[reach.REACH_LOG_ENV] = log
    config.stash[_REACH] = (folder, log)
    # W&B's own data, cache and artifact staging go to the session's temporary folder, not the
    # user's home: a test's result never depends on (or adds to) what a machine's home holds.
    for key, sub in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"),
                     ("WANDB_ARTIFACT_DIR", "artifacts")):  # fmt: skip
        os.environ[key] = os.path.join(folder, "wandb", sub)
    # the decoded-image cache too (rankrobust.data.cache; tests of its default set HOME themselves)
    os.environ["RANKROBUST_CACHE"] = os.path.join(folder, "image-cache")
    reach.install(log)


def pytest_sessionfinish(session, exitstatus):
    if _is_worker(session.config):
        return
    folder, log = session.config.stash[_REACH]
    seen = sorted(set(Path(log).read_text().splitlines()) - {""}) if os.path.isfile(log) else []
    shutil.rmtree(folder, ignore_errors=True)
    if seen:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [
            f"tests reached {len(seen)} path(s) outside the clone, the temporary folder and "
            f"../shared; a clean machine does not have them (tests/reach.py):",
            *(f"  {path}" for path in seen[:50]),
        ]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _is_worker(config) -> bool:
    """A pytest-xdist worker (the controller owns the reach log)."""
    return hasattr(config, "workerinput")


_REACH = pytest.StashKey[tuple]()
