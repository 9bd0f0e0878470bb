"""The leaderboard: many run folders -> leaderboard.json / .csv / .html and the population claims
P1-P3, checked against the run folders themselves and an independent computation (scipy's
Spearman, a plain-loop bootstrap)."""

from __future__ import annotations

import csv
import errno
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fake_runs import write_run
from fake_zoo import ENTRIES, FAILED, RANKS, composed, make_zoo
from helpers import child_env

from rankrobust.reporting.leaderboard import CLAIMS, MIN_MODELS, bootstrap, spearman
from rankrobust.reporting.leaderboard.__main__ import main
from rankrobust.reporting.leaderboard.population import decide
from rankrobust.results import read_metrics

RESAMPLES = 400  # fewer draws than the default: the check is exact, not statistical
PLAIN = "synthetic-small_cnn-none-rankNone"  # the ordinary run's name (its config's)
BROKEN = "broken-job"  # a folder whose metrics.json cannot be read
NEVER = "Never2020Started"  # a job folder without metrics.json
REQUIRED = ("name", "dataset", "threat_model", "architecture", "kind", "status", "clean_acc",
            "autoattack_acc", "robust_acc", "rig_top4_share", "n_images", "weights",
            "why")  # fmt: skip


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> dict:
    """The zoo's ten finished jobs and one failed, an ordinary run without a zoo block and an
    unreadable folder, through the command: {"out", "runs", "json", "code"}."""
    root = tmp_path_factory.mktemp("zoo")
    runs = make_zoo(root)
    write_run(runs / "plain", "none", clean=0.9, low={1: 0.2, 4: 0.5}, high={1: 0.5, 4: 0.4},
              robust_acc=0.0)  # fmt: skip
    (runs / NEVER / ".hydra").mkdir(parents=True)  # a job that died before metrics.json
    (runs / NEVER / ".hydra" / "config.yaml").write_text(yaml.safe_dump(composed(NEVER, "L2")))
    (runs / BROKEN).mkdir()
    (runs / BROKEN / "metrics.json").write_text('{"status": "ok", "clean_acc": ')
    out = root / "board"
    code = main([str(runs), "--out", str(out), "--resamples", str(RESAMPLES), "--seed", "3"])
    found = json.loads((out / "leaderboard.json").read_text())
    return {"out": out, "runs": runs, "json": found, "code": code}


def _models(board: dict) -> dict[str, dict]:
    return {m["name"]: m for m in board["json"]["models"]}


def test_one_object_per_model_with_every_field(board):
    assert board["code"] == 0
    models = _models(board)
    names = [e[0] for e in ENTRIES] + [FAILED[0], PLAIN, BROKEN, f"zoo-{NEVER}"]
    assert sorted(models) == sorted(names)
    assert len(board["json"]["models"]) == len(names)
    ks = board["json"]["ranks"]
    assert ks == RANKS
    for m in models.values():
        for key in REQUIRED + tuple(f"{mode}@{k}" for mode in ("low", "high", "kept") for k in ks):
            assert key in m, (m["name"], key)
        assert (m["why"] is None) == (m["status"] == "ok"), m["name"]


def test_entries_read_the_zoo_block_and_the_metrics(board):
    for run_dir in board["runs"].glob("*-0*"):
        metrics = read_metrics(run_dir)
        zoo = metrics["zoo"]
        m = _models(board)[zoo["name"]]
        assert (m["dataset"], m["threat_model"], m["architecture"], m["kind"]) == (
            "cifar10", zoo["threat_model"], zoo["architecture"], zoo["kind"])  # fmt: skip
        assert m["autoattack_acc"] == zoo["autoattack_acc_reported"]
        assert m["clean_acc_reported"] == zoo["clean_acc_reported"]
        assert m["clean_acc"] == metrics["clean_acc"] and m["robust_acc"] is None
        assert m["rig_top4_share"] == metrics["rig"]["top4_share"]
        assert m["n_images"] == metrics["n_test"] and m["weights"] == zoo["weights"]
        for k in RANKS:
            low, high = metrics["rank_sweep"]["low"][k], metrics["rank_sweep"]["high"][k]
            assert m[f"low@{k}"] == low and m[f"high@{k}"] == high
            assert m[f"kept@{k}"] == pytest.approx(low / metrics["clean_acc"], rel=1e-12)


