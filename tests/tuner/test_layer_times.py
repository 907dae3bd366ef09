"""TFLite's time per Keras layer beside TVM's kernels: the grouping, and real measurements."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.models._base import ModelError
from tuner.models.layer_times import compare_layers

ROOT = Path(__file__).resolve().parents[2]


def test_kernels_and_layers_sharing_a_layer_form_one_group() -> None:
    groups = compare_layers(
        kernel_ms={"fused_conv_relu": 3.0, "fused_conv_bias": 1.0, "pool": 0.5, "odd": 0.2},
        kernel_layers={"fused_conv_relu": ["conv", "relu"], "fused_conv_bias": ["conv"],
                       "pool": ["pool"], "odd": []},
        layer_ms={"conv": 2.0, "relu": 0.5, "pool": 1.5, "flatten": 0.1},
    )  # fmt: skip
    by_layers = {g.layers: g for g in groups}
    conv = by_layers[("conv", "relu")]
    assert conv.kernels == ("fused_conv_bias", "fused_conv_relu")
    assert conv.tvm_ms == pytest.approx(4.0) and conv.framework_ms == pytest.approx(2.5)
    assert conv.speedup == pytest.approx(2.5 / 4.0)
    assert by_layers[("pool",)].speedup == pytest.approx(3.0)
    assert by_layers[()].kernels == ("odd",) and by_layers[()].framework_ms == 0.0
    flatten = by_layers[("flatten",)]
    assert flatten.kernels == () and flatten.speedup is None
    assert [g.layers for g in groups][:2] == [("conv", "relu"), ("pool",)]  # heaviest first


def test_a_layer_named_by_a_kernel_but_not_timed_is_left_out() -> None:
    (group,) = compare_layers({"k": 1.0}, {"k": ["gone"]}, {})
    assert group.kernels == ("k",) and group.layers == () and group.framework_ms == 0.0


def test_a_model_without_keras_layers_is_refused_by_name() -> None:
    from tuner.models._base import LoadedModel
    from tuner.models.layer_times import framework_layer_times

    model = LoadedModel(name="net.onnx", framework="onnx", source="net.onnx", inputs=(), mod=None)
    with pytest.raises(ModelError, match=r"net\.onnx.*need a Keras model"):
        framework_layer_times(model, threads=1)


@pytest.mark.slow
def test_evaluate_profile_puts_tflite_layers_beside_tvm_kernels() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tuneloom", "evaluate", "zoo:mlp", "--profile",
         "--baseline", "tflite", "--repeat", "3", "--threads", "1", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    layers = json.loads(done.stdout)["layers"]
    assert layers["framework"] == "tflite" and layers["variant"] == "untuned"
    groups = {tuple(g["layers"]): g for g in layers["groups"]}
    assert set(groups) == {("fc1",), ("fc2",), ("logits",)}
    assert all(len(g["kernels"]) == 1 and g["tvm_ms"] > 0 for g in groups.values())
    # 512x512 weights against 512x10: the bigger layer takes longer on either side.
    assert groups[("fc2",)]["framework_ms"] > groups[("logits",)]["framework_ms"] > 0
    assert groups[("fc2",)]["tvm_ms"] > groups[("logits",)]["tvm_ms"]
    total = sum(g["framework_ms"] for g in groups.values())
    assert total == pytest.approx(layers["layer_sum_ms"])
    assert 0.2 < layers["layer_sum_ms"] / layers["whole_ms"] < 5
