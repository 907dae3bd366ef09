"""A small model zoo built in code, with deterministic weights (nothing is downloaded).

- ``build_keras(name)``: Keras models for ``ZOO`` (NHWC images, or features for the MLP).
- ``build_onnx(name)``: ONNX models written with ``onnx.helper``, optionally in the messy forms
  real exports take (symbolic batch, initializers also listed as graph inputs).
- ``build_nn_mlp()``: a ``tvm.relax.frontend.nn`` MLP and the input shapes to export it with.

Weights come from ``numpy.random.default_rng(seed)`` in a fixed order, so a model rebuilt in
another process with the same arguments computes exactly the same function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.models._base import ModelError
from tuner.models.frameworks import import_tensorflow

if TYPE_CHECKING:
    import keras
    import onnx

ZOO = ("cnn", "mobilenet", "resnet", "mlp")
# Default (height, width) per image model; the MLP takes MLP_FEATURES features.
DEFAULT_IMAGE_SIZE = {"cnn": 64, "mobilenet": 96, "resnet": 64}
MLP_FEATURES = 256
NUM_CLASSES = 10
ONNX_MODELS = ("cnn", "mlp")


def _check_name(name: str, names: tuple[str, ...], what: str) -> None:
    if name not in names:
        raise ModelError(f"zoo:{name}", f"no such {what} model; choose from {', '.join(names)}")


def _image_hw(name: str, image_size: int | tuple[int, int] | None) -> tuple[int, int]:
    if image_size is None:
        size = DEFAULT_IMAGE_SIZE[name]
        return size, size
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(hw) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 4 for v in hw):
        raise ModelError(
            f"zoo:{name}", f"image_size must be an int >= 4 or (h, w), got {image_size!r}"
        )
    return int(hw[0]), int(hw[1])


# ---------------------------------------------------------------- Keras
def build_keras(
    name: str,
    *,
    batch: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    seed: int = 0,
) -> keras.Model:
    """The zoo Keras model ``name`` (one of ``ZOO``) with weights drawn from ``seed``.

    ``batch`` fixes the batch dimension (default: left open). ``image_size`` is the input
    height and width of the image models (an int or ``(h, w)``; defaults in
    ``DEFAULT_IMAGE_SIZE``); the MLP ignores it and always takes ``MLP_FEATURES`` features.
    Image inputs are NHWC float32 named ``image``; the MLP's input is named ``features``.
    The output is ``NUM_CLASSES`` logits.
    """
    _check_name(name, ZOO, "zoo")
    import_tensorflow()
    import keras

    layers = keras.layers
    if name == "mlp":
        inp = keras.Input((MLP_FEATURES,), batch_size=batch, name="features")
        x = layers.Dense(512, activation="relu", name="fc1")(inp)
        x = layers.Dense(512, activation="relu", name="fc2")(x)
        out = layers.Dense(NUM_CLASSES, name="logits")(x)
    else:
        h, w = _image_hw(name, image_size)
        inp = keras.Input((h, w, 3), batch_size=batch, name="image")
        body = {"cnn": _cnn_body, "mobilenet": _mobilenet_body, "resnet": _resnet_body}[name]
        x = body(layers, inp)
        out = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inp, out, name=f"zoo_{name}")
    _set_deterministic_weights(model, seed)
    return model


def _cnn_body(layers: Any, x: Any) -> Any:
    for i, ch in enumerate((16, 32, 64)):
        x = layers.Conv2D(ch, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(64, activation="relu", name="fc")(x)


def _conv_bn(layers: Any, x: Any, ch: int, k: int, stride: int, tag: str, act: str | None) -> Any:
    x = layers.Conv2D(ch, k, strides=stride, padding="same", use_bias=False, name=f"{tag}_conv")(x)
    x = layers.BatchNormalization(name=f"{tag}_bn")(x)
    if act == "relu6":
        return layers.ReLU(6.0, name=f"{tag}_relu6")(x)
    if act == "relu":
        return layers.ReLU(name=f"{tag}_relu")(x)
    return x


def _mobilenet_body(layers: Any, x: Any) -> Any:
    x = _conv_bn(layers, x, 16, 3, 2, "stem", "relu6")
    for i, (ch, stride) in enumerate(((32, 1), (64, 2), (64, 1), (128, 2))):
        x = layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw"
        )(x)
        x = layers.BatchNormalization(name=f"b{i}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"b{i}_dw_relu6")(x)
        x = _conv_bn(layers, x, ch, 1, 1, f"b{i}_pw", "relu6")
    return layers.GlobalAveragePooling2D(name="gap")(x)


def _resnet_body(layers: Any, x: Any) -> Any:
    x = _conv_bn(layers, x, 16, 3, 1, "stem", "relu")
    for i, (ch, stride) in enumerate(((16, 1), (32, 2), (64, 2))):
        shortcut = x
        y = _conv_bn(layers, x, ch, 3, stride, f"b{i}a", "relu")
        y = _conv_bn(layers, y, ch, 3, 1, f"b{i}b", None)
        if stride != 1 or shortcut.shape[-1] != ch:
            shortcut = _conv_bn(layers, shortcut, ch, 1, stride, f"b{i}proj", None)
        x = layers.Add(name=f"b{i}_add")([y, shortcut])
        x = layers.ReLU(name=f"b{i}_out")(x)
    return layers.GlobalAveragePooling2D(name="gap")(x)


def _fan_in(shape: tuple[int, ...], depthwise: bool) -> int:
    if depthwise:  # (kh, kw, in, multiplier): each output sees one channel
        return int(np.prod(shape[:2]))
    return int(np.prod(shape[:-1]))


def _set_deterministic_weights(model: Any, seed: int) -> None:
    """Overwrite every weight with values from ``default_rng(seed)``, in model order.

    Kernels are He-scaled so activations stay near unit scale; batch-norm statistics are
    non-trivial so folding them is actually exercised.
    """
    rng = np.random.default_rng(seed)
    values = []
    for var in model.weights:
        shape = tuple(int(d) for d in var.shape)
        kind = var.path.rsplit("/", 1)[-1]
        if kind in ("kernel", "depthwise_kernel"):
            std = np.sqrt(2.0 / max(1, _fan_in(shape, kind == "depthwise_kernel")))
            value = rng.standard_normal(shape) * std
        elif kind in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, beta, moving_mean
            value = rng.standard_normal(shape) * 0.1
        values.append(value.astype(var.dtype))
    model.set_weights(values)


# ---------------------------------------------------------------- ONNX
def build_onnx(
    name: str = "cnn",
    *,
    batch: int = 1,
    symbolic_batch: bool = False,
    initializers_as_inputs: bool = False,
    seed: int = 0,
    image_size: int = 32,
) -> onnx.ModelProto:
    """An ONNX model (``cnn`` or ``mlp``) written with ``onnx.helper``, weights from ``seed``.

    ``cnn``: NCHW input ``input.1`` of ``(batch, 3, image_size, image_size)`` through
    Conv-Relu-MaxPool twice, GlobalAveragePool, Flatten and Gemm to ``NUM_CLASSES`` logits.
    ``mlp``: ``(batch, 64)`` through Gemm-Relu-Gemm. ``symbolic_batch`` names the batch
    dimension ``N`` instead of fixing it; ``initializers_as_inputs`` also lists every weight
    among the graph inputs (the old exporter style). The input name has a dot on purpose, as
    PyTorch exports do.
    """
    _check_name(name, ONNX_MODELS, "ONNX zoo")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits: list[onnx.TensorProto] = []

    def weight(wname: str, shape: tuple[int, ...], fan_in: int | None = None) -> str:
        scale = np.sqrt(2.0 / fan_in) if fan_in else 0.1
        arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        inits.append(numpy_helper.from_array(arr, wname))
        return wname

    nodes = []
    if name == "cnn":
        in_shape: list[Any] = [batch, 3, image_size, image_size]
        prev, ch_in = "input.1", 3
        for i, ch in enumerate((8, 16)):
            w = weight(f"conv{i}.weight", (ch, ch_in, 3, 3), ch_in * 9)
            b = weight(f"conv{i}.bias", (ch,))
            nodes += [
                helper.make_node(
                    "Conv", [prev, w, b], [f"c{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
                ),
                helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
                helper.make_node(
                    "MaxPool", [f"r{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2]
                ),
            ]
            prev, ch_in = f"p{i}", ch
        nodes += [
            helper.make_node("GlobalAveragePool", [prev], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        ]
        w = weight("fc.weight", (NUM_CLASSES, ch_in), ch_in)
        b = weight("fc.bias", (NUM_CLASSES,))
        nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], transB=1))
    else:
        in_shape = [batch, 64]
        w1, b1 = weight("fc1.weight", (128, 64), 64), weight("fc1.bias", (128,))
        w2, b2 = weight("fc2.weight", (NUM_CLASSES, 128), 128), weight("fc2.bias", (NUM_CLASSES,))
        nodes += [
            helper.make_node("Gemm", ["input.1", w1, b1], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["hr"]),
            helper.make_node("Gemm", ["hr", w2, b2], ["logits"], transB=1),
        ]
    if symbolic_batch:
        in_shape[0] = "N"
    out_shape: list[Any] = [in_shape[0], NUM_CLASSES]
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, in_shape)]
    if initializers_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(
        nodes,
        f"zoo_{name}",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        initializer=inits,
    )
    model = helper.make_model(
        graph, producer_name="tuneloom-zoo", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------- relax.frontend.nn
def build_nn_mlp(
    *, batch: int = 1, features: int = MLP_FEATURES, hidden: int = 512, seed: int = 0
) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """A ``tvm.relax.frontend.nn`` MLP (Linear-ReLU-Linear to ``NUM_CLASSES``) with weights set
    from ``seed``, and the input shapes to export it with: ``{"x": (batch, features)}``.

    Pass both to ``load_model(module, input_shapes=shapes)``.
    """
    from tvm.relax.frontend import nn

    class NNMLP(nn.Module):
        """Two linear layers with a ReLU between them."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(features, hidden)
            self.fc2 = nn.Linear(hidden, NUM_CLASSES)

        def forward(self, x: nn.Tensor) -> nn.Tensor:
            return self.fc2(nn.relu(self.fc1(x)))

    module = NNMLP()
    rng = np.random.default_rng(seed)
    for pname, param in module.named_parameters():
        shape = tuple(int(d) for d in param.shape)
        scale = np.sqrt(2.0 / shape[1]) if pname.endswith("weight") else 0.1
        param.data = (rng.standard_normal(shape) * scale).astype(param.dtype)
    return module, {"x": (batch, features)}