def test_a_model_that_could_not_be_loaded_is_a_row_saying_what_to_copy_where(board):
    m = _models(board)[FAILED[0]]
    weights = str(board["out"].parent / "models" / "cifar10" / "Linf" / f"{FAILED[0]}.pt")
    assert m["status"] == "failed" and m["weights"] == weights
    assert f"copy {FAILED[0]}.pt to {weights}" in m["why"]
    assert m["clean_acc"] is None and m["autoattack_acc"] == FAILED[5]  # the reported one stays
    broken = _models(board)[BROKEN]
    assert broken["status"] == "invalid" and "metrics.json" in broken["why"]
    never = _models(board)[f"zoo-{NEVER}"]  # named by its Hydra config
    assert (never["status"], never["dataset"]) == ("missing", "cifar10")
    assert never["why"].startswith("no metrics.json")


def test_an_ordinary_run_without_a_zoo_block_is_a_row(board):
    m = _models(board)[PLAIN]
    assert (m["dataset"], m["kind"], m["threat_model"], m["source"]) == (
        "synthetic", "natural", "none", "run")  # fmt: skip
    assert m["autoattack_acc"] is None and m["clean_acc_reported"] is None
    assert m["kept@4"] == pytest.approx(0.5 / 0.9) and m["low@2"] is None


