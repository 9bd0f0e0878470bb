"""The zoo: shipped RobustBench entries, zoo yaml checks, the threat model's attack, job folders
keyed by content, the shared factorisation cache, and one `make zoo`-style run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import ROOT, make_cfg

from rankrobust.data import factor_cache
from rankrobust.errors import ConfigError
from rankrobust.pipeline.checks import check_config
from rankrobust.pipeline.resolvers import job_name
from rankrobust.zoo import parse_entries, read_zoo, robustbench_entries, robustbench_entry
from rankrobust.zoo.entries import SHIPPED
from rankrobust.zoo.generate import entries_from_model_info

MODEL_INFO = ROOT.parent / "shared" / "data" / "robustbench-model-info"


def test_shipped_entries_are_what_the_generator_makes_of_robustbench_model_info():
    if not MODEL_INFO.is_dir():
        pytest.skip(f"RobustBench model info not at {MODEL_INFO} (shared/data/README.md)")
    assert json.loads(SHIPPED.read_text()) == entries_from_model_info(MODEL_INFO)
    # one entry against its source file, read independently: percent strings -> fractions
    raw = json.loads((MODEL_INFO / "cifar10" / "L2" / "Rice2020Overfitting.json").read_text())
    rice = robustbench_entry("Rice2020Overfitting", "cifar10", "L2")
    assert rice.clean_acc_reported == pytest.approx(float(raw["clean_acc"]) / 100)
    assert rice.autoattack_acc_reported == pytest.approx(float(raw["autoattack_acc"]) / 100)
    assert (rice.architecture, rice.venue, rice.link) == (
        raw["architecture"], raw["venue"], raw["link"])  # fmt: skip
    assert rice.threat == {"norm": "l2", "eps": 0.5} and rice.kind == "robust"


def test_entries_select_by_dataset_threat_model_and_architecture():
    # the counts RobustBench's README gives for CIFAR-10: Linf 99, L2 21, corruptions 23
    counts = {tm: len(robustbench_entries("cifar10", tm)) for tm in ("Linf", "L2", "corruptions")}
    assert counts == {"Linf": 99, "L2": 21, "corruptions": 23}
    preact = robustbench_entries("cifar10", "Linf", "preactresnet-18")
    assert preact and all(e.architecture == "PreActResNet-18" for e in preact)
    assert "Wong2020Fast" in {e.name for e in preact}
    standard = robustbench_entry("Standard", "cifar10", "Linf")
    assert standard.kind == "natural" and standard.threat is None
    corr = robustbench_entries("cifar10", "corruptions")
    assert all(e.threat is None and e.autoattack_acc_reported is None for e in corr)
    for e in robustbench_entries():
        for acc in (e.clean_acc_reported, e.autoattack_acc_reported):
            assert acc is None or 0 <= acc <= 1
    with pytest.raises(ConfigError, match="Linf, L2, corruptions"):
        robustbench_entries("cifar10", "linf")


@pytest.mark.parametrize(
    "items, match",
    [
        ([{"name": "Rice2020Overfiting", "dataset": "cifar10", "threat_model": "L2"}],
         "entry 1: .*no entry 'Rice2020Overfiting'.*Closest names: Rice2020Overfitting"),
        ([{"name": "Rice2020Overfitting", "dataset": "cifar10", "threat_model": "l2"}],
         "threat_model='l2'.*Linf, L2, corruptions"),
        ([{"name": "Rebuffi2021Fixing_70_16_cutmix_extra", "dataset": "cifar10",
           "threat_model": "corruptions"}], "It is an entry of cifar10/L2, cifar10/Linf"),
        ([{"name": "m", "checkpoint": "m.pt", "arch": "resnet9", "kind": "robust",
           "threat": {"norm": "linf", "eps": 0.03}}], "arch='resnet9' is not an architecture"),
        ([{"name": "m", "checkpoint": "m.pt", "arch": "preact_resnet18", "kind": "robust"}],
         "needs threat: {norm: linf"),
        ([{"name": "m", "checkpoint": "m.pt", "arch": "preact_resnet18", "kind": "robust",
           "threat": {"norm": "l3", "eps": 1}}], "norm: linf"),
        ([{"name": "m", "checkpoint": "m.pt", "arch": "preact_resnet18", "kind": "natural",
           "threat": {"norm": "l2", "eps": 1.0}}], "a natural model has no threat model"),
        ([{"name": "m", "checkpoint": "m.pt", "arch": "preact_resnet18", "kind": "fast"}],
         "kind='fast'"),
        ([{"name": "Standard", "dataset": "cifar10", "threat_model": "Linf", "eps": 1}],
         "unknown: eps"),
        ([{"select": {"dataset": "cifar10", "norm": "L2"}}], "select takes dataset"),
        ([{"name": "Standard"}, {"name": "Standard", "dataset": "cifar10"}], "given twice"),
        ({"name": "Standard"}, "a non-empty yaml list"),
        (["Standard"], "not a mapping"),
    ],
)  # fmt: skip
def test_bad_zoo_entries_are_one_paragraph_naming_the_entry_and_the_fix(tmp_path, items, match):
    with pytest.raises(ConfigError, match=match) as err:
        parse_entries(items, tmp_path / "zoo.yaml")
    assert "\n" not in str(err.value) and "zoo.yaml" in str(err.value)


def test_zoo_files_select_entries_read_checkpoints_beside_them_and_fail_clearly(tmp_path):
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(
        "- {select: {dataset: cifar10, threat_model: L2, architecture: ResNet-18}}\n"
        "- {name: mine, checkpoint: w/mine.pt, arch: preact_resnet18, kind: natural}\n"
    )
    entries = read_zoo(zoo)
    assert [e.source for e in entries] == ["robustbench"] * (len(entries) - 1) + ["checkpoint"]
    assert all(e.threat_model == "L2" for e in entries[:-1])
    assert entries[-1].checkpoint == str(tmp_path / "w" / "mine.pt")
    assert entries[-1].threat_model == "none" and entries[-1].threat is None
    for text, match in (("[a, b", "is not yaml"), ("", "non-empty yaml list")):
        zoo.write_text(text)
        with pytest.raises(ConfigError, match=match):
            read_zoo(zoo)
    with pytest.raises(ConfigError, match="cannot be read"):
        read_zoo(tmp_path / "absent.yaml")
    default = read_zoo(ROOT / "src" / "rankrobust" / "zoo" / "default_zoo.yaml")
    assert {e.threat_model for e in default} == {"Linf", "L2"}


RB_L2 = ["model=robustbench", "model.name_rb=Rice2020Overfitting", "model.threat_model=L2",
         "train=false", "dataset=synthetic"]  # fmt: skip


def test_an_l2_model_is_attacked_in_l2_and_a_forced_linf_attack_is_refused():
    spec = check_config(make_cfg(*RB_L2))  # attack=none: its test attack follows the model
    assert (spec.eval_attack.name, spec.eval_attack.eps) == ("pgd_l2", 0.5)
    assert spec.eval_attack.step_size == pytest.approx(0.125)
    declared = ["model=preact_resnet18", "train=false", "dataset=synthetic", "model.kind=robust",
                "model.threat={norm: l2, eps: 1.0}", "model.checkpoint=random"]  # fmt: skip
    assert check_config(make_cfg(*declared)).eval_attack.name == "pgd_l2"
    for forced in (["attack=pgd_linf"], ["attack=autoattack"]):
        with pytest.raises(ConfigError, match="robust at L2 0.5.*attack=pgd_l2"):
            check_config(make_cfg(*RB_L2, *forced))
    linf = check_config(make_cfg(*RB_L2[:2], "train=false", "dataset=synthetic"))
    assert linf.eval_attack.name == "pgd_linf"
    assert linf.eval_attack.eps == pytest.approx(8 / 255, abs=1e-6)
    trained = check_config(make_cfg("dataset=synthetic", "model=small_cnn"))
    assert trained.eval_attack.name == "pgd_linf"  # a trained natural model: as before


def test_job_folders_are_keyed_by_content_not_by_job_number():
    entry = {"name": "Rice2020Overfitting", "threat_model": "L2", "weights": "/a/x.pt"}
    a = job_name("+zoo_entry=Rice2020Overfitting,dataset.n_test=8,sweep.ranks=[1,2]", entry)
    moved = job_name("dataset.n_test=8,sweep.ranks=[1,2],+zoo_entry=Rice2020Overfitting",
                     {**entry, "weights": "/b/x.pt"})  # fmt: skip
    assert a == moved and a.startswith("Rice2020Overfitting_")
    assert job_name("+zoo_entry=x,dataset.n_test=9", entry) != a
    assert job_name("+zoo_entry=x,dataset.n_test=8", {**entry, "threat_model": "Linf"}) != a
    assert job_name("rank=4,seed=1") == "rank=4,seed=1"  # no job number in front
    config = (ROOT / "conf" / "config.yaml").read_text()
    assert "subdir: ${rr_job_name:${hydra.job.override_dirname},${oc.select:zoo,null}}" in config


def test_the_factorisation_is_read_from_the_disk_cache_the_second_time(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))
    calls = []
    real = factor_cache.factorize
    monkeypatch.setattr(factor_cache, "factorize",
                        lambda x, **kw: calls.append(len(x)) or real(x, **kw))  # fmt: skip
    images = torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    first = factor_cache.cached_factorization(images, 4, 4, "cpu")
    assert calls == [4, 2] and len(list((tmp_path / "cache").glob("factors-*.npz"))) == 1
    second = factor_cache.cached_factorization(images.clone(), 4, 4, "cpu")
    assert calls == [4, 2]  # read, not computed again
    other = factor_cache.cached_factorization(images[:5], 4, 4, "cpu")
    assert calls == [4, 2, 4, 1]  # other images: another key
    assert len(other) == 5
    for k in (1, 4):
        torch.testing.assert_close(second.low_rank(k), first.low_rank(k), rtol=0, atol=0)
        torch.testing.assert_close(second.high_rank(k), first.high_rank(k), rtol=0, atol=0)
    # the same numbers as the library's own factorisation
    torch.testing.assert_close(second.low_rank(2), real(images).low_rank(2), atol=1e-5, rtol=0)


def test_each_entry_gets_its_own_config_option_with_its_threat_models_attack(tmp_path, capsys):
    import yaml

    from rankrobust.launch import zoo as launch_zoo

    entries = read_zoo(ROOT / "src" / "rankrobust" / "zoo" / "default_zoo.yaml")
    entries += parse_entries(
        [{"select": {"dataset": "cifar10", "threat_model": "corruptions",
                     "architecture": "ResNet-18"}},
         {"name": "mine", "checkpoint": "/w/mine.pt", "arch": "wide_resnet", "kind": "natural"}],
        tmp_path / "more.yaml",
    )  # fmt: skip
    names = launch_zoo.write_entry_configs(entries, tmp_path / "conf", tmp_path / "models")
    assert len(set(names)) == len(entries)  # one name in two leaderboards: two options
    both = {"Engstrom2019Robustness_cifar10_Linf", "Engstrom2019Robustness_cifar10_L2"}
    assert both <= set(names)
    read = {n: yaml.safe_load((tmp_path / "conf" / "zoo_entry" / f"{n}.yaml").read_text())
            for n in names}  # fmt: skip
    rice = read["Rice2020Overfitting"]
    assert {"override /attack": "pgd_l2"} in rice["defaults"]
    assert rice["attack"]["eval"] == {"eps": 0.5, "step_size": 0.125}
    assert rice["model"]["threat_model"] == "L2" and rice["zoo"]["weights"] == str(
        tmp_path / "models" / "cifar10" / "L2" / "Rice2020Overfitting.pt")  # fmt: skip
    assert {"override /attack": "pgd_linf"} in read["Wong2020Fast"]["defaults"]
    for natural in ["Standard", "mine"] + [n for n in names if read[n]["zoo"]["threat_model"]
                                          == "corruptions"]:  # fmt: skip
        assert read[natural]["attack"] == {"eval": None}, natural
    assert read["mine"]["model"] == {"checkpoint": "/w/mine.pt", "kind": "natural", "threat": None}
    assert {"override /model": "wide_resnet"} in read["mine"]["defaults"]
    # a stale option of an earlier zoo is removed; the sweep's command names every option
    launch_zoo.write_entry_configs(entries[:2], tmp_path / "conf", tmp_path / "models")
    assert len(list((tmp_path / "conf" / "zoo_entry").glob("*.yaml"))) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: Rice2020Overfitting, dataset: cifar10, threat_model: l2}\n")
    code = launch_zoo.main(["--zoo", str(bad), "--models", "m", "--out", str(tmp_path / "o")])
    assert code == 2 and "threat_model='l2'" in capsys.readouterr().err


def test_a_missing_weights_file_names_the_file_and_where_to_copy_it(tmp_path):
    from rankrobust.pipeline.threat_checks import check_zoo_weights

    rb = {"name": "Rice2020Overfitting", "source": "robustbench", "dataset": "cifar10",
          "threat_model": "L2", "weights": str(tmp_path / "cifar10" / "L2" / "R.pt")}  # fmt: skip
    with pytest.raises(ConfigError, match=r"not at .*R\.pt.*download .*L2 Rice2020Overfitting"):
        check_zoo_weights(rb)
    mine = {"name": "mine", "source": "checkpoint", "weights": str(tmp_path / "mine.pt")}
    with pytest.raises(ConfigError, match="checkpoint of zoo entry 'mine' is not at"):
        check_zoo_weights(mine)
    (tmp_path / "cifar10" / "L2").mkdir(parents=True)
    (tmp_path / "cifar10" / "L2" / "R.pt_m0.pt").write_bytes(b"")  # an ensemble's first file
    check_zoo_weights(rb)
    check_zoo_weights({**rb, "dataset": "imagenet", "name": "Standard_R50"})  # torchvision's
    check_zoo_weights(None)  # an ordinary run


def test_download_fetches_each_entry_with_robustbench_into_its_layout(tmp_path, monkeypatch):
    """rankrobust.zoo.download calls robustbench.utils.load_model per name (importable where
    setuptools lacks pkg_resources) and names the files; a misspelt name fetches nothing."""
    from rankrobust.models.external import robustbench_compat
    from rankrobust.zoo import download

    robustbench_compat()
    import robustbench.utils

    calls = []

    def fake_load_model(model_name, model_dir, dataset, threat_model):
        calls.append((model_name, model_dir, dataset, threat_model))
        path = Path(model_dir) / dataset / threat_model / f"{model_name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")

    monkeypatch.setattr(robustbench.utils, "load_model", fake_load_model)
    models = tmp_path / "models"
    code = download.main(["--model-dir", str(models), "--threat-model", "L2",
                          "Rice2020Overfitting", "Sehwag2021Proxy_R18"])  # fmt: skip
    assert code == 0
    assert calls == [(n, str(models), "cifar10", "L2")
                     for n in ("Rice2020Overfitting", "Sehwag2021Proxy_R18")]  # fmt: skip
    assert (models / "cifar10" / "L2" / "Sehwag2021Proxy_R18.pt").read_bytes() == b"weights"
    calls.clear()
    code = download.main(["--model-dir", str(models), "Rice2020Overfitting", "Wong2020Fats"])
    assert code == 2 and calls == []  # checked before anything is fetched
