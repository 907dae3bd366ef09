"""Helpers that write model files (good and bad) into test directories, and run them on TVM.

Importing this module fixes TensorFlow's thread pools at ``TEST_THREADS`` (they can only be
set before TensorFlow runs anything, and pytest imports test modules before running any test).
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tuner.models.baselines import configure_tensorflow_threads
from tuner.models.frameworks import import_tensorflow
from tuner.models.zoo import build_keras, build_onnx

TEST_THREADS = 2
configure_tensorflow_threads(TEST_THREADS)
tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow is configured)

SMALL_IMAGE = 16
RTOL = 1e-4
ATOL = 1e-4


# ---------------------------------------------------------------- running on TVM
def run_tvm(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Compile ``model.mod`` untuned for llvm (2 cores) and run it positionally on ``feeds``."""
    import tvm
    from tvm import relax

    target = tvm.target.Target({"kind": "llvm", "num-cores": TEST_THREADS})
    exe = tvm.compile(model.mod, target=target)
    vm = relax.VirtualMachine(exe, tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(feeds[s.name]) for s in model.inputs])
    if hasattr(result, "numpy"):
        return [result.numpy()]
    return [r.numpy() for r in result]


def assert_outputs_close(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    """Same number of outputs, same shapes, values within ``RTOL``/``ATOL``."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------- Keras / TensorFlow
def save_keras(model: keras.Model, path: Path) -> Path:
    """``model.save(path)`` without Keras' numpy-2 ``__array__`` deprecation noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)
    return path


def two_io_keras() -> keras.Model:
    """Two inputs declared out of alphabetical order, two outputs of different widths."""
    a = keras.Input((8,), name="zeta")
    b = keras.Input((4,), name="alpha")
    h = keras.layers.Concatenate()([keras.layers.Dense(5)(a), keras.layers.Dense(5)(b)])
    return keras.Model(
        [a, b], [keras.layers.Dense(3, name="wide")(h), keras.layers.Dense(2, name="narrow")(h)]
    )


def write_keras(path: Path, name: str = "cnn") -> Path:
    """Save the zoo model ``name`` at ``SMALL_IMAGE`` as a ``.keras`` file."""
    return save_keras(build_keras(name, image_size=SMALL_IMAGE), path)


def write_custom_layer_keras(path: Path) -> Path:
    """A ``.keras`` file using a custom layer class that is unknown when it is loaded."""

    @keras.saving.register_keras_serializable(package="tuneloom_test")
    class Doubler(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x * 2.0

    inp = keras.Input((4,), name="x")
    save_keras(keras.Model(inp, Doubler()(keras.layers.Dense(3)(inp))), path)
    keras.saving.get_custom_objects().pop("tuneloom_test>Doubler")
    return path


def write_lambda_keras(path: Path) -> Path:
    """A ``.keras`` file with a Lambda layer (Python code, refused in safe mode)."""
    inp = keras.Input((4,), name="x")
    return save_keras(keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp)), path)


class TwoInputModule(tf.Module):
    """A SavedModel-ready module: inputs ``feat``/``aux`` with an open batch, dict outputs."""

    def __init__(self, with_unsupported_op: bool = False) -> None:
        super().__init__()
        rng = np.random.default_rng(3)
        self.w = tf.Variable(rng.standard_normal((6, 4)).astype("float32"))
        self.v = tf.Variable(rng.standard_normal((3, 4)).astype("float32"))
        self.with_unsupported_op = with_unsupported_op

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, 6), tf.float32, name="feat"),
            tf.TensorSpec((None, 3), tf.float32, name="aux"),
        ]
    )
    def serve(self, feat: Any, aux: Any) -> dict[str, Any]:
        h = tf.nn.relu(feat @ self.w + aux @ self.v)
        if self.with_unsupported_op:
            h = tf.math.igamma(h + 1.0, h + 1.0)
        return {"sum": tf.reduce_sum(h, axis=1, keepdims=True), "scaled": h * 2.0}


def write_savedmodel(path: Path, *, with_unsupported_op: bool = False) -> Path:
    """A SavedModel directory of ``TwoInputModule``."""
    module = TwoInputModule(with_unsupported_op)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def write_tflite(path: Path, name: str = "cnn") -> Path:
    """A ``.tflite`` file converted straight from a zoo Keras model (open batch dimension)."""
    return write_tflite_of(build_keras(name, image_size=SMALL_IMAGE), path)


def write_tflite_of(model: keras.Model, path: Path) -> Path:
    """``model`` converted to a ``.tflite`` file as Keras exports it (open batch dimension)."""
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def write_tflite_custom_op(path: Path) -> Path:
    """A ``.tflite`` file holding a TFLite custom op (Igamma)."""

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32, name="x")])
    def igamma(x: Any) -> Any:
        return tf.math.igamma(x, x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([igamma.get_concrete_function()])
    converter.allow_custom_ops = True
    path.write_bytes(converter.convert())
    return path


# ---------------------------------------------------------------- ONNX
def write_onnx(path: Path, **kwargs: Any) -> Path:
    """Save ``build_onnx(**kwargs)`` to ``path``."""
    path.write_bytes(build_onnx(**kwargs).SerializeToString())
    return path


def onnx_model(nodes: list[Any], inputs: list[Any], outputs: list[Any]) -> Any:
    """A small opset-17 ONNX model from ``onnx.helper`` parts."""
    from onnx import helper

    graph = helper.make_graph(nodes, "test", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def write_onnx_unsupported(path: Path) -> Path:
    """An ONNX model using Celu, which TVM's ONNX importer lacks."""
    from onnx import TensorProto, helper

    model = onnx_model(
        [helper.make_node("Celu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path.write_bytes(model.SerializeToString())
    return path


def write_onnx_dynamic_spatial(path: Path) -> Path:
    """An ONNX model whose height and width are symbolic (``H``, ``W``)."""
    from onnx import TensorProto, helper

    model = onnx_model(
        [helper.make_node("Relu", ["img"], ["y"])],
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
    )
    path.write_bytes(model.SerializeToString())
    return path


def write_onnx_invalid(path: Path) -> Path:
    """An ONNX model the checker rejects (a node reads a tensor nothing produces)."""
    from onnx import TensorProto, helper

    model = onnx_model(
        [helper.make_node("Add", ["x", "ghost"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path.write_bytes(model.SerializeToString())
    return path


def two_output_onnx() -> Any:
    """An ONNX model with outputs declared as ``relu`` then ``neg``."""
    from onnx import TensorProto, helper

    return onnx_model(
        [helper.make_node("Relu", ["x"], ["relu"]), helper.make_node("Neg", ["x"], ["neg"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
        [
            helper.make_tensor_value_info("relu", TensorProto.FLOAT, [2, 5]),
            helper.make_tensor_value_info("neg", TensorProto.FLOAT, [2, 5]),
        ],
    )


# ---------------------------------------------------------------- damaged files
def truncate(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    """Copy the first ``fraction`` of ``src`` to ``dst``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_zip_without_config(path: Path) -> Path:
    """A zip archive named like a Keras file but holding no ``config.json``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights.txt", "not a model")
    return path


class _Tripwire:
    """Unpickling this creates the marker file named in its state."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


def write_pickle_tripwire(path: Path, marker: Path) -> Path:
    """A pickle that, if anything unpickled it, would create ``marker``."""
    path.write_bytes(pickle.dumps(_Tripwire(str(marker))))
    return path