def test_csv_holds_the_same_rows_and_columns(board):
    with open(board["out"] / "leaderboard.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == board["json"]["columns"]
    assert [r["name"] for r in rows] == [m["name"] for m in board["json"]["models"]]
    for r, m in zip(rows, board["json"]["models"], strict=True):
        for column, value in m.items():
            if value is None:
                assert r[column] == "", (m["name"], column)
            elif isinstance(value, float):
                assert float(r[column]) == value, (m["name"], column)
            else:
                assert r[column] == str(value), (m["name"], column)


def _independent(runs: Path, claim: str, order: list[str]) -> tuple[list[float], list[float]]:
    """The claim's (AutoAttack, value) pairs read straight from the finished zoo jobs, in the
    models' `order` (the bootstrap draws positions, so the order is part of the protocol)."""
    pairs = {}
    for run_dir in runs.glob("*-0*"):
        metrics = read_metrics(run_dir)
        value = {"P1": lambda m: m["rank_sweep"]["low"][4] / m["clean_acc"],
                 "P2": lambda m: m["rank_sweep"]["high"][4],
                 "P3": lambda m: m["rig"]["top4_share"]}[claim](metrics)  # fmt: skip
        pairs[metrics["zoo"]["name"]] = (metrics["zoo"]["autoattack_acc_reported"], value)
    assert sorted(pairs) == sorted(order)
    return [pairs[n][0] for n in order], [pairs[n][1] for n in order]


def _loop_bootstrap(x, y, resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap over models, one draw at a time, rho from scipy."""
    spearmanr = pytest.importorskip("scipy.stats").spearmanr
    rng = np.random.default_rng(seed)
    xs, ys, rhos = np.array(x), np.array(y), []
    for _ in range(resamples):
        pick = rng.integers(0, len(xs), len(xs))
        if len(set(xs[pick])) > 1 and len(set(ys[pick])) > 1:
            rhos.append(spearmanr(xs[pick], ys[pick]).statistic)
    lo, hi = np.percentile(rhos, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.mark.parametrize("claim", ["P1", "P2", "P3"])
def test_population_claims_match_an_independent_computation(board, claim):
    spearmanr = pytest.importorskip("scipy.stats").spearmanr
    found = next(c for c in board["json"]["population"]
                 if c["claim"] == claim and c["dataset"] == "cifar10")  # fmt: skip
    order = [p["name"] for p in found["points"]]  # the table's order
    assert order == [m["name"] for m in board["json"]["models"] if m["name"] in order]
    x, y = _independent(board["runs"], claim, order)
    assert found["n_models"] == len(ENTRIES) == len(x)
    assert found["rho"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    lo, hi = _loop_bootstrap(x, y, RESAMPLES, seed=3)
    assert (found["lo"], found["hi"]) == (
        pytest.approx(lo, abs=1e-12),
        pytest.approx(hi, abs=1e-12),
    )
    assert (found["resamples"], found["seed"]) == (RESAMPLES, 3)
    assert found["left_out"] == [
        {"name": FAILED[0], "reason": "status failed"},
        {"name": f"zoo-{NEVER}", "reason": "status missing"},
    ]
    sign = {"P1": 1, "P2": -1, "P3": 1}[claim]
    expected = "inconclusive"
    if sign * lo > 0 and sign * hi > 0:
        expected = "holds"
    elif sign * lo <= 0 and sign * hi <= 0:
        expected = "does not hold"
    assert found["verdict"] == expected
    assert (board["out"] / found["figure"]).is_file()


def test_the_fake_zoo_makes_p1_and_p2_hold(board):
    verdicts = {c["claim"]: c["verdict"] for c in board["json"]["population"]
                if c["dataset"] == "cifar10"}  # fmt: skip
    assert verdicts["P1"] == verdicts["P2"] == "holds"


def test_a_data_set_with_too_few_models_is_not_testable_with_its_reason(board):
    synthetic = [c for c in board["json"]["population"] if c["dataset"] == "synthetic"]
    assert [c["claim"] for c in synthetic] == ["P1", "P2", "P3"]
    p1 = synthetic[0]
    assert p1["verdict"] == (f"not testable (fewer than {MIN_MODELS} synthetic models with "
                             "AutoAttack accuracy and kept@4: 1)")  # fmt: skip
    assert p1["points"][0]["autoattack_acc"] == 0.0  # a natural model without one: 0
    assert p1["figure"] is None  # one point: no figure


def _entry(name, aa, kept4, high4, kind="robust", status="ok", rig=0.3, dataset="d"):
    return {"name": name, "dataset": dataset, "status": status, "kind": kind,
            "threat_model": "Linf", "autoattack_acc": aa, "kept": {2: kept4, 4: kept4},
            "high": {4: high4}, "rig_top4_share": rig}  # fmt: skip


def test_verdicts_follow_the_interval():
    p1, p2, p3 = CLAIMS
    falling = [_entry(f"m{i}", 0.1 * i, 1 - 0.1 * i, 0.1 * i) for i in range(8)]
    assert decide(falling, "d", p1, 200)["verdict"] == "does not hold"
    assert decide(falling, "d", p2, 200)["verdict"] == "does not hold"  # expected negative
    rising = [_entry(f"m{i}", 0.1 * i, 0.1 * i, 1 - 0.1 * i) for i in range(8)]
    assert decide(rising, "d", p1, 200)["verdict"] == "holds"
    assert decide(rising, "d", p2, 200)["verdict"] == "holds"
    same = decide(rising, "d", p3, 200)  # every model the same RIG share
    assert same["verdict"] == ("not testable (every model has the same rig_top4_share: rho is "
                               "undefined)")  # fmt: skip


def test_models_left_out_and_the_rank_every_model_measured():
    p1 = CLAIMS[0]
    models = [_entry(f"m{i}", 0.1 * i, 0.1 * i, 0.5) for i in range(6)]
    models[0]["kept"] = {2: 0.1}  # no k = 4: the claim drops to k = 2 for every model
    models.append(_entry("natural", None, 0.05, 0.5, kind="natural"))  # AutoAttack: 0
    models.append(_entry("unknown", None, 0.9, 0.5))  # robust, nothing reported: left out
    models.append(_entry("dead", 0.5, 0.5, 0.5, status="failed"))
    models.append({**_entry("zero", 0.5, None, 0.5), "clean_acc": 0.0, "low": {2: 0.0}})
    models.append(_entry("other", 0.5, 0.5, 0.5, dataset="e"))  # another data set
    found = decide(models, "d", p1, 200)
    assert (found["k"], found["column"], found["n_models"]) == (2, "kept@2", 7)
    assert {p["name"]: p["autoattack_acc"] for p in found["points"]}["natural"] == 0.0
    assert found["left_out"] == [
        {"name": "unknown", "reason": "no reported AutoAttack accuracy (and not a natural model)"},
        {"name": "dead", "reason": "status failed"},
        {"name": "zero", "reason": "kept@2 undefined: clean accuracy 0"},
    ]
    few = decide(models[:4], "d", p1, 200)
    assert few["verdict"].startswith(f"not testable (fewer than {MIN_MODELS} d models")
    models[1]["kept"] = {8: 0.3}  # shares no rank with models[0]
    apart = decide(models, "d", p1, 200)
    assert apart["verdict"] == "not testable (the d models' L_k sweeps share no rank)"


def test_spearman_and_bootstrap_against_scipy_with_ties():
    spearmanr = pytest.importorskip("scipy.stats").spearmanr
    rng = np.random.default_rng(5)
    x = rng.integers(0, 4, 30).astype(float)  # many ties
    y = np.round(rng.normal(size=30), 1)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    lo, hi, undefined = bootstrap(x, y, 300, 7)
    assert (lo, hi) == (pytest.approx(_loop_bootstrap(x, y, 300, 7)[0], abs=1e-12),
                        pytest.approx(_loop_bootstrap(x, y, 300, 7)[1], abs=1e-12))  # fmt: skip
    assert undefined == 0
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    assert bootstrap([1, 1, 1], [1, 2, 3], 10, 0)[2] == 10
    with pytest.raises(ValueError, match="expected pairs"):
        spearman([1, 2], [1])
    with pytest.raises(ValueError, match="resamples=0"):
        bootstrap([1, 2], [1, 2], 0)


def test_the_page_is_self_contained_with_a_row_per_model(board):
    page = (board["out"] / "leaderboard.html").read_text()
    table = page[page.index('<table id="leaderboard">') : page.index("</table>")]
    assert table.count("<tr") == 1 + len(board["json"]["models"])
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|url\(", page)
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert len(sources) == sum(1 for c in board["json"]["population"] if c["figure"])


def test_command_refuses_bad_arguments_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    afile = tmp_path / "afile"
    afile.write_text("x")
    runs = tmp_path / "runs"
    write_run(runs / "r", "none", clean=0.9, low={4: 0.5}, high={4: 0.4}, robust_acc=0.0)
    (tmp_path / "empty").mkdir()
    for argv, says in [
        ([str(tmp_path / "nowhere"), "--out", str(out)], "does not exist"),
        ([str(tmp_path / "empty"), "--out", str(out)], "no run folder"),
        ([str(runs), "--out", str(out), "--resamples", "0"], "--resamples 0"),
        ([str(runs), "--out", str(afile)], "is a file"),
    ]:
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and says in capsys.readouterr().err, argv
    assert not out.exists() and afile.read_text() == "x"


def test_the_module_runs_as_a_command(tmp_path):
    """`python -m rankrobust.reporting.leaderboard` as `make zoo` calls it (its refusal: the
    cheapest path through the real entry point)."""
    done = subprocess.run(
        [sys.executable, "-m", "rankrobust.reporting.leaderboard", str(tmp_path / "none"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=child_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("leaderboard: the runs folder") and "nothing" in done.stderr


# --- the page in a real browser: headless Chromium (Debian's chromium + chromium-driver) ------

INSTALL = (
    "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; "
    ".ci/run does so when it runs as root) and the dev extra (selenium)"
)


def _chromium() -> tuple[str, str]:
    """The Chromium binary and its chromedriver on PATH; skips saying how to install them."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(f"chromium or chromedriver not found: {INSTALL}")
    return binary, driver


def test_without_chromium_the_browser_test_skips_saying_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium chromium-driver"):
        _chromium()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium driven through chromedriver, its profile in a temporary folder, the
    browser log kept (console messages and uncaught errors); skips with how to install when
    absent."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium missing: {INSTALL}")
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tmp_path_factory.mktemp("profile")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    found = webdriver.Chrome(options=options, service=Service(driver))
    yield found
    found.quit()


_READ = """
var names = Array.from(document.querySelectorAll("#leaderboard thead th"), th => th.textContent);
var col = names.indexOf(arguments[0]);
if (col < 0) { return "no column " + arguments[0]; }
return Array.from(document.querySelectorAll("#leaderboard tbody tr"),
                  r => r.cells[col].hasAttribute("data-value") ? r.cells[col].dataset.value : null);
"""


def _column(browser, name: str) -> list[str | None]:
    """The rows' `data-value` of column `name` (None for an empty cell), top to bottom, read
    in one call."""
    found = browser.execute_script(_READ, name)
    assert isinstance(found, list), found
    return found


def _click(browser, name: str) -> None:
    browser.find_element("xpath", f"//table[@id='leaderboard']//th[.='{name}']").click()


def _severe(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_the_page_renders_in_chromium_and_sorts_on_a_click(board, browser, tmp_path):
    models = board["json"]["models"]
    browser.get((board["out"] / "leaderboard.html").as_uri())
    assert _severe(browser) == []
    rows = browser.find_elements("css selector", "#leaderboard tbody tr")
    assert len(rows) == len(models)
    assert _column(browser, "name") == [m["name"] for m in models]

    # numeric: ascending by value, empty cells last; again: descending, empty cells last
    _click(browser, "autoattack_acc")
    up = sorted(models, key=lambda m: (m["autoattack_acc"] is None, m["autoattack_acc"] or 0))
    assert _column(browser, "name") == [m["name"] for m in up]
    _click(browser, "autoattack_acc")
    down = sorted(up, key=lambda m: (m["autoattack_acc"] is None, -(m["autoattack_acc"] or 0)))
    assert _column(browser, "name") == [m["name"] for m in down]
    values = [float(v) for v in _column(browser, "autoattack_acc") if v is not None]
    assert values == sorted(values, reverse=True) and len(values) == len(ENTRIES) + 1

    # a column of numbers that text order would get wrong (9.0% above 10.0%): kept@1
    _click(browser, "kept@1")
    kept = [float(v) for v in _column(browser, "kept@1") if v is not None]
    empty = sum(m["kept@1"] is None for m in models)
    assert kept == sorted(kept) and len(kept) == len(models) - empty > 0 < empty
    assert _column(browser, "kept@1")[-empty:] == [None] * empty

    _click(browser, "name")  # text: alphabetical
    names = _column(browser, "name")
    assert names == sorted(names, key=str.casefold)
    assert _severe(browser) == []
    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_browser_check_sees_a_script_error(board, browser, tmp_path):
    """The console check is real: the same page with a throwing script logs a SEVERE entry."""
    page = (board["out"] / "leaderboard.html").read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("</body>", "<script>undefinedCall();</script></body>"))
    browser.get_log("browser")  # what earlier pages logged
    browser.get(broken.as_uri())
    assert any("undefinedCall" in e["message"] for e in _severe(browser))


def test_a_full_disk_is_one_paragraph_and_leaves_the_old_files_whole(tmp_path, monkeypatch, capsys):
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_run(runs / "r", "none", clean=0.9, low={4: 0.5}, high={4: 0.4}, robust_acc=0.0)
    assert main([str(runs), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"leaderboard.json", "leaderboard.csv", "leaderboard.html"}
    write_run(runs / "s", "none", clean=0.8, low={4: 0.4}, high={4: 0.3}, robust_acc=0.0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("rankrobust.files.os.replace", full)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([str(runs), "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "No space left" in err and "leaderboard.json" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file left


def test_the_page_escapes_what_a_zoo_yaml_names():
    from rankrobust.reporting.leaderboard.page import table

    evil = '<script>alert("x")</script> & co'
    found = table([{"name": evil, "status": "ok", "clean_acc": 0.5}], ["name", "clean_acc"])
    assert "<script>" not in found and "&lt;script&gt;" in found
    assert 'data-value="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"' in found
    assert 'data-value="0.5">50.0%</td>' in found
