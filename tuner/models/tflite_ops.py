"""TVM's TFLite op converter, extended where TFLite files exported with an open batch need it.

``converter_class(static_shapes)`` returns a subclass of TVM's ``OperatorConverter`` that

- imports a RESHAPE whose target shape is computed at run time (SHAPE -> STRIDED_SLICE ->
  PACK -> RESHAPE, what a Flatten or a Dense on a sequence becomes with an open batch), which
  TVM's converter cannot turn into a Relax shape: with static inputs the output tensor's
  declared shape signature gives the target when at most one dimension is open; otherwise the
  shapes TFLite's own interpreter gives every tensor at the static input shapes
  (``static_shapes``, computed only when needed);
- imports EXPAND_DIMS (a Conv1D's input with an open batch), which TVM 0.27's converter
  calls ``relax.op.expand_dims`` wrongly for;
- names the operator that fails: any error inside an op's conversion is raised as
  ``OperatorFailure`` with the TFLite op codes, outermost first (``WHILE``, ``SLICE``).

TVM is imported only when ``converter_class`` runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

StaticShapes = Callable[[], Mapping[int, tuple[int, ...]]]


class OperatorFailure(Exception):
    """A TFLite operator TVM's converter failed on: ``ops`` from the outermost (a ``WHILE``
    whose body holds the failing op) to the failing one; ``cause`` the converter's error."""

    def __init__(self, ops: tuple[str, ...], cause: BaseException) -> None:
        super().__init__(f"{' > '.join(ops)}: {cause}")
        self.ops = ops
        self.cause = cause


def tflite_dims(tensor: Any) -> tuple[int | None, ...]:
    """A TFLite tensor's declared dims (``None`` where the shape signature leaves one open)."""
    signature = tensor.ShapeSignatureAsNumpy()
    dims = signature if not isinstance(signature, int) and len(signature) else tensor.ShapeAsNumpy()
    return () if isinstance(dims, int) else tuple(int(d) if d >= 0 else None for d in dims)


def interpreter_shapes(
    data: bytes, input_shapes: Sequence[tuple[int, ...]]
) -> dict[int, tuple[int, ...]]:
    """Every tensor's shape in TFLite's interpreter, run once on zeros at ``input_shapes``
    (the model's inputs in declared order), by tensor index of the main subgraph. Empty when
    TensorFlow is missing or the interpreter fails (the caller then falls back to TVM)."""
    try:
        from tuner.models.frameworks import import_tensorflow

        tf = import_tensorflow()
        plain = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            interp = tf.lite.Interpreter(
                model_content=data, num_threads=1, experimental_op_resolver_type=plain
            )
        details = interp.get_input_details()
        for detail, shape in zip(details, input_shapes, strict=True):
            interp.resize_tensor_input(detail["index"], list(shape), strict=False)
        interp.allocate_tensors()
        for detail, shape in zip(details, input_shapes, strict=True):
            interp.set_tensor(detail["index"], np.zeros(shape, detail["dtype"]))
        interp.invoke()
        return {
            int(d["index"]): tuple(int(s) for s in d["shape"]) for d in interp.get_tensor_details()
        }
    except Exception:  # no TensorFlow, or an interpreter error: TVM's own converter decides
        return {}


def _named(code: str, convert: Callable[..., Any]) -> Callable[..., Any]:
    """``convert`` raising ``OperatorFailure`` that names ``code`` (and any inner op)."""

    def call(op: Any) -> Any:
        try:
            return convert(op=op)
        except OperatorFailure as inner:
            raise OperatorFailure((code, *inner.ops), inner.cause) from None
        except Exception as exc:  # whatever the converter raised: keep it as the cause
            raise OperatorFailure((code,), exc) from None

    return call


def converter_class(static_shapes: StaticShapes) -> type:
    """TVM's TFLite ``OperatorConverter`` with the additions the module docstring lists."""
    from tvm import relax
    from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter

    cache: dict[str, Mapping[int, tuple[int, ...]]] = {}

    def shapes() -> Mapping[int, tuple[int, ...]]:
        if "shapes" not in cache:
            cache["shapes"] = static_shapes()
        return cache["shapes"]

    class StaticShapeConverter(OperatorConverter):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.convert_map = {code: _named(code, f) for code, f in self.convert_map.items()}

        def _in_main_subgraph(self) -> bool:
            return not self.conversion_state["lowering_stack"]

        def convert_reshape(self, op: Any) -> Any:
            inputs = self.get_input_tensors(op)
            if (
                len(inputs) == 2
                and self.has_expr(inputs[1].tensor_idx)
                and not any(t.qnn_params for t in inputs)
            ):
                target = self._static_target(self.get_output_tensors(op)[0])
                if target is not None:
                    return relax.op.reshape(self.get_tensor_expr(inputs[0]), target)
            return super().convert_reshape(op)

        def _static_target(self, out: Any) -> list[int] | None:
            dims = tflite_dims(out.tensor)
            if dims and sum(d is None for d in dims) <= 1:
                return [-1 if d is None else d for d in dims]
            known = shapes().get(int(out.tensor_idx)) if self._in_main_subgraph() else None
            return list(known) if known is not None and len(known) == len(dims) else None

        def convert_expand_dims(self, op: Any) -> Any:
            inputs = self.get_input_tensors(op)
            if len(inputs) != 2 or inputs[0].qnn_params:
                return super().convert_expand_dims(op)
            axis = np.asarray(self.get_tensor_value(inputs[1])).reshape(-1)
            if axis.size != 1:
                return super().convert_expand_dims(op)
            return relax.op.expand_dims(self.get_tensor_expr(inputs[0]), int(axis[0]))

    return StaticShapeConverter
