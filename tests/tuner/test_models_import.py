"""Importing models into Relax: every route, checked against the framework on random inputs,
the zoo's determinism, and a clear one-line error for every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from model_files import (
    SMALL_IMAGE,
    TEST_THREADS,
    assert_outputs_close,
    keras,
    run_tvm,
    truncate,
    write_custom_layer_keras,
    write_keras,
    write_lambda_keras,
    write_onnx,
    write_onnx_dynamic_spatial,
    write_onnx_invalid,
    write_onnx_unsupported,
    write_pickle_tripwire,
    write_savedmodel,
    write_tflite,
    write_tflite_custom_op,
    write_zip_without_config,
)

from tuner.models._base import InputSpec, ModelError
from tuner.models.baselines import open_baseline
from tuner.models.inputs import parse_input_shape
from tuner.models.loaders import load_model, random_inputs
from tuner.models.wiring import GRAPHS, random_wiring, watts_strogatz
from tuner.models.zoo import (
    DEFAULT_IMAGE_SIZE,
    MLP_FEATURES,
    NUM_CLASSES,
    RANDWIRE,
    ZOO,
    RandWireSpec,
    build_keras,
    build_nn_mlp,
    build_onnx,
    build_randwire,
)

REPO = Path(__file__).resolve().parents[2]


def small_shapes(name: str) -> dict[str, tuple[int, ...]] | None:
    return None if name == "mlp" else {"image": (1, SMALL_IMAGE, SMALL_IMAGE, 3)}


def check_against(model, baseline: str) -> None:
    feeds = random_inputs(model, seed=5)
    want = open_baseline(model, baseline, threads=TEST_THREADS)(feeds)
    assert_outputs_close(run_tvm(model, feeds), want)


def assert_one_line(err: pytest.ExceptionInfo, model: str, *fragments: str) -> None:
    text = str(err.value)
    assert isinstance(err.value, ModelError)
    assert text.startswith(f"model {model}:"), text
    assert "\n" not in text and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model files shared by the tests of this module (written once)."""
    d = tmp_path_factory.mktemp("models")
    return {
        "keras": write_keras(d / "cnn.keras"),
        "tflite": write_tflite(d / "cnn.tflite"),
        "savedmodel": write_savedmodel(d / "two_input_sm"),
        "onnx": write_onnx(d / "cnn.onnx"),
    }


# ---------------------------------------------------------------- zoo
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_imports_and_matches_tensorflow_and_tflite(name: str) -> None:
    model = load_model(f"zoo:{name}", input_shapes=small_shapes(name))
    assert (model.name, model.framework, model.source) == (name, "keras", f"zoo:{name}")
    assert model.baselines == ("tensorflow", "tflite")
    assert model.artifacts["tflite_bytes"][4:8] == b"TFL3"
    want_shape = (1, MLP_FEATURES) if name == "mlp" else (1, SMALL_IMAGE, SMALL_IMAGE, 3)
    assert model.inputs == (InputSpec("features" if name == "mlp" else "image", want_shape),)
    assert [p.name for p in model.mod["main"].params] == [s.name for s in model.inputs]
    check_against(model, "tensorflow")
    check_against(model, "tflite")


@pytest.mark.parametrize("name", ZOO)
def test_zoo_defaults_and_batch(name: str) -> None:
    model = build_keras(name)
    size = DEFAULT_IMAGE_SIZE.get(name)
    want = (None, MLP_FEATURES) if name == "mlp" else (None, size, size, 3)
    assert tuple(model.inputs[0].shape) == want
    assert tuple(model.outputs[0].shape) == (None, NUM_CLASSES)
    assert build_keras(name, batch=4, image_size=8).inputs[0].shape[0] == 4


def test_zoo_models_have_the_promised_layers() -> None:
    def kinds(name: str) -> set[str]:
        return {type(layer).__name__ for layer in build_keras(name, image_size=8).layers}

    assert {"Conv2D", "MaxPooling2D", "Dense"} <= kinds("cnn")
    assert {"DepthwiseConv2D", "Conv2D", "BatchNormalization", "ReLU"} <= kinds("mobilenet")
    assert {"Add", "BatchNormalization"} <= kinds("resnet")
    assert kinds("mlp") == {"InputLayer", "Dense"}
    assert {"SeparableConv2D", "Add", "ReLU"} <= kinds("randwire") & kinds("randwire-b")
    assert {"Concatenate", "MaxPooling2D", "Conv2D"} <= kinds("inception")


