"""A loaded model's framework graph as ``FrameworkOp``s, for matching kernels to layers.

- TFLite (``.tflite`` files, and Keras models and SavedModels, which are converted to TFLite
  on import): the operators of subgraph 0 in order. An operator is named by its first output
  tensor's name (``model/conv0/Relu;model/conv0/BiasAdd``: the converter joins the names of
  the TensorFlow ops it folded). For a Keras model the layers are the Keras layer names found
  in those names (``conv0``, in the model's layer order); the model's outputs come from its
  output layers (the converter renames them ``Identity``).
- ONNX: the graph's nodes in order, named by their node name (else ``OpType:output``), with
  output sizes from ONNX shape inference.

A model from ``relax.frontend.nn`` has no framework graph (``framework_ops`` returns None).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tuner.models._base import LoadedModel
from tuner.models.layer_match import FrameworkOp

# Relax operators each framework operator lowers to, the anchor first.
TFLITE_LOWERS = {
    "CONV_2D": ("conv2d",),
    "DEPTHWISE_CONV_2D": ("conv2d",),
    "TRANSPOSE_CONV": ("conv2d_transpose",),
    "FULLY_CONNECTED": ("matmul",),
    "BATCH_MATMUL": ("matmul",),
    "ADD": ("add",),
    "SUB": ("subtract",),
    "MUL": ("multiply",),
    "DIV": ("divide",),
    "MEAN": ("mean",),
    "SUM": ("sum",),
    "MAX_POOL_2D": ("max_pool2d",),
    "AVERAGE_POOL_2D": ("avg_pool2d",),
    "RELU": ("relu",),
    "RELU6": ("clip",),
    "LOGISTIC": ("sigmoid",),
    "TANH": ("tanh",),
    "SOFTMAX": ("softmax",),
    "CONCATENATION": ("concatenate",),
    "PAD": ("pad",),
    "TRANSPOSE": ("permute_dims",),
}
TFLITE_VIEWS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "QUANTIZE", "DEQUANTIZE")
# TFLite ActivationFunctionType -> the Relax operator a fused activation lowers to.
TFLITE_ACTIVATIONS = {1: "relu", 2: "clip", 3: "clip", 4: "tanh"}
# Operators whose options carry a fused activation, and their options class in ``tflite``.
_TFLITE_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "DIV": "DivOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "CONCATENATION": "ConcatenationOptions",
}
_BIASED = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")

ONNX_LOWERS = {
    "Conv": ("conv2d",),
    "ConvTranspose": ("conv2d_transpose",),
    "Gemm": ("matmul",),
    "MatMul": ("matmul",),
    "Add": ("add",),
    "Sub": ("subtract",),
    "Mul": ("multiply",),
    "Div": ("divide",),
    "Relu": ("relu",),
    "Clip": ("clip",),
    "Sigmoid": ("sigmoid",),
    "Tanh": ("tanh",),
    "MaxPool": ("max_pool2d",),
    "AveragePool": ("avg_pool2d",),
    "GlobalAveragePool": ("mean",),  # what the Relax ONNX frontend of TVM 0.27 emits
    "ReduceMean": ("mean",),
    "Softmax": ("softmax",),
    "Concat": ("concatenate",),
    "Pad": ("pad",),
    "Transpose": ("permute_dims",),
}
ONNX_VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Constant")


def framework_ops(model: LoadedModel) -> list[FrameworkOp] | None:
    """The framework graph of ``model`` (see the module docstring), or None without one."""
    artifacts = model.artifacts
    if "onnx_bytes" in artifacts:
        return onnx_ops(artifacts["onnx_bytes"])
    if "tflite_bytes" in artifacts:
        return tflite_ops(artifacts["tflite_bytes"], artifacts.get("keras_model"))
    return None


def snake(name: str) -> str:
    """``GlobalAveragePool`` -> ``global_average_pool``; ``MAX_POOL_2D`` -> ``max_pool_2d``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# ---------------------------------------------------------------- TFLite
