"""dashboard: every key a panel reads is one a real (offline) run or the report run logs; the
dry run writes the panel list; without a login it says so in one paragraph and exits 2."""

from __future__ import annotations

import json
import threading

import pytest
import wandb
from fake_runs import make_outputs
from helpers import make_cfg

from rankrobust.pipeline import loggers, task
from rankrobust.reporting import dashboard, figures, report
from rankrobust.reporting.collect import collect
from rankrobust.reporting.wandb_offline import _key, _payloads, read_offline_run


def _logged(run: dict) -> set[str]:
    """Summary and history keys (media and tables appear as nested keys: rig/grid/_type)."""
    return set(run["summary"]) | {key for row in run["history"] for key in row}


def _init_config(folder) -> dict:
    """The config wandb.init recorded: wandb 0.31 writes it into the `run` record, which
    read_offline_run's "config" (config records only) does not read."""
    from wandb.proto import wandb_internal_pb2 as pb

    config = {}
    for payload in _payloads(next(folder.rglob("run-*.wandb")).read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "run":
            config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
    return config


def _config_has(config: dict, dotted: str) -> bool:
    """The offline run's config holds the dotted key (top level as logged; nested dicts below)."""
    top, *rest = dotted.split(".")
    if top not in config:
        return False
    value = config[top]
    value = value.get("value", value) if isinstance(value, dict) else value
    for part in rest:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _found(key: str, run: dict) -> bool:
    if key.startswith("config:"):
        return _config_has(run["config"], key.removeprefix("config:"))
    return any(k == key or k.startswith(key + "/") for k in _logged(run))


@pytest.fixture(scope="module")
def dry(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("dash") / "dashboard.json"
    assert dashboard.main(["--dry-run", "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("smoke")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        task.run(
            make_cfg(
                "experiment=smoke",
                "logger=wandb",
                "trainer.enable_progress_bar=false",
                "rig.enabled=true",
                "rig.n_images=2",
                "trainer.max_epochs=1",
                "dataset.n_train=256",
                "dataset.n_test=64",
                "eval.n_robust=32",
                "analysis.n_images=16",
                "sweep.bases=[svd,fourier]",
                "analysis.heat_maps=true",
                "analysis.heat_map_size=1",
                "analysis.heat_map_n_images=8",
                "analysis.heat_map_ranks=[1,2]",
            ),
            tmp,
        )
    wandb.teardown()  # flush: the service may write the run's last records after finish()
    run = read_offline_run(tmp / "wandb")
    run["config"] = {**_init_config(tmp / "wandb"), **run["config"]}
    return run


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> dict:
    """The report run over fake runs built for the claims to hold, with their figures drawn."""
    root = make_outputs(tmp_path_factory.mktemp("report") / "outputs")
    out = root / "figures"
    drawn = [name.removeprefix("fig-") for names in dashboard.FIGURES.values() for name in names]
    assert figures.main([str(root), "--out", str(out), "--only", *drawn]) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        rows = collect(root)
        _, results = report.report(rows, out)
        report.log_wandb(rows, results, out)
    return read_offline_run(out / "wandb")


def test_dry_run_lists_sections_and_panels(dry):
    names = [s["name"] for s in dry["sections"]]
    assert [n.split(":")[0] for n in names] == ["C1", "C2", "C3", "C4", "C5", "Runs"]
    panels = [p for s in dry["sections"] for p in s["panels"]]
    assert all(set(p) == {"type", "title", "keys"} for p in panels)
    keys = {k for p in panels for k in p["keys"]}
    # the hand list in docs/figures.md, now built: curves, C4 scatter, C3 by attack, verdicts
    assert {"rank_sweep/low_table", "rank_sweep/high_table", "config:rank"} <= keys
    assert {"rig/top4_share", "config:attack.name", "C1/verdict", "figures/fig-rig"} <= keys
    assert dry["runs_table"] == dashboard.dry_run(dashboard.workspace("e"))["runs_table"]
    assert {"clean_acc", "robust_acc", "rig/top4_share", "config:attack.name"} <= set(
        dry["runs_table"]
    )


def test_every_dashboard_key_is_logged_by_a_run_or_the_report_run(dry, smoke_run, report_run):
    panels = [p for s in dry["sections"] for p in s["panels"]]
    missing = []
    for p in panels:
        # a "(report run)" panel reads the report run; every other one the training runs
        run = report_run if "(report run)" in p["title"] or p["keys"] == ["runs"] else smoke_run
        missing += [(p["title"], k) for k in p["keys"] if not _found(k, run)]
    missing += [("runs table", k) for k in dry["runs_table"] if not _found(k, smoke_run)]
    assert not missing, f"panels read keys no run logs: {missing}"


def test_a_key_no_run_logs_is_caught(smoke_run, report_run):
    # the check above can fail: a renamed metric or config key is not found
    assert not _found("rank_sweep/lowtable", smoke_run)
    assert not _found("config:attack.nam", smoke_run)
    assert not _found("figures/fig-nope", report_run)
    assert _found("rank_sweep/table", smoke_run) and _found("config:attack.name", smoke_run)


def test_without_a_login_it_says_so_in_one_paragraph(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dashboard.main(["--project", "rankrobust"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "no W&B API key" in err and "wandb login" in err


def test_with_a_key_but_no_network_it_says_so_quickly(tmp_path, monkeypatch, capsys):
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_BASE_URL", "http://rankrobust-test.invalid")
    assert dashboard.has_api_key("rankrobust-test.invalid") is False
    assert dashboard.has_api_key("api.wandb.ai") is True
    (tmp_path / ".netrc").write_text(
        "machine rankrobust-test.invalid\n  login user\n  password abc\n"
    )
    assert dashboard.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be reached" in err


def test_a_host_that_never_answers_is_given_up_on(monkeypatch):
    # a name lookup without a resolver can hang past the socket timeout: the check does not wait
    release = threading.Event()
    monkeypatch.setenv("WANDB_API_KEY", "abc")

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("released")

    monkeypatch.setattr(loggers.socket, "create_connection", hang)  # the one W&B check
    try:
        reason = dashboard.offline_reason(timeout=0.2)
    finally:
        release.set()
    assert reason is not None and "cannot be reached" in reason and "no answer" in reason