def test_random_wiring_is_a_seeded_dag() -> None:
    for graph in GRAPHS:
        wiring = random_wiring(graph, 12, np.random.default_rng(3))
        assert wiring == random_wiring(graph, 12, np.random.default_rng(3))
        assert wiring != random_wiring(graph, 12, np.random.default_rng(4))
        assert all(0 <= a < b < 12 for a, b in wiring.edges)
        assert wiring.sources and wiring.sinks
    ws = watts_strogatz(12, 4, 0.75, np.random.default_rng(0))
    assert len(ws.edges) == 12 * 4 // 2  # rewiring moves links, never drops them
    assert watts_strogatz(12, 4, 0.0, np.random.default_rng(0)).predecessors(11) == (0, 1, 9, 10)
    assert (RANDWIRE["randwire"].wiring_seed, RANDWIRE["randwire-b"].wiring_seed) == (0, 1)
    other = build_randwire(RandWireSpec("ws", 5, ((8, 1),), wiring_seed=7), image_size=8)
    assert {"SeparableConv2D"} <= {type(layer).__name__ for layer in other.layers}


def test_zoo_weights_are_the_same_in_another_process(tmp_path: Path) -> None:
    x = {
        n: np.random.default_rng(9).standard_normal(s).astype("float32")
        for n, s in (("image", (2, 8, 8, 3)), ("features", (2, MLP_FEATURES)))
    }
    np.savez(tmp_path / "x.npz", **x)
    script = textwrap.dedent(f"""
        import numpy as np
        from tuner.models.baselines import configure_tensorflow_threads
        configure_tensorflow_threads({TEST_THREADS})
        from tuner.models.zoo import ZOO, build_keras
        x = np.load({str(tmp_path / "x.npz")!r})
        out = {{}}
        for name in ZOO:
            m = build_keras(name, image_size=8, seed=0)
            out[name] = np.asarray(m(x["features" if name == "mlp" else "image"], training=False))
            for i, w in enumerate(m.get_weights()):
                out[f"{{name}}_w{{i}}"] = w
        np.savez({str(tmp_path / "other.npz")!r}, **out)
    """)
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, capture_output=True)
    other = np.load(tmp_path / "other.npz")
    for name in ZOO:
        model = build_keras(name, image_size=8, seed=0)
        for i, w in enumerate(model.get_weights()):
            np.testing.assert_array_equal(w, other[f"{name}_w{i}"])
        here = np.asarray(model(x["features" if name == "mlp" else "image"], training=False))
        np.testing.assert_allclose(here, other[name], rtol=1e-6, atol=1e-6)
        reseeded = build_keras(name, image_size=8, seed=1).get_weights()
        assert not np.array_equal(reseeded[0], other[f"{name}_w0"])


def test_zoo_unknown_name() -> None:
    with pytest.raises(ModelError) as err:
        load_model("zoo:vgg")
    assert_one_line(err, "zoo:vgg", "no such zoo model", "cnn, mobilenet, resnet, mlp")
    with pytest.raises(ModelError) as err:
        build_onnx("resnet")
    assert_one_line(err, "zoo:resnet", "no such ONNX zoo model", "cnn, mlp")
    with pytest.raises(ModelError) as err:
        build_keras("cnn", image_size=2)
    assert_one_line(err, "zoo:cnn", "image_size")


# ---------------------------------------------------------------- Keras and TensorFlow routes
def test_keras_object_with_open_batch_takes_batch_size() -> None:
    model = load_model(build_keras("resnet", image_size=SMALL_IMAGE), batch_size=3)
    assert model.framework == "keras" and model.source is None and model.name == "zoo_resnet"
    assert model.inputs[0].shape == (3, SMALL_IMAGE, SMALL_IMAGE, 3)
    check_against(model, "tensorflow")


def test_keras_batch_size_overrides_a_known_batch() -> None:
    model = load_model(build_keras("mlp", batch=1), batch_size=2)
    assert model.inputs[0].shape == (2, MLP_FEATURES)
    check_against(model, "tflite")


def test_keras_file(files: dict[str, Path]) -> None:
    model = load_model(files["keras"])
    assert (model.framework, model.source, model.name) == (
        "keras",
        str(files["keras"]),
        str(files["keras"]),
    )
    assert model.inputs == (InputSpec("image", (1, SMALL_IMAGE, SMALL_IMAGE, 3)),)
    check_against(model, "tensorflow")
    assert load_model(files["keras"], name="mine").name == "mine"