def tflite_ops(data: bytes, keras_model: Any = None) -> list[FrameworkOp]:
    """The operators of a TFLite flatbuffer's first subgraph, in order."""
    import tflite
    from tflite.BuiltinOperator import BuiltinOperator

    codes = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)
    order = _keras_layer_order(keras_model)
    outputs = {int(t): i for i, t in enumerate(sub.OutputsAsNumpy())}
    output_layers = list(getattr(keras_model, "output_names", None) or [])
    ops = []
    for index in range(sub.OperatorsLength()):
        op = sub.Operators(index)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = codes.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        raw_inputs = [int(t) for t in _array(op.InputsAsNumpy())]
        ins = [t for t in raw_inputs if t >= 0]
        outs = [int(t) for t in _array(op.OutputsAsNumpy())]
        tensors = [sub.Tensors(t) for t in outs]
        names = [t.Name().decode("utf-8", "replace") for t in tensors]
        name = names[0].split(";")[0] if names else f"{kind}:{index}"
        lowers = list(TFLITE_LOWERS.get(kind, (snake(kind),)))
        if kind in _BIASED and len(raw_inputs) > 2 and raw_inputs[2] >= 0:
            lowers.append("add")
        activation = _tflite_activation(op, kind)
        if activation:
            lowers.append(activation)
        if order:
            layers = _keras_layers(names, order)
            if not layers:
                layers = tuple(
                    output_layers[outputs[t]]
                    for t in outs
                    if t in outputs and outputs[t] < len(output_layers)
                )
        else:
            layers = (name,)
        ops.append(
            FrameworkOp(
                name=name,
                kind=kind,
                lowers=tuple(lowers),
                layers=layers or (name,),
                inputs=tuple(f"t{t}" for t in ins),
                outputs=tuple(f"t{t}" for t in outs),
                sizes=tuple(int(np.prod(_array(t.ShapeAsNumpy()))) for t in tensors),
                view=kind in TFLITE_VIEWS,
            )
        )
    return ops


def _array(value: Any) -> Any:
    return value if not isinstance(value, int) else np.zeros(0, dtype=np.int32)


def _tflite_activation(op: Any, kind: str) -> str | None:
    cls_name = _TFLITE_OPTIONS.get(kind)
    table = op.BuiltinOptions()
    if cls_name is None or table is None:
        return None
    module = __import__(f"tflite.{cls_name}", fromlist=[cls_name])
    options = getattr(module, cls_name)()
    options.Init(table.Bytes, table.Pos)
    return TFLITE_ACTIVATIONS.get(int(options.FusedActivationFunction()))


def _keras_layer_order(keras_model: Any) -> dict[str, int]:
    if keras_model is None:
        return {}
    return {layer.name: i for i, layer in enumerate(keras_model.layers)}


def _keras_layers(names: list[str], order: dict[str, int]) -> tuple[str, ...]:
    """Keras layer names found in TFLite tensor names (``model/conv0_1/Relu`` -> ``conv0``:
    Keras adds ``_N`` to a layer's name scope per call), in the model's layer order."""
    found = set()
    for name in names:
        for part in re.split(r"[;/]", name):
            for candidate in (part, re.sub(r"_\d+$", "", part)):
                if candidate in order:
                    found.add(candidate)
    return tuple(sorted(found, key=order.__getitem__))


# ---------------------------------------------------------------- ONNX
def onnx_ops(data: bytes) -> list[FrameworkOp]:
    """The nodes of an ONNX graph, in order, with output sizes from shape inference."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load_from_string(data))
    graph = model.graph
    shapes: dict[str, int] = {}
    for info in [*graph.value_info, *graph.output, *graph.input]:
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = int(np.prod([d.dim_value for d in dims]))
    ops = []
    for node in graph.node:
        name = node.name or f"{node.op_type}:{node.output[0] if node.output else ''}"
        lowers = list(ONNX_LOWERS.get(node.op_type, (snake(node.op_type),)))
        if node.op_type in ("Conv", "Gemm", "ConvTranspose") and len(node.input) > 2:
            lowers.append("add")
        ops.append(
            FrameworkOp(
                name=name,
                kind=node.op_type,
                lowers=tuple(lowers),
                layers=(name,),
                inputs=tuple(t for t in node.input if t),
                outputs=tuple(node.output),
                sizes=tuple(shapes[t] for t in node.output if t in shapes),
                view=node.op_type in ONNX_VIEWS,
            )
        )
    return ops
