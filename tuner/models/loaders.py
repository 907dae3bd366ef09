"""Import a model into a Relax module: ``load_model(source)`` for every supported form.

Routes (``LoadedModel.framework``):

- ``zoo:NAME``, a ``keras.Model``, a ``.keras`` file -> ``keras``;
  a TensorFlow SavedModel directory -> ``savedmodel``. Both go through
  ``tf.lite.TFLiteConverter`` (float32, no quantization, from a concrete function with static
  input shapes) and then ``tvm.relax.frontend.tflite.from_tflite``.
- a ``.tflite`` file -> ``tflite`` (straight to ``from_tflite``).
- an ``.onnx`` file or an ``onnx.ModelProto`` -> ``onnx`` (``tvm.relax.frontend.onnx.from_onnx``).
- a ``tvm.relax.frontend.nn.Module`` with ``input_shapes`` -> ``relax-nn`` (``export_tvm``).

``LoadedModel.inputs`` follow the order of the Relax ``main`` parameters (the compiled VM is
called positionally) and carry the names the framework baselines feed. Outputs keep the
model's declared order: ONNX graph outputs; for Keras and SavedModels the flattened outputs
(``tf.nest.flatten``: lists in order, dicts by sorted key), which is also the TFLite output
order and the order of the Relax ``main`` result tuple.

Every failure is a one-line ``ModelError`` naming the model. Nothing is unpickled and Keras
files load with ``safe_mode=True`` only. TensorFlow is imported only when a route needs it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tuner._base import one_line
from tuner.models._base import InputSpec, LoadedModel, ModelError
from tuner.models.frameworks import import_tensorflow
from tuner.models.inputs import random_inputs, resolve_inputs
from tuner.models.lowering import lowerable_layouts
from tuner.models.tflite_ops import (
    OperatorFailure,
    converter_class,
    interpreter_shapes,
    tflite_dims,
)
from tuner.models.zoo import ZOO_NAMES, build_keras

__all__ = ["import_tensorflow", "load_model", "random_inputs"]

ZOO_PREFIX = "zoo:"
TFLITE_IDENTIFIER = b"TFL3"
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# TFLite schema TensorType codes -> dtype names.
_TFLITE_DTYPES = {
    0: "float32",
    1: "float16",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float64",
    12: "uint64",
    15: "uint32",
    16: "uint16",
}
_TFLITE_CUSTOM = 32  # BuiltinOperator.CUSTOM


# ---------------------------------------------------------------- entry point
def load_model(
    source: Any,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    batch_size: int | None = None,
    name: str | None = None,
) -> LoadedModel:
    """Import ``source`` into a Relax module with static input shapes.

    ``source`` is ``"zoo:NAME"``, a ``keras.Model``, an ``onnx.ModelProto``, a
    ``tvm.relax.frontend.nn.Module``, or a path to a ``.keras`` / ``.tflite`` / ``.onnx`` file
    or a SavedModel directory. ``input_shapes`` fixes input shapes by input name; a leading
    open (batch) dimension becomes ``batch_size`` (default 1), which also replaces a known
    batch. For a zoo image model an ``image`` override also sets the size it is built at.
    ``name`` labels the model (default: the zoo name, the path as given, or the object's name).
    """
    if isinstance(source, str) and source.startswith(ZOO_PREFIX):
        return _load_zoo(source, input_shapes, batch_size, name)
    if isinstance(source, str | os.PathLike):
        return _load_path(Path(source), input_shapes, batch_size, name)
    kind = type(source).__module__.split(".")[0]
    if kind == "keras" or _is_instance(source, "keras", "Model"):
        label = name or str(getattr(source, "name", "keras-model"))
        return _load_keras(source, label, None, input_shapes, batch_size)
    if _is_instance(source, "onnx", "ModelProto"):
        label = name or (source.graph.name or "onnx-model")
        return _load_onnx_proto(source, label, None, input_shapes, batch_size)
    if _is_instance(source, "tvm.relax.frontend.nn", "Module"):
        label = name or type(source).__name__.lower()
        return _load_nn(source, label, input_shapes)
    raise ModelError(
        name or type(source).__name__,
        f"cannot import a {type(source).__module__}.{type(source).__name__}; give 'zoo:NAME', "
        "a keras.Model, an onnx.ModelProto, a relax nn.Module, or a .keras/.tflite/.onnx file "
        "or SavedModel directory",
    )


def _is_instance(obj: Any, module: str, cls: str) -> bool:
    """isinstance without importing ``module`` unless ``obj`` could come from it."""
    if not type(obj).__module__.startswith(module.split(".")[0]) and not any(
        c.__module__.startswith(module.split(".")[0]) for c in type(obj).__mro__
    ):
        return False
    mod = __import__(module, fromlist=[cls])
    return isinstance(obj, getattr(mod, cls))


def _load_zoo(
    source: str,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
    name: str | None,
) -> LoadedModel:
    zoo_name = source[len(ZOO_PREFIX) :]
    label = name or zoo_name
    if zoo_name not in ZOO_NAMES:
        raise ModelError(source, f"no such zoo model; choose from {', '.join(ZOO_NAMES)}")
    image_size = None
    shape = (input_shapes or {}).get("image")
    if zoo_name != "mlp" and shape is not None and len(shape) == 4:
        # The zoo builds the model at the requested image size (its dense head depends on it).
        image_size = (int(shape[1]), int(shape[2]))
    model = build_keras(zoo_name, image_size=image_size)
    return _load_keras(model, label, source, input_shapes, batch_size)


def _load_path(
    path: Path,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
    name: str | None,
) -> LoadedModel:
    label = name or str(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(
                label, "directory is not a TensorFlow SavedModel (no saved_model.pb in it)"
            )
        return _load_savedmodel(path, label, input_shapes, batch_size)
    if not path.exists():
        raise ModelError(label, f"file not found: {path}")
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ModelError(label, f"cannot read the file: {one_line(exc)}") from None
    suffix = path.suffix.lower()
    if not head:
        raise ModelError(label, "the file is empty")
    if head[4:8] == TFLITE_IDENTIFIER:
        return _load_tflite_file(path, label, input_shapes, batch_size)
    if suffix == ".tflite":
        raise ModelError(label, "not a TFLite flatbuffer (no 'TFL3' identifier): corrupt file?")
    if head.startswith(ZIP_MAGIC) or suffix == ".keras":
        return _load_keras_file(path, label, input_shapes, batch_size)
    if head.startswith(HDF5_MAGIC) or suffix in (".h5", ".hdf5"):
        raise ModelError(label, "legacy HDF5 Keras files are not supported; re-save as .keras")
    if suffix == ".onnx":
        return _load_onnx_file(path, label, input_shapes, batch_size)
    raise ModelError(
        label,
        f"unknown model format (extension {suffix or 'none'!r}, content not recognised); "
        "expected a .keras, .tflite or .onnx file or a SavedModel directory",
    )


# ---------------------------------------------------------------- Keras / SavedModel
def _load_keras_file(
    path: Path,
    label: str,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    if not zipfile.is_zipfile(path):
        raise ModelError(label, "not a .keras zip archive: corrupt or truncated file")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelError(label, f"corrupt or truncated .keras file: {one_line(exc)}") from None
    if bad is not None:
        raise ModelError(label, f"corrupt .keras file: member {bad!r} fails its checksum")
    if "config.json" not in names:
        raise ModelError(label, "not a Keras v3 file: the archive has no config.json")
    import_tensorflow()
    import keras

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises TypeError/ValueError/KeyError/OSError here
        raise ModelError(label, _keras_load_problem(exc)) from None
    return _load_keras(model, label, str(path), input_shapes, batch_size)


def _keras_load_problem(exc: Exception) -> str:
    text = str(exc)
    custom = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if custom:
        return (
            f"custom layer or object {custom.group(1)!r} is not known to Keras; it cannot be "
            "loaded without its code (only built-in layers are supported)"
        )
    if "Lambda" in text and "safe_mode" in text:
        return (
            "custom layer: a Lambda layer holds Python code, which safe mode refuses to "
            "deserialise; rebuild it without Lambda layers"
        )
    return f"cannot load the Keras file: {one_line(exc)}"


def _keras_declared(model: Any, label: str) -> list[tuple[str, tuple[Any, ...], str]]:
    try:
        tensors = list(model.inputs)
    except (AttributeError, ValueError, TypeError):
        tensors = []
    if not tensors:
        raise ModelError(
            label,
            "the Keras model has no defined inputs; build it with keras.Input (functional or "
            "Sequential with an Input)",
        )
    return [(t.name, tuple(t.shape), str(t.dtype)) for t in tensors]


def _load_keras(
    model: Any,
    label: str,
    source: str | None,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    tf = import_tensorflow()
    declared = _keras_declared(model, label)
    specs = resolve_inputs(label, declared, input_shapes, batch_size)
    tensor_specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]

    def call(*xs: Any) -> list[Any]:
        return tf.nest.flatten(model(xs[0] if len(xs) == 1 else list(xs), training=False))

    concrete = _trace(tf, label, call, tensor_specs)
    tflite_bytes = _to_tflite(tf, label, concrete)
    mod, specs = _relax_from_tflite(label, tflite_bytes, specs)
    return LoadedModel(
        name=label,
        framework="keras",
        source=source,
        inputs=specs,
        mod=mod,
        baselines=("tensorflow", "tflite"),
        artifacts={"keras_model": model, "tflite_bytes": tflite_bytes},
    )


def _load_savedmodel(
    path: Path,
    label: str,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    tf = import_tensorflow()
    try:
        obj = tf.saved_model.load(str(path))
    except Exception as exc:  # corrupt protobuf, missing variables, unknown ops
        raise ModelError(label, f"cannot load the SavedModel: {one_line(exc)}") from None
    signature, sig_name = _serving_signature(obj, label)
    _, kwargs = signature.structured_input_signature
    names = list(kwargs)
    declared = [
        (
            n,
            tuple(kwargs[n].shape) if kwargs[n].shape.rank is not None else None,
            kwargs[n].dtype.name,
        )
        for n in names
    ]
    specs = resolve_inputs(label, declared, input_shapes, batch_size)
    tensor_specs = [tf.TensorSpec(s.shape, s.dtype, name=s.name) for s in specs]

    def call(*xs: Any) -> list[Any]:
        return tf.nest.flatten(signature(**dict(zip(names, xs, strict=True))))

    concrete = _trace(tf, label, call, tensor_specs)
    tflite_bytes = _to_tflite(tf, label, concrete)
    mod, specs = _relax_from_tflite(label, tflite_bytes, specs)
    return LoadedModel(
        name=label,
        framework="savedmodel",
        source=str(path),
        inputs=specs,
        mod=mod,
        baselines=("tensorflow", "tflite"),
        artifacts={
            "saved_model": obj,
            "saved_model_path": str(path),
            "signature": sig_name,
            "tflite_bytes": tflite_bytes,
        },
    )


def _serving_signature(obj: Any, label: str) -> tuple[Any, str]:
    signatures = dict(getattr(obj, "signatures", {}) or {})
    if "serving_default" in signatures:
        return signatures["serving_default"], "serving_default"
    if len(signatures) == 1:
        key = next(iter(signatures))
        return signatures[key], key
    if not signatures:
        raise ModelError(label, "the SavedModel has no signatures to call")
    raise ModelError(
        label,
        f"the SavedModel has several signatures ({', '.join(sorted(signatures))}) and no "
        "serving_default",
    )


def _trace(tf: Any, label: str, call: Any, tensor_specs: list[Any]) -> Any:
    try:
        return tf.function(call).get_concrete_function(*tensor_specs)
    except Exception as exc:  # shape mismatches surface here as ValueError/TypeError
        raise ModelError(
            label,
            f"cannot trace the model at input shapes "
            f"{[tuple(s.shape) for s in tensor_specs]}: {one_line(exc)}",
        ) from None


def _to_tflite(tf: Any, label: str, concrete: Any) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return bytes(converter.convert())
    except Exception as exc:  # ConverterError and friends
        ops = _converter_ops(str(exc))
        if ops:
            raise ModelError(
                label,
                f"unsupported operator(s) for TFLite conversion: {', '.join(ops)}",
            ) from None
        raise ModelError(label, f"TFLite conversion failed: {one_line(exc)}") from None


def _converter_ops(text: str) -> list[str]:
    ops = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    for line in re.findall(r"(?:Custom|Flex) ops: ([^\n]+)", text):
        ops += [op.strip() for op in line.split(",")]
    return sorted({op for op in ops if op})


# ---------------------------------------------------------------- TFLite
def _tflite_model(label: str, data: bytes) -> Any:
    try:
        import tflite
    except ImportError:
        raise ModelError(
            label, "importing TFLite needs the tflite package (pip install tflite)"
        ) from None
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(label, "not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraphs")
        sub = model.Subgraphs(0)
        for i in range(sub.TensorsLength()):
            sub.Tensors(i).ShapeAsNumpy()
        for i in range(model.BuffersLength()):
            buf = model.Buffers(i)
            if buf.Offset() > 0 and buf.Offset() + buf.Size() > len(data):
                raise ValueError(f"buffer {i} lies past the end of the file")
            buf.DataAsNumpy()
    except ModelError:
        raise
    except Exception as exc:  # flatbuffer reads past the end surface as struct/Index errors
        raise ModelError(label, f"corrupt or truncated TFLite file: {one_line(exc)}") from None
    return model


def _tflite_declared(label: str, model: Any) -> list[tuple[str, tuple[int, ...], str]]:
    sub = model.Subgraphs(0)
    declared = []
    for idx in sub.InputsAsNumpy():
        tensor = sub.Tensors(int(idx))
        name = tensor.Name().decode("utf-8", "replace")
        dims = tflite_dims(tensor)
        dtype = _TFLITE_DTYPES.get(tensor.Type())
        if dtype is None:
            raise ModelError(
                label, f"input {name!r} has an unsupported TFLite type {tensor.Type()}"
            )
        declared.append((name, dims, dtype))
    return declared


def _tflite_custom_ops(model: Any) -> list[str]:
    sub = model.Subgraphs(0)
    found = set()
    for i in range(sub.OperatorsLength()):
        code = model.OperatorCodes(sub.Operators(i).OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == _TFLITE_CUSTOM:
            found.add((code.CustomCode() or b"?").decode("utf-8", "replace"))
    return sorted(found)


def _relax_from_tflite(
    label: str, data: bytes, specs: tuple[InputSpec, ...]
) -> tuple[Any, tuple[InputSpec, ...]]:
    """Import TFLite bytes at ``specs``' shapes; return the module and the specs in the order
    of the Relax ``main`` parameters (matched by name, else by position)."""
    model = _tflite_model(label, data)
    custom = _tflite_custom_ops(model)
    if custom:
        raise ModelError(label, f"unsupported operator(s): TFLite custom op {', '.join(custom)}")
    declared_names = [name for name, _, _ in _tflite_declared(label, model)]
    shape_dict = {n: s.shape for n, s in zip(declared_names, specs, strict=True)}
    dtype_dict = {n: s.dtype for n, s in zip(declared_names, specs, strict=True)}
    from tvm.relax.frontend.tflite import from_tflite

    converter = converter_class(lambda: interpreter_shapes(data, [s.shape for s in specs]))
    mod = _run_frontend(
        label, lambda: from_tflite(model, shape_dict, dtype_dict, op_converter=converter), "TFLite"
    )
    mod = lowerable_layouts(mod)
    params = [p.name for p in mod["main"].params]
    by_name = {s.name: s for s in specs}
    if sorted(params) == sorted(by_name):
        return mod, tuple(by_name[p] for p in params)
    return mod, specs


def _load_tflite_file(
    path: Path,
    label: str,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    data = path.read_bytes()
    model = _tflite_model(label, data)
    specs = resolve_inputs(label, _tflite_declared(label, model), input_shapes, batch_size)
    mod, specs = _relax_from_tflite(label, data, specs)
    return LoadedModel(
        name=label,
        framework="tflite",
        source=str(path),
        inputs=specs,
        mod=mod,
        baselines=("tflite",),
        artifacts={"tflite_bytes": data},
    )


# ---------------------------------------------------------------- ONNX
def _load_onnx_file(
    path: Path,
    label: str,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    onnx = _import_onnx(label)
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # DecodeError for corrupt/truncated protobufs
        raise ModelError(label, f"corrupt or truncated ONNX file: {one_line(exc)}") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(label, "not an ONNX model: the file holds no graph nodes")
    return _load_onnx_proto(model, label, str(path), input_shapes, batch_size)


def _import_onnx(label: str) -> Any:
    try:
        import onnx
    except ImportError:
        raise ModelError(
            label, "importing ONNX needs the onnx package (pip install onnx)"
        ) from None
    return onnx


def _onnx_declared(onnx: Any, model: Any) -> list[tuple[str, tuple[Any, ...] | None, str]]:
    initializers = {t.name for t in model.graph.initializer}
    declared = []
    for value in model.graph.input:
        if value.name in initializers:  # old-style: weights listed as inputs
            continue
        ttype = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(ttype.elem_type).name
        if not ttype.HasField("shape"):
            declared.append((value.name, None, dtype))
            continue
        dims = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
            for d in ttype.shape.dim
        )
        declared.append((value.name, dims, dtype))
    return declared


def _with_static_inputs(onnx: Any, model: Any, specs: tuple[InputSpec, ...]) -> tuple[Any, bool]:
    """A copy of ``model`` whose graph inputs have ``specs``' shapes; also whether a fixed
    dimension changed (then stale intermediate shape annotations are dropped)."""
    static = onnx.ModelProto()
    static.CopyFrom(model)
    by_name = {s.name: s for s in specs}
    changed_fixed = False
    for value in static.graph.input:
        spec = by_name.get(value.name)
        if spec is None:
            continue
        shape = value.type.tensor_type.shape
        old = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
        changed_fixed |= any(
            o is not None and o != n for o, n in zip(old, spec.shape, strict=False)
        ) or len(old) != len(spec.shape)
        shape.ClearField("dim")
        for size in spec.shape:
            shape.dim.add().dim_value = size
    if changed_fixed:
        del static.graph.value_info[:]
        for out in static.graph.output:
            out.type.tensor_type.ClearField("shape")
    return static, changed_fixed


def _load_onnx_proto(
    model: Any,
    label: str,
    source: str | None,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch_size: int | None,
) -> LoadedModel:
    onnx = _import_onnx(label)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError
        raise ModelError(label, f"fails the ONNX checker: {one_line(exc)}") from None
    specs = resolve_inputs(label, _onnx_declared(onnx, model), input_shapes, batch_size)
    static, _ = _with_static_inputs(onnx, model, specs)
    from tvm.relax.frontend.onnx import from_onnx

    mod = _run_frontend(
        label,
        lambda: from_onnx(
            static,
            shape_dict={s.name: list(s.shape) for s in specs},
            dtype_dict={s.name: s.dtype for s in specs},
        ),
        "ONNX",
    )
    n_params = len(mod["main"].params)
    if n_params != len(specs):
        raise ModelError(
            label, f"the Relax module takes {n_params} inputs but the model declares {len(specs)}"
        )
    return LoadedModel(
        name=label,
        framework="onnx",
        source=source,
        inputs=specs,  # from_onnx keeps graph-input order (sanitising names like input.1)
        mod=mod,
        baselines=("onnxruntime",),
        artifacts={"onnx_bytes": static.SerializeToString()},
    )


# ---------------------------------------------------------------- relax.frontend.nn
def _load_nn(
    module: Any, label: str, input_shapes: Mapping[str, Sequence[int]] | None
) -> LoadedModel:
    import inspect

    import tvm
    from tvm import relax
    from tvm.relax.frontend import nn

    arg_names = [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not input_shapes:
        raise ModelError(
            label,
            "a relax nn.Module needs input_shapes for the arguments of forward "
            f"({', '.join(arg_names)}), e.g. input_shapes={{'x': (1, 256)}}",
        )
    declared = [(n, None, "float32") for n in arg_names]
    specs = resolve_inputs(label, declared, input_shapes)
    spec = {"forward": {s.name: nn.spec.Tensor(list(s.shape), s.dtype) for s in specs}}
    try:
        exported, params = module.export_tvm(spec=spec)
    except Exception as exc:  # shape errors in forward surface here
        raise ModelError(label, f"cannot export the nn.Module: {one_line(exc)}") from None
    func = exported["forward"]
    num_input = int(func.attrs["num_input"])
    binds = {}
    for var, (pname, param) in zip(func.params[num_input:], params, strict=True):
        if param.data is None:
            raise ModelError(label, f"parameter {pname!r} has no value; set param.data first")
        binds[var] = tvm.runtime.tensor(param.data.numpy())
    bound = relax.transform.BindParams("forward", binds)(exported)["forward"]
    mod = tvm.IRModule({"main": bound.with_attr("global_symbol", "main")})
    return LoadedModel(
        name=label,
        framework="relax-nn",
        source=None,
        inputs=specs,
        mod=mod,
        artifacts={"nn_module": module},
    )


# ---------------------------------------------------------------- shared
def _run_frontend(label: str, convert: Any, frontend: str) -> Any:
    """Run a TVM frontend conversion; its failures become one-line ``ModelError``s naming the
    operator that failed where the frontend tells (TVM's ONNX importer prints it)."""
    import tvm

    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")
            return convert()
    except OperatorFailure as exc:
        raise ModelError(label, _operator_problem(frontend, exc.ops, exc.cause)) from None
    except Exception as exc:  # frontends raise ValueError/TVMError/AssertionError/struct.error
        op = re.search(r"Error converting operator (\w+)", printed.getvalue())
        if op:
            raise ModelError(label, _operator_problem(frontend, (op.group(1),), exc)) from None
        if isinstance(exc, tvm.error.OpNotImplemented):
            raise ModelError(label, f"unsupported operator(s): {one_line(exc)}") from None
        if isinstance(exc, NotImplementedError):
            raise ModelError(label, f"unsupported by the TVM importer: {one_line(exc)}") from None
        raise ModelError(label, f"cannot import into Relax: {one_line(exc)}") from None


def _operator_problem(frontend: str, ops: Sequence[str], cause: BaseException) -> str:
    """``TVM's TFLite importer fails on operator SLICE (inside WHILE): TypeError: ...``."""
    inside = f" (inside {' > '.join(ops[:-1])})" if len(ops) > 1 else ""
    unsupported = "unsupported operator(s): " if _is_not_implemented(cause) else ""
    return (
        f"{unsupported}TVM's {frontend} importer fails on operator {ops[-1]}{inside}: "
        f"{type(cause).__name__}: {one_line(cause)}"
    )


def _is_not_implemented(exc: BaseException) -> bool:
    """Whether ``exc`` says an operator (or a form of one) is not implemented."""
    import tvm

    return isinstance(exc, tvm.error.OpNotImplemented | NotImplementedError)
