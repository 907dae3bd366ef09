"""Small models of kinds the zoo does not cover (attention, sequences, transposed
convolutions, several inputs and outputs, integer inputs), built in code with seeded weights.

Import after ``model_files`` (which fixes TensorFlow's threads first).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from model_files import keras, onnx_model

from tuner.models._base import InputSpec, LoadedModel

layers = keras.layers


# ---------------------------------------------------------------- Keras
def keras_transformer() -> keras.Model:
    """Token ids (int32) -> Embedding -> a transformer encoder block -> softmax head."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    x = layers.Embedding(50, 16)(tokens)
    x = layers.LayerNormalization()(x + layers.MultiHeadAttention(2, 8)(x, x))
    h = layers.Dense(32, activation="gelu")(x)
    x = layers.LayerNormalization()(x + layers.Dense(16)(h))
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(tokens, layers.Dense(4, activation="softmax")(x))


def keras_unet() -> keras.Model:
    """A U-Net-like net: pooling, bilinear upsampling, a Conv2DTranspose, a concatenation."""
    keras.utils.set_random_seed(1)
    image = keras.Input((16, 16, 3), name="image")
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    down = layers.AveragePooling2D(2)(c1)
    up = layers.UpSampling2D(interpolation="bilinear")(down)
    learned = layers.Conv2DTranspose(8, 2, strides=2)(down)
    merged = layers.Concatenate()([up, c1, learned])
    return keras.Model(image, layers.Conv2D(2, 1, activation="sigmoid")(merged))


def keras_transposed_1d_3d() -> keras.Model:
    """Two inputs (a signal and a volume), two outputs: Conv1DTranspose and Conv3DTranspose,
    each with BatchNormalization after a Dense head."""
    keras.utils.set_random_seed(2)
    signal = keras.Input((16, 3), name="signal")
    volume = keras.Input((4, 4, 4, 2), name="volume")
    s = layers.Flatten()(layers.Conv1DTranspose(4, 3, strides=2, padding="same")(signal))
    v = layers.GlobalAveragePooling3D()(layers.Conv3DTranspose(3, 2, strides=2)(volume))
    s = layers.BatchNormalization()(layers.Dense(5)(s))
    return keras.Model([signal, volume], {"s": s, "v": layers.Dense(2, name="v")(v)})


def keras_conv1d() -> keras.Model:
    """Conv1D (strided too) and GlobalAveragePooling1D over a (32, 4) signal."""
    keras.utils.set_random_seed(3)
    signal = keras.Input((32, 4), name="signal")
    x = layers.Conv1D(8, 3, padding="same", activation="relu")(signal)
    x = layers.Conv1D(8, 3, strides=2, activation="relu")(x)
    return keras.Model(signal, layers.Dense(3)(layers.GlobalAveragePooling1D()(x)))


def keras_sequence_dense() -> keras.Model:
    """Dense layers on a sequence, self-attention and a Flatten: with an open batch, TFLite
    computes their reshape targets at run time."""
    keras.utils.set_random_seed(4)
    seq = keras.Input((8, 12), name="seq")
    x = layers.Dense(16)(seq)
    x = layers.LayerNormalization()(layers.Add()([x, layers.MultiHeadAttention(2, 8)(x, x)]))
    x = layers.Flatten()(layers.Dense(8, activation="relu")(x))
    return keras.Model(seq, layers.Dense(4, activation="softmax")(x))


def keras_recurrent() -> keras.Model:
    """A small LSTM (a fused TFLite op) beside a GRU, each returning its last state."""
    keras.utils.set_random_seed(5)
    seq = keras.Input((6, 4), name="seq")
    x = layers.Concatenate()([layers.LSTM(8)(seq), layers.GRU(8)(seq)])
    return keras.Model(seq, layers.Dense(2)(x))


def keras_gru_sequences() -> keras.Model:
    """A GRU returning every step: TFLite converts it to a WHILE loop whose SLICE TVM's
    importer cannot read."""
    keras.utils.set_random_seed(6)
    seq = keras.Input((6, 4), name="seq")
    x = layers.GRU(8, return_sequences=True)(seq)
    return keras.Model(seq, layers.Dense(2)(layers.GlobalAveragePooling1D()(x)))


# ---------------------------------------------------------------- ONNX
def _weights(rng: np.random.Generator, **shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    return {k: (rng.standard_normal(s) * 0.3).astype("float32") for k, s in shapes.items()}


def _onnx_with(nodes: list[Any], inputs: list[Any], outputs: list[Any], consts: dict) -> Any:
    """``onnx_model`` with ``consts`` as initializers (opset 17)."""
    from onnx import numpy_helper

    model = onnx_model(nodes, inputs, outputs)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    return model


def _value(name: str, shape: list[Any], elem: str = "FLOAT") -> Any:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, getattr(TensorProto, elem), shape)