def test_keras_inputs_follow_relax_order_and_outputs_keep_model_order() -> None:
    from model_files import two_io_keras

    model = load_model(two_io_keras())
    assert [s.name for s in model.inputs] == ["zeta", "alpha"]
    assert [p.name for p in model.mod["main"].params] == ["zeta", "alpha"]
    feeds = random_inputs(model)
    got = run_tvm(model, feeds)
    assert [g.shape for g in got] == [(1, 3), (1, 2)]
    assert_outputs_close(got, open_baseline(model, "tensorflow", threads=TEST_THREADS)(feeds))
    assert_outputs_close(got, open_baseline(model, "tflite", threads=TEST_THREADS)(feeds))


def test_keras_open_spatial_dims_need_an_override() -> None:
    inp = keras.Input((None, None, 3), name="photo")
    net = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp)))
    with pytest.raises(ModelError) as err:
        load_model(net, name="fcn")
    assert_one_line(
        err,
        "fcn",
        "'photo'",
        "unknown dimension 1",
        "(?, ?, ?, 3)",
        "input_shapes={'photo': (1, 32, 32, 3)}",
        "--input-shape photo:1x32x32x3",
    )
    model = load_model(net, input_shapes={"photo": (1, 12, 10, 3)})
    assert model.inputs[0].shape == (1, 12, 10, 3)
    check_against(model, "tensorflow")


def test_zoo_image_size_from_input_shapes() -> None:
    model = load_model("zoo:cnn", input_shapes={"image": (2, 8, 12, 3)})
    assert model.inputs[0].shape == (2, 8, 12, 3)
    check_against(model, "tflite")


def test_savedmodel_directory(files: dict[str, Path]) -> None:
    model = load_model(files["savedmodel"], batch_size=2)
    assert (model.framework, model.source) == ("savedmodel", str(files["savedmodel"]))
    assert model.baselines == ("tensorflow", "tflite")
    assert {s.name: s.shape for s in model.inputs} == {"feat": (2, 6), "aux": (2, 3)}
    assert [p.name for p in model.mod["main"].params] == [s.name for s in model.inputs]
    feeds = random_inputs(model)
    got = run_tvm(model, feeds)
    # dict outputs come flattened by sorted key: "scaled" (2, 4), then "sum" (2, 1)
    assert [g.shape for g in got] == [(2, 4), (2, 1)]
    assert_outputs_close(got, open_baseline(model, "tensorflow", threads=TEST_THREADS)(feeds))
    assert_outputs_close(got, open_baseline(model, "tflite", threads=TEST_THREADS)(feeds))


def test_keras_exported_savedmodel(tmp_path: Path) -> None:
    build_keras("mobilenet", image_size=SMALL_IMAGE).export(str(tmp_path / "sm"), verbose=False)
    model = load_model(tmp_path / "sm")
    assert model.inputs[0].shape == (1, SMALL_IMAGE, SMALL_IMAGE, 3)
    check_against(model, "tensorflow")


def test_tflite_file_with_open_batch(files: dict[str, Path]) -> None:
    model = load_model(files["tflite"], batch_size=2)
    assert (model.framework, model.baselines) == ("tflite", ("tflite",))
    assert model.inputs[0].shape == (2, SMALL_IMAGE, SMALL_IMAGE, 3)
    assert model.artifacts["tflite_bytes"] == files["tflite"].read_bytes()
    check_against(model, "tflite")
    # and against the Keras model it came from, at batch 1
    single = load_model(files["tflite"])
    feeds = random_inputs(single)
    keras_out = build_keras("cnn", image_size=SMALL_IMAGE)(feeds[single.inputs[0].name])
    assert_outputs_close(run_tvm(single, feeds), [np.asarray(keras_out)])


# ---------------------------------------------------------------- ONNX routes
@pytest.mark.parametrize(
    ("kwargs", "batch_size", "want_batch"),
    [
        ({}, None, 1),
        ({"initializers_as_inputs": True}, None, 1),
        ({"symbolic_batch": True}, None, 1),
        ({"symbolic_batch": True}, 3, 3),
        ({"batch": 1}, 2, 2),
        ({"name": "mlp", "initializers_as_inputs": True, "symbolic_batch": True}, 2, 2),
    ],
)
def test_onnx_file(tmp_path: Path, kwargs: dict, batch_size: int | None, want_batch: int) -> None:
    path = write_onnx(tmp_path / "m.onnx", **kwargs)
    model = load_model(path, batch_size=batch_size)
    assert (model.framework, model.baselines, model.source) == ("onnx", ("onnxruntime",), str(path))
    # one real input even when the weights are listed as inputs; the ONNX name is kept
    assert [s.name for s in model.inputs] == ["input.1"]
    assert [p.name for p in model.mod["main"].params] == ["input_1"]
    assert model.inputs[0].shape[0] == want_batch
    check_against(model, "onnxruntime")


