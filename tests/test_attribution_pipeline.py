"""Attribution science in a run: explain.run_attribution, its metrics.json part, its checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import make_cfg

from rankrobust.errors import ConfigError
from rankrobust.models import small_cnn
from rankrobust.pipeline import checks, explain, rules
from rankrobust.results import read_metrics, write_metrics


def _datamodule(x, y):
    return SimpleNamespace(
        test_tensors=lambda raw=False, n=None, seed=None: (x[:n], y[:n]),
        test_set=SimpleNamespace(classes=[f"c{i}" for i in range(10)]),
    )


def test_run_attribution_writes_maps_metrics_and_figure(cifar_images, one_thread, tmp_path):
    x, y = cifar_images
    torch.manual_seed(0)
    model = small_cnn(10, width=8).eval()
    settings = explain.AttributionSettings(enabled=True, n_images=4, steps=32, mprt_layers=2)
    out = explain.run_attribution(model, _datamodule(x, y), settings, tmp_path, "test")
    att = out["attribution"]
    assert att["methods"] == ["gradient", "ig", "rig", "sig"] and att["n_images"] == 4
    # every path method at the same budget, said in metrics.json
    assert att["evaluations"] == {"gradient": 1, "ig": 32, "rig": 32, "sig": 32}
    for method in att["methods"]:
        per = att["per_image"][method]
        gap = {"completeness_gap"} if method != "gradient" else set()
        assert set(per) == {"diffid", "sparseness", "complexity", "mprt"} | gap
        for metric, values in per.items():
            assert len(values) == 4
            assert att["mean"][method][metric] == pytest.approx(np.nanmean(values))
        assert all(-1 <= v <= 1 for v in per["diffid"] + per["mprt"])
        assert len(att["mprt_layers"][method]["layers"]) == 2
        assert len(att["curves"][method]["insertion"]) == 9
    arrays = np.load(tmp_path / "attribution.npz")
    assert arrays["map_sig"].shape == (4, 3, 32, 32)
    # the per-image Gini in metrics.json is the Gini of the saved map
    from rankrobust.attribution import sparseness

    np.testing.assert_allclose(
        sparseness(torch.from_numpy(arrays["map_rig"])).numpy(),
        att["per_image"]["rig"]["sparseness"],
        rtol=1e-12,
    )
    # each path map's completeness gap, recomputed from the saved map by the helper
    from rankrobust.attribution import completeness_gap

    for method in ("ig", "rig", "sig"):
        again = completeness_gap(model, torch.from_numpy(arrays["images"]),
                                 torch.from_numpy(arrays[f"map_{method}"]),
                                 torch.from_numpy(arrays["targets"]), score="softmax")  # fmt: skip
        np.testing.assert_allclose(
            again.numpy(), att["per_image"][method]["completeness_gap"], rtol=1e-4, atol=1e-6
        )
        gaps = att["completeness_gap"][method]
        assert gaps["min"] <= gaps["median"] <= gaps["max"]
    assert att["rig_ranks"] is None and att["rig_first_share"] == 0.6
    assert (tmp_path / "attribution.png").stat().st_size > 10_000
    # through the one writer and reader
    ident = dict.fromkeys(("dataset", "model", "attack", "rank", "seed"))
    record = {"status": "ok", "clean_acc": 0.5, "robust_acc": None, "config": ident, "timings": {}}
    write_metrics(tmp_path, {**record, **out})
    back = read_metrics(tmp_path)["attribution"]
    assert back["per_image"]["sig"]["diffid"] == att["per_image"]["sig"]["diffid"]
    json.loads((tmp_path / "metrics.json").read_text())


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("attribution.methods=[gradient,lime]", "attribution.methods"),
        ("attribution.metrics=[]", "attribution.metrics"),
        ("attribution.steps=3", "attribution.steps >= 4"),
        ("attribution.rig_ranks=[1,2,4,8,16,32]", "attribution.steps >= 6"),
        ("attribution.rig_ranks=[1,4,16]", "attribution.rig_ranks"),
        ("attribution.rig_first_share=1.0", "attribution.rig_first_share"),
        ("attribution.overlap=1.0", "attribution.overlap"),
        ("attribution.score=prob", "attribution.score"),
    ],
)
def test_bad_attribution_settings_stop_the_run_naming_the_key(override, match):
    steps = [] if "steps" in override else ["attribution.steps=5"]
    cfg = make_cfg("dataset=synthetic", "attribution.enabled=true", override, *steps)
    with pytest.raises(ConfigError, match=match):
        checks.check_config(cfg)


def test_default_attribution_settings_pass_the_checks():
    rules.check_attribution(make_cfg("dataset=synthetic", "attribution.enabled=true"))
