"""A small model zoo built in code, with deterministic weights (nothing is downloaded).

- ``build_keras(name)``: Keras models for ``ZOO`` (NHWC images, or features for the MLP),
  among them irregular ones for memory planning: ``randwire`` and ``randwire-b`` (randomly
  wired networks, ``build_randwire``) and ``inception`` (multi-branch modules); and for
  ``LARGE_ZOO``: ``deep``, a deep stack of small residual blocks (over 500 fused kernels) for
  views at scale, kept out of ``ZOO`` so the per-model tests stay fast.
- ``build_onnx(name)``: ONNX models written with ``onnx.helper``, optionally in the messy forms
  real exports take (symbolic batch, initializers also listed as graph inputs).
- ``build_nn_mlp()``: a ``tvm.relax.frontend.nn`` MLP and the input shapes to export it with.

Weights come from ``numpy.random.default_rng(seed)`` in a fixed order, so a model rebuilt in
another process with the same arguments computes exactly the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.models._base import ModelError
from tuner.models.frameworks import import_tensorflow
from tuner.models.wiring import random_wiring

if TYPE_CHECKING:
    import keras
    import onnx

ZOO = ("cnn", "mobilenet", "resnet", "mlp", "randwire", "randwire-b", "inception")
LARGE_ZOO = ("deep",)  # loadable as zoo:NAME like the others, too big for per-model tests
ZOO_NAMES = ZOO + LARGE_ZOO
# Default (height, width) per image model; the MLP takes MLP_FEATURES features.
DEFAULT_IMAGE_SIZE = {
    "cnn": 64, "mobilenet": 96, "resnet": 64, "randwire": 32, "randwire-b": 32, "inception": 32,
    "deep": 16,
}  # fmt: skip
# zoo:deep: this many inverted-residual blocks (expand 1x1, depthwise 3x3, project 1x1, add),
# three fused kernels each after TVM's fusion, of DEEP_CHANNELS channels.
DEEP_BLOCKS = 170
DEEP_CHANNELS = 16
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
    """The zoo Keras model ``name`` (one of ``ZOO_NAMES``) with weights drawn from ``seed``.

    ``batch`` fixes the batch dimension (default: left open). ``image_size`` is the input
    height and width of the image models (an int or ``(h, w)``; defaults in
    ``DEFAULT_IMAGE_SIZE``); the MLP ignores it and always takes ``MLP_FEATURES`` features.
    Image inputs are NHWC float32 named ``image``; the MLP's input is named ``features``.
    The output is ``NUM_CLASSES`` logits.
    """
    _check_name(name, ZOO_NAMES, "zoo")
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
        x = _image_body(name)(layers, inp)
        out = layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inp, out, name=f"zoo_{name}")
    _set_deterministic_weights(model, seed)
    return model


def _image_body(name: str) -> Callable[[Any, Any], Any]:
    if name in RANDWIRE:
        return partial(_randwire_body, spec=RANDWIRE[name])
    bodies = {
        "cnn": _cnn_body,
        "mobilenet": _mobilenet_body,
        "resnet": _resnet_body,
        "inception": _inception_body,
        "deep": _deep_body,
    }
    return bodies[name]


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


def _deep_body(layers: Any, x: Any) -> Any:
    """``DEEP_BLOCKS`` identical inverted-residual blocks after a 3x3 stem: each block
    is ``d{i}_expand`` (1x1, ReLU), ``d{i}_dw`` (3x3 depthwise, ReLU), ``d{i}_project``
    (1x1) and ``d{i}_add`` (the residual sum)."""
    x = layers.Conv2D(DEEP_CHANNELS, 3, padding="same", activation="relu", name="stem")(x)
    for i in range(DEEP_BLOCKS):
        y = layers.Conv2D(DEEP_CHANNELS, 1, activation="relu", name=f"d{i}_expand")(x)
        y = layers.DepthwiseConv2D(3, padding="same", activation="relu", name=f"d{i}_dw")(y)
        y = layers.Conv2D(DEEP_CHANNELS, 1, name=f"d{i}_project")(y)
        x = layers.Add(name=f"d{i}_add")([x, y])
    return layers.GlobalAveragePooling2D(name="gap")(x)


# ---------------------------------------------------------------- irregular image models
@dataclass(frozen=True)
class RandWireSpec:
    """A randomly wired network: one random DAG of ``nodes`` nodes per stage (``graph``:
    ``ws`` Watts-Strogatz or ``er`` Erdos-Renyi, drawn from ``wiring_seed``); ``stages``
    gives each stage's (channels, stride)."""

    graph: str = "ws"
    nodes: int = 10
    stages: tuple[tuple[int, int], ...] = ((16, 1), (32, 2))
    wiring_seed: int = 0


