"""Readers never crash on one bad file and never delete outputs when nothing was found:
collect / figures / report turn each malformed metrics.json into an
`invalid` row naming the file and the field, and report the rest."""

from __future__ import annotations

import json
import math

import pytest
from fake_runs import make_outputs

from rankrobust.reporting import collect, intervals, report
from rankrobust.reporting import figures as figures_cli

# (file content, the field the error must name)
BAD_FILES = {
    "null": ("null", "metrics.json"),
    "config_null": ({"config": None}, "config"),
    "config_threat_list": (
        {
            "config": {
                "dataset": "s",
                "model": "m",
                "attack": "none",
                "rank": None,
                "seed": 0,
                "threat": ["linf"],
            }
        },
        "config.threat",
    ),  # fmt: skip
    "string_acc": ({"clean_acc": "0.9"}, "clean_acc"),
    "sweep_list": ({"rank_sweep": [0.1, 0.2]}, "rank_sweep"),
    "sweep_str": ({"rank_sweep": {"low": {"4": "high"}}}, "rank_sweep.low.4"),
    "timings_list": ({"timings": [1, 2]}, "timings"),
    "rig_list": ({"rig": [1]}, "rig"),
    # every field a reader uses: counts, numbers the writer never writes, nesting, types
    "n_test_negative": ({"n_test": -5}, "n_test"),
    "n_test_fraction": ({"n_test": 2.5}, "n_test"),
    "n_test_huge": ('"n_test": 1e400', "1e400"),  # a float infinity
    "n_test_string": ({"n_test": "100"}, "n_test"),
    "n_test_nan": ('"n_test": NaN', "NaN"),
    "robust_infinity": ('"robust_acc": -Infinity', "Infinity"),
    "deeply_nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep_in_a_field": ('"rig": ' + "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "n_robust_bool": ({"n_robust": True}, "n_robust"),
    "rank_sweep_n_string": ({"rank_sweep_n": {"low": "a"}}, "rank_sweep_n"),
    "acc_above_one": ({"clean_acc_attacked": 1.5}, "clean_acc_attacked"),
    "sweep_acc_above_one": ({"rank_sweep": {"low": {"4": 1.2}}}, "rank_sweep.low.4"),
    "sweep_rank_not_int": ({"rank_sweep": {"low": {"four": 0.2}}}, "rank_sweep.low"),
    "basis_sweep_list": ({"basis_sweep": [1]}, "basis_sweep"),
    "basis_cutoff_word": ({"basis_sweep": {"dct": {"low": {"x": 0.1}}}}, "basis_sweep.dct.low"),
    "heat_map_error_str": ({"heat_maps": {"rank": {"error": "x"}}}, "heat_maps.rank.error"),
    "spectrum_str": ({"perturbation_spectrum": {"clean": "x"}}, "perturbation_spectrum.clean"),
    "rig_share_str": ({"rig": {"top4_share": "x"}}, "rig.top4_share"),
    "status_number": ({"status": 3}, "status"),
    "kind_list": ({"kind": ["robust"]}, "kind"),
    "threat_eps_str": ({"threat": {"norm": "Linf", "eps": "8/255"}}, "threat.eps"),
    "eval_eps_str": ({"eval_attack": {"name": "pgd_linf", "eps": "x"}}, "eval_attack.eps"),
    "timing_str": ({"timings": {"fit": "long"}}, "timings.fit"),
    "config_rank_str": (
        {"config": {"dataset": "s", "model": "m", "attack": "none", "rank": "four", "seed": 0}},
        "config.rank",
    ),
    "config_dataset_list": (
        {"config": {"dataset": [1], "model": "m", "attack": "none", "rank": None, "seed": 0}},
        "config.dataset",
    ),
    "attribution_list": ({"attribution": [1]}, "attribution"),
    "classes_str": (
        {"resolved_config": {"dataset": {"num_classes": "ten"}}},
        "resolved_config.dataset.num_classes",
    ),
    "warnings_str": ({"warnings": "x"}, "warnings"),
}


def _good(seed: int) -> dict:
    cfg = {"dataset": "synthetic", "model": "small_cnn", "attack": "none", "rank": None}
    return {
        "schema": 1,
        "status": "ok",
        "error": None,
        "clean_acc": 0.8,
        "robust_acc": 0.1,
        "config": {**cfg, "seed": seed},
        "timings": {},
        "rank_sweep": {"low": {"1": 0.2, "4": None, "32": 0.8}},  # None: the writer's NaN
    }


@pytest.fixture()
def outputs(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    bad = root / "runs" / "bad"
    for name, (content, _) in BAD_FILES.items():
        folder = bad / name
        folder.mkdir(parents=True)
        if isinstance(content, str) and content.startswith('"'):  # a field JSON cannot dump
            text = json.dumps(_good(0))[:-1] + ", " + content + "}"
        else:
            text = content if isinstance(content, str) else json.dumps({**_good(0), **content})
        (folder / "metrics.json").write_text(text)
    nan = root / "runs" / "nan_in_sweep"
    nan.mkdir(parents=True)
    (nan / "metrics.json").write_text(json.dumps(_good(1)))
    return root


def test_each_bad_file_is_an_invalid_row_naming_file_and_field(outputs):
    rows = {r["run_dir"]: r for r in collect.collect(outputs)}
    for name, (_, field) in BAD_FILES.items():
        row = rows[str(outputs / "runs" / "bad" / name)]
        assert row["status"] == "invalid", (name, row)
        assert field in row["error"] and "metrics.json" in row["error"], (name, row["error"])
    nan_row = rows[str(outputs / "runs" / "nan_in_sweep")]
    assert nan_row["status"] == "ok" and nan_row["rank_sweep"]["low"][4] is None
    assert sum(r["status"] == "ok" for r in rows.values()) >= 6  # the rest is reported


def test_figures_and_report_survive_bad_files(outputs, tmp_path, capsys):
    out = tmp_path / "figs"
    assert figures_cli.main([str(outputs), "--out", str(out), "--only", "rank-accuracy"]) == 0
    assert (out / "fig-rank-accuracy.png").is_file()
    assert report.main([str(outputs), "--out", str(out)]) == 0
    assert (out / "report.md").is_file()
    assert "invalid" in capsys.readouterr().out


@pytest.mark.parametrize("cli", [collect.main, figures_cli.main, report.main])
def test_a_missing_runs_folder_is_exit_2_and_deletes_nothing(cli, tmp_path, capsys):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "fig-rank-accuracy.png").write_bytes(b"png")
    (out / "runs.csv").write_text("run_dir\nx\n")
    with pytest.raises(SystemExit) as info:
        cli([str(tmp_path / "no_such_outputs"), "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no_such_outputs" in err and "Traceback" not in err
    assert (out / "fig-rank-accuracy.png").read_bytes() == b"png"
    assert (out / "runs.csv").read_text() == "run_dir\nx\n"


@pytest.mark.parametrize("cli", [collect.main, figures_cli.main, report.main])
def test_out_that_is_a_file_is_one_paragraph(cli, outputs, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    with pytest.raises(SystemExit) as info:
        cli([str(outputs), "--out", str(target)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(target) in err and err.strip().count("\n") == 0
    assert target.read_text() == "keep me"


def test_difference_of_a_zero_spread_mean_and_a_binomial_is_finite():
    same = intervals.mean_of([0.5, 0.5])  # two identical seeds: se = 0 over 1 df
    diff = intervals.difference(same, intervals.binomial(0.4, 100))
    assert diff.value == pytest.approx(0.1) and math.isfinite(diff.hi - diff.lo)
    assert diff.lo < diff.value < diff.hi
    assert intervals.difference(same, same).value == 0.0


# Malformed forms of a field the claims read, planted in runs that the report pairs and groups.
IN_PLACE = {
    "n_test": ["-5", "2.5", "1e400", '"100"', "NaN"],
    "n_robust": ["-1", "Infinity"],
    "rank_sweep_n": ['"a"', '{"low": -3}'],
}
PLANTED = [(key, value) for key, values in IN_PLACE.items() for value in values]


def _plant(metrics_path, key: str, value: str) -> None:
    record = json.loads(metrics_path.read_text())
    record.pop(key, None)
    metrics_path.write_text(json.dumps(record)[:-1] + f', "{key}": {value}}}')


@pytest.fixture()
def paired_runs(tmp_path):
    root = make_outputs(tmp_path / "outputs")
    return root, sorted((root / "runs").rglob("metrics.json"))


@pytest.mark.parametrize(("key", "value"), PLANTED, ids=[f"{k}={v}" for k, v in PLANTED])
def test_a_malformed_count_in_a_paired_run_is_an_invalid_row(paired_runs, tmp_path, key, value):
    root, runs = paired_runs
    _plant(runs[0], key, value)
    out = tmp_path / "report"
    assert report.main([str(root), "--out", str(out)]) == 0
    rows = {r["run_dir"]: r for r in json.loads((out / "runs.json").read_text())}
    row = rows[str(runs[0].parent)]
    assert row["status"] == "invalid" and (key in row["error"] or value in row["error"]), row
    assert str(runs[0]) in row["error"]


def test_all_figures_survive_malformed_paired_runs(paired_runs, tmp_path):
    root, runs = paired_runs
    for path, (key, value) in zip(runs, PLANTED, strict=False):
        _plant(path, key, value)
    out = tmp_path / "figs"
    assert figures_cli.main([str(root), "--out", str(out)]) == 0
    rows = json.loads((out / "runs.json").read_text())
    assert sum(r["status"] == "invalid" for r in rows) == min(len(runs), len(PLANTED))


@pytest.mark.parametrize(
    "overrides",
    [
        ["attack=fgsm_rs"],  # a trained robust run
        [
            "train=false",
            "model.checkpoint=w.pt",
            "model.kind=robust",
            "model.threat={norm: linf, eps: 0.0313725}",
        ],
        ["train=false", "model.checkpoint=w.pt", "model.kind=natural"],
        ["attack=none"],
    ],
)
def test_the_record_a_run_writes_passes_the_readers_check(overrides, tmp_path):
    """metrics.json's config and kind, as the writer builds them, are valid for every reader:
    a robust run (trained or loaded, with its threat model) is never an `invalid` row."""
    from helpers import make_cfg
    from omegaconf import OmegaConf

    from rankrobust.results import base_record, read_metrics, write_metrics

    cfg = OmegaConf.to_container(make_cfg("experiment=smoke", *overrides), resolve=True)
    write_metrics(tmp_path, base_record(cfg, tmp_path, "smoke", "python run.py"))
    assert read_metrics(tmp_path)["config"]["kind"] in ("natural", "robust")
    (row,) = collect.collect([tmp_path])
    assert row["status"] == "running", row.get("error")