def test_onnx_model_object_and_output_order() -> None:
    from model_files import two_output_onnx

    model = load_model(two_output_onnx())
    feeds = random_inputs(model)
    got = run_tvm(model, feeds)
    np.testing.assert_array_equal(got[0], np.maximum(feeds["x"], 0))
    np.testing.assert_array_equal(got[1], -feeds["x"])
    assert_outputs_close(got, open_baseline(model, "onnxruntime", threads=1)(feeds))
    assert load_model(build_onnx("mlp")).name == "zoo_mlp"


def test_onnx_symbolic_spatial_dims_need_an_override(tmp_path: Path) -> None:
    path = write_onnx_dynamic_spatial(tmp_path / "dyn.onnx")
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert_one_line(
        err,
        str(path),
        "input 'img'",
        "unknown dimension 2 'H'",
        "(N, 3, H, W)",
        "input_shapes={'img': (1, 3, 32, 32)}",
        "--input-shape img:1x3x32x32",
    )
    model = load_model(path, input_shapes={"img": (2, 3, 5, 7)})
    assert model.inputs == (InputSpec("img", (2, 3, 5, 7)),)
    check_against(model, "onnxruntime")


# ---------------------------------------------------------------- relax.frontend.nn
def test_relax_nn_module_matches_numpy() -> None:
    module, shapes = build_nn_mlp(batch=2, features=32, hidden=16)
    model = load_model(module, input_shapes=shapes)
    assert (model.framework, model.baselines, model.source) == ("relax-nn", (), None)
    assert model.inputs == (InputSpec("x", (2, 32)),)
    assert [p.name for p in model.mod["main"].params] == ["x"]  # weights bound as constants
    feeds = random_inputs(model)
    w = {name: p.data.numpy() for name, p in module.named_parameters()}
    hidden = np.maximum(feeds["x"] @ w["fc1.weight"].T + w["fc1.bias"], 0)
    want = hidden @ w["fc2.weight"].T + w["fc2.bias"]
    assert_outputs_close(run_tvm(model, feeds), [want])


def test_relax_nn_module_needs_input_shapes() -> None:
    module, _ = build_nn_mlp()
    with pytest.raises(ModelError) as err:
        load_model(module)
    assert_one_line(err, "nnmlp", "needs input_shapes", "forward (x)")
    with pytest.raises(ModelError) as err:
        load_model(module, input_shapes={"x": (1, 7)}, name="mlp7")
    assert_one_line(err, "mlp7", "cannot export")


# ---------------------------------------------------------------- inputs
def test_random_inputs_are_seeded(files: dict[str, Path]) -> None:
    model = load_model(files["onnx"])
    a, b, c = random_inputs(model, 1), random_inputs(model, 1), random_inputs(model, 2)
    assert list(a) == ["input.1"] and a["input.1"].dtype == np.float32
    assert a["input.1"].shape == model.inputs[0].shape
    np.testing.assert_array_equal(a["input.1"], b["input.1"])
    assert not np.array_equal(a["input.1"], c["input.1"])


def test_parse_input_shape() -> None:
    assert parse_input_shape("x:1x3x32x32") == ("x", (1, 3, 32, 32))
    assert parse_input_shape("serving:input:2X8") == ("serving:input", (2, 8))
    for bad in ("x", "x:", ":1x2", "x:1x0", "x:ax2"):
        with pytest.raises(ModelError):
            parse_input_shape(bad)


def test_overrides_naming_a_missing_input_or_the_wrong_rank(files: dict[str, Path]) -> None:
    with pytest.raises(ModelError) as err:
        load_model(files["onnx"], input_shapes={"pixels": (1, 3, 8, 8)})
    assert_one_line(err, str(files["onnx"]), "'pixels'", "lacks", "'input.1'")
    with pytest.raises(ModelError) as err:
        load_model(files["onnx"], input_shapes={"input.1": (1, 3, 8)})
    assert_one_line(err, str(files["onnx"]), "rank 3", "rank 4")
    with pytest.raises(ModelError) as err:
        load_model(files["onnx"], input_shapes={"input.1": (1, 3, -8, 8)})
    assert_one_line(err, str(files["onnx"]), "positive integers")
    with pytest.raises(ModelError) as err:
        load_model(files["onnx"], batch_size=0)
    assert_one_line(err, str(files["onnx"]), "batch_size")


# ---------------------------------------------------------------- bad input
def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelError) as err:
        load_model(missing)
    assert_one_line(err, str(missing), "file not found")
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError) as err:
        load_model(empty)
    assert_one_line(err, str(empty), "empty")