RANDWIRE = {
    "randwire": RandWireSpec("ws", 10, ((16, 1), (32, 2)), wiring_seed=0),
    "randwire-b": RandWireSpec("er", 8, ((16, 1), (24, 2), (32, 2)), wiring_seed=1),
}


def build_randwire(
    spec: RandWireSpec = RandWireSpec(),
    *,
    batch: int | None = None,
    image_size: int | tuple[int, int] = 32,
    seed: int = 0,
) -> keras.Model:
    """A randomly wired network (as ``zoo:randwire``, with any wiring): a stride-2 stem
    convolution, then per stage a random DAG whose nodes each sum their inputs, apply ReLU,
    a 3x3 separable convolution and batch norm (the stage's first nodes read the stage input
    with the stage's stride; its last nodes are summed into its output), then global
    average pooling and ``NUM_CLASSES`` logits. Weights come from ``seed``."""
    import_tensorflow()
    import keras

    h, w = _image_hw("randwire", image_size)
    inp = keras.Input((h, w, 3), batch_size=batch, name="image")
    x = _randwire_body(keras.layers, inp, spec=spec)
    out = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    model = keras.Model(inp, out, name=f"randwire_{spec.graph}{spec.nodes}_s{spec.wiring_seed}")
    _set_deterministic_weights(model, seed)
    return model


def _randwire_body(layers: Any, x: Any, *, spec: RandWireSpec) -> Any:
    rng = np.random.default_rng(spec.wiring_seed)
    x = _conv_bn(layers, x, spec.stages[0][0], 3, 2, "stem", None)
    for s, (ch, stride) in enumerate(spec.stages):
        wiring = random_wiring(spec.graph, spec.nodes, rng)
        outs: dict[int, Any] = {}
        for node in range(wiring.nodes):
            preds = wiring.predecessors(node)
            tag = f"s{s}n{node}"
            inputs = [outs[p] for p in preds] if preds else [x]
            y = inputs[0] if len(inputs) == 1 else layers.Add(name=f"{tag}_sum")(inputs)
            y = layers.ReLU(name=f"{tag}_relu")(y)
            y = layers.SeparableConv2D(
                ch, 3, strides=1 if preds else stride, padding="same", use_bias=False,
                name=f"{tag}_sep",
            )(y)  # fmt: skip
            outs[node] = layers.BatchNormalization(name=f"{tag}_bn")(y)
        sinks = [outs[n] for n in wiring.sinks]
        x = sinks[0] if len(sinks) == 1 else layers.Add(name=f"s{s}_out")(sinks)
    x = layers.ReLU(name="head_relu")(x)
    return layers.GlobalAveragePooling2D(name="gap")(x)


# (1x1 channels, (3x3 reduce, 3x3), (5x5 reduce, 5x5 as two 3x3), pool projection) per module.
INCEPTION_MODULES = (
    (8, (8, 12), (4, 8), 8),
    (12, (12, 16), (4, 8), 8),
    (16, (12, 24), (6, 12), 12),
)


def _inception_body(layers: Any, x: Any) -> Any:
    x = _conv_bn(layers, x, 16, 3, 1, "stem", "relu")
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for i, channels in enumerate(INCEPTION_MODULES):
        if i == len(INCEPTION_MODULES) - 1:
            x = layers.MaxPooling2D(2, name=f"m{i}_pool")(x)
        x = _inception_module(layers, x, channels, f"m{i}")
    return layers.GlobalAveragePooling2D(name="gap")(x)


def _inception_module(layers: Any, x: Any, channels: tuple[Any, ...], tag: str) -> Any:
    """Four branches concatenated: 1x1; 1x1 then 3x3; 1x1 then two 3x3 (a 5x5's field);
    3x3 max pool then a 1x1 projection."""
    c1, (r3, c3), (r5, c5), proj = channels
    b1 = _conv_bn(layers, x, c1, 1, 1, f"{tag}_b1", "relu")
    b2 = _conv_bn(layers, x, r3, 1, 1, f"{tag}_b2r", "relu")
    b2 = _conv_bn(layers, b2, c3, 3, 1, f"{tag}_b2", "relu")
    b3 = _conv_bn(layers, x, r5, 1, 1, f"{tag}_b3r", "relu")
    b3 = _conv_bn(layers, b3, c5, 3, 1, f"{tag}_b3a", "relu")
    b3 = _conv_bn(layers, b3, c5, 3, 1, f"{tag}_b3b", "relu")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{tag}_b4pool")(x)
    b4 = _conv_bn(layers, b4, proj, 1, 1, f"{tag}_b4", "relu")
    return layers.Concatenate(name=f"{tag}_concat")([b1, b2, b3, b4])


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
        if kind in ("kernel", "depthwise_kernel", "pointwise_kernel"):
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