def onnx_attention() -> Any:
    """Single-head self-attention (MatMul, Transpose, Softmax), a residual Add and an
    opset-17 LayerNormalization; the batch is open."""
    from onnx import helper

    d = 16
    consts = _weights(np.random.default_rng(0), wq=(d, d), wk=(d, d), wv=(d, d), b=(d,))
    consts |= {"g": consts["b"] + 1.0, "scale": np.array(0.25, "float32")}
    nodes = [
        *(helper.make_node("MatMul", ["x", f"w{n}"], [n]) for n in "qkv"),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"]),
        helper.make_node("Mul", ["s", "scale"], ["ss"]),
        helper.make_node("Softmax", ["ss"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["a"]),
        helper.make_node("Add", ["a", "x"], ["r"]),
        helper.make_node("LayerNormalization", ["r", "g", "b"], ["y"], axis=-1),
    ]
    return _onnx_with(nodes, [_value("x", ["batch", 8, d])], [_value("y", ["batch", 8, d])], consts)


def onnx_gelu_gemm() -> Any:
    """GELU written out with Erf (as exporters do) between a MatMul and a Gemm with transB."""
    from onnx import helper

    consts = _weights(np.random.default_rng(1), w1=(16, 32), b1=(32,), w2=(4, 32), b2=(4,))
    consts |= {n: np.array(v, "float32") for n, v in (("r2", 2**0.5), ("one", 1), ("half", 0.5))}
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h"]),
        helper.make_node("Div", ["h", "r2"], ["d"]),
        helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "one"], ["e1"]),
        helper.make_node("Mul", ["h", "e1"], ["m"]),
        helper.make_node("Mul", ["m", "half"], ["g"]),
        helper.make_node("Gemm", ["g", "w2", "b2"], ["y"], transB=1),
    ]
    return _onnx_with(nodes, [_value("x", [2, 16])], [_value("y", [2, 4])], consts)


def onnx_resize_bn() -> Any:
    """Conv, BatchNormalization, Clip (ReLU6), HardSwish, MaxPool, Resize, Concat, Split,
    Sigmoid."""
    from onnx import helper

    rng = np.random.default_rng(2)
    consts = _weights(rng, w=(4, 3, 3, 3), s=(4,), b=(4,), m=(4,))
    consts |= {"v": np.abs(consts["m"]) + 0.5, "lo": np.float32(0), "hi": np.float32(6)}
    consts |= {"scales": np.array([1, 1, 2, 2], "float32"), "split": np.array([4, 4])}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
        helper.make_node("Clip", ["bn", "lo", "hi"], ["r6"]),
        helper.make_node("HardSwish", ["r6"], ["hs"]),
        helper.make_node("MaxPool", ["hs"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["p", "", "scales"], ["u"], mode="linear"),
        helper.make_node("Concat", ["u", "hs"], ["cat"], axis=1),
        helper.make_node("Split", ["cat", "split"], ["s1", "s2"], axis=1),
        helper.make_node("Sub", ["s1", "s2"], ["d"]),
        helper.make_node("Sigmoid", ["d"], ["y"]),
    ]
    return _onnx_with(nodes, [_value("x", [1, 3, 8, 8])], [_value("y", [1, 4, 8, 8])], consts)


def onnx_ids_two_outputs() -> Any:
    """An int64 id input and a float input; Gather of constant rows, ReduceMean, Transpose;
    two outputs (one of them integer)."""
    from onnx import helper

    consts = _weights(np.random.default_rng(3), emb=(10, 4))
    consts["rows"] = np.array([0, 2], "int64")
    nodes = [
        helper.make_node("Gather", ["emb", "ids"], ["e"], axis=0),
        helper.make_node("Gather", ["e", "rows"], ["picked"], axis=1),
        helper.make_node("ReduceMean", ["picked"], ["m"], axes=[1], keepdims=0),
        helper.make_node("Add", ["m", "f"], ["t"]),
        helper.make_node("Transpose", ["t"], ["mean"], perm=[1, 0]),
        helper.make_node("ArgMax", ["f"], ["best"], axis=1),
    ]
    return _onnx_with(
        nodes,
        [_value("ids", [1, 5], "INT64"), _value("f", [1, 4])],
        [_value("mean", [4, 1]), _value("best", [1, 1], "INT64")],
        consts,
    )


def onnx_scatter_max() -> Any:
    """ScatterElements with ``reduction='max'``, which TVM's ONNX importer refuses while
    converting the node."""
    from onnx import helper

    node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], reduction="max")
    return _onnx_with(
        [node],
        [_value("x", [2, 3]), _value("u", [1, 3])],
        [_value("y", [2, 3])],
        {"i": np.array([[1, 0, 1]], "int64")},
    )


# ---------------------------------------------------------------- Relax
def nhwc_conv2d_transpose_model() -> LoadedModel:
    """A Relax module holding a conv2d_transpose in NHWC, which TVM does not legalize (as
    the TFLite importer emits it, before the loader converts its layout)."""
    import tvm
    from tvm import relax

    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 4, 2), "float32"))
    weight = np.ones((2, 3, 2, 2), "float32")
    with builder.function("main", [x]):
        with builder.dataflow():
            y = builder.emit(
                relax.op.nn.conv2d_transpose(
                    x, relax.const(weight), strides=2, data_layout="NHWC", kernel_layout="IOHW"
                )
            )
            out = builder.emit_output(y)
        builder.emit_func_output(out)
    mod: tvm.IRModule = builder.get()
    return LoadedModel("nhwc-deconv", "relax-nn", None, (InputSpec("x", (1, 4, 4, 2)),), mod)