def test_corrupt_and_truncated_keras(tmp_path: Path, files: dict[str, Path]) -> None:
    cut = truncate(files["keras"], tmp_path / "cut.keras")
    with pytest.raises(ModelError) as err:
        load_model(cut)
    assert_one_line(err, str(cut), "corrupt or truncated")
    garbage = tmp_path / "junk.keras"
    garbage.write_bytes(b"definitely not a zip archive" * 8)
    with pytest.raises(ModelError) as err:
        load_model(garbage)
    assert_one_line(err, str(garbage), ".keras zip archive")
    no_config = write_zip_without_config(tmp_path / "empty.keras")
    with pytest.raises(ModelError) as err:
        load_model(no_config)
    assert_one_line(err, str(no_config), "no config.json")


def test_corrupt_and_truncated_tflite(tmp_path: Path, files: dict[str, Path]) -> None:
    for fraction in (0.5, 0.05):
        cut = truncate(files["tflite"], tmp_path / f"cut{fraction}.tflite", fraction)
        with pytest.raises(ModelError) as err:
            load_model(cut)
        assert_one_line(err, str(cut), "corrupt or truncated TFLite")
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError) as err:
        load_model(bogus)
    assert_one_line(err, str(bogus), "no 'TFL3' identifier")


def test_corrupt_and_truncated_onnx(tmp_path: Path, files: dict[str, Path]) -> None:
    cut = truncate(files["onnx"], tmp_path / "cut.onnx", 0.7)
    with pytest.raises(ModelError) as err:
        load_model(cut)
    assert_one_line(err, str(cut), "corrupt or truncated ONNX")
    garbage = tmp_path / "junk.onnx"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ModelError) as err:
        load_model(garbage)
    assert_one_line(err, str(garbage), "ONNX")


def test_onnx_checker_failure_is_reported(tmp_path: Path) -> None:
    path = write_onnx_invalid(tmp_path / "bad.onnx")
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert_one_line(err, str(path), "fails the ONNX checker", "ghost")


def test_corrupt_savedmodel_and_plain_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ModelError) as err:
        load_model(plain)
    assert_one_line(err, str(plain), "not a TensorFlow SavedModel")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\x12\x34garbage")
    with pytest.raises(ModelError) as err:
        load_model(broken)
    assert_one_line(err, str(broken), "cannot load the SavedModel")


def test_unknown_format_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    for suffix in (".pkl", ".bin", ""):
        path = write_pickle_tripwire(tmp_path / f"model{suffix}", marker)
        with pytest.raises(ModelError) as err:
            load_model(path)
        assert_one_line(err, str(path), "unknown model format")
    assert not marker.exists()
    h5 = tmp_path / "old.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 32)
    with pytest.raises(ModelError) as err:
        load_model(h5)
    assert_one_line(err, str(h5), "HDF5")
    with pytest.raises(ModelError) as err:
        load_model(42)
    assert_one_line(err, "int", "cannot import a builtins.int")


def test_unsupported_operators_are_named(tmp_path: Path) -> None:
    onnx_path = write_onnx_unsupported(tmp_path / "celu.onnx")
    with pytest.raises(ModelError) as err:
        load_model(onnx_path)
    assert_one_line(err, str(onnx_path), "unsupported operator", "Celu")
    tflite_path = write_tflite_custom_op(tmp_path / "igamma.tflite")
    with pytest.raises(ModelError) as err:
        load_model(tflite_path)
    assert_one_line(err, str(tflite_path), "unsupported operator", "custom op Igamma")
    sm = write_savedmodel(tmp_path / "igamma_sm", with_unsupported_op=True)
    with pytest.raises(ModelError) as err:
        load_model(sm)
    assert_one_line(err, str(sm), "unsupported operator(s) for TFLite conversion: Igamma")


def test_keras_custom_and_lambda_layers_are_refused(tmp_path: Path) -> None:
    custom = write_custom_layer_keras(tmp_path / "custom.keras")
    with pytest.raises(ModelError) as err:
        load_model(custom)
    assert_one_line(err, str(custom), "custom layer", "'Doubler'")
    lam = write_lambda_keras(tmp_path / "lambda.keras")
    with pytest.raises(ModelError) as err:
        load_model(lam)
    assert_one_line(err, str(lam), "custom layer", "Lambda", "safe mode")


def test_keras_model_without_inputs() -> None:
    with pytest.raises(ModelError) as err:
        load_model(keras.Sequential([keras.layers.Dense(3)], name="unbuilt"))
    assert_one_line(err, "unbuilt", "no defined inputs")
