"""Model inputs: resolving declared shapes to static ones, parsing overrides, random feeds.

Pure helpers shared by the loaders and the baselines; nothing here imports TVM or TensorFlow.
A declared dimension is an ``int`` when known, or ``None`` / a symbol name (``str``) / a
negative number when the model leaves it open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from tuner.models._base import InputSpec, ModelError

if TYPE_CHECKING:
    from tuner.models._base import LoadedModel

Dim = int | str | None
# The size an example override uses for a dimension the model leaves open.
_EXAMPLE_DIM = 32


def is_known(dim: Dim) -> bool:
    """True when ``dim`` is a fixed, non-negative size."""
    return isinstance(dim, int | np.integer) and not isinstance(dim, bool) and int(dim) >= 0


def shape_text(dims: Sequence[Dim]) -> str:
    """``(?, 3, 32, 32)``-style text for a declared shape (open dims shown as ``?`` or a name)."""
    parts = []
    for d in dims:
        if is_known(d):
            parts.append(str(int(d)))
        elif isinstance(d, str) and d:
            parts.append(d)
        else:
            parts.append("?")
    return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")


def _example_shape(dims: Sequence[Dim] | None) -> tuple[int, ...]:
    if not dims:
        return (1, 3, _EXAMPLE_DIM, _EXAMPLE_DIM)
    return tuple(
        int(d) if is_known(d) else (1 if i == 0 else _EXAMPLE_DIM) for i, d in enumerate(dims)
    )


def override_hint(name: str, dims: Sequence[Dim] | None) -> str:
    """How to give an input's shape, for the Python API and the CLI."""
    example = _example_shape(dims)
    return (
        f"give its shape, e.g. input_shapes={{{name!r}: {example}}} "
        f"(CLI: --input-shape {name}:{'x'.join(str(d) for d in example)})"
    )


def normalize_overrides(
    model: str, input_shapes: Mapping[str, Sequence[int]] | None
) -> dict[str, tuple[int, ...]]:
    """Check ``input_shapes`` holds positive integer shapes; return them as tuples."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in (input_shapes or {}).items():
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ModelError(
                model, f"input_shapes[{name!r}] must be a sequence of integers, got {shape!r}"
            ) from None
        if any(d <= 0 for d in dims) or any(
            isinstance(d, bool) or (isinstance(d, float) and not d.is_integer()) for d in shape
        ):
            raise ModelError(
                model, f"input_shapes[{name!r}] must hold positive integers, got {shape!r}"
            )
        out[str(name)] = dims
    return out


def resolve_inputs(
    model: str,
    declared: Sequence[tuple[str, Sequence[Dim] | None, str]],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    batch_size: int | None = None,
) -> tuple[InputSpec, ...]:
    """Turn the model's declared inputs ``(name, dims or None for unknown rank, dtype)`` into
    static ``InputSpec``s.

    An override in ``input_shapes`` wins (its rank must match a known rank). Otherwise a leading
    open dimension becomes ``batch_size`` (default 1), and ``batch_size`` also replaces a known
    leading dimension; any other open dimension is a ``ModelError`` naming the input and the
    dimension and saying how to override it. Overrides naming no input are an error too.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ModelError(model, f"batch_size must be a positive integer, got {batch_size!r}")
    overrides = normalize_overrides(model, input_shapes)
    names = [name for name, _, _ in declared]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ModelError(
            model,
            f"input_shapes names {', '.join(repr(n) for n in unknown)}, which the model lacks "
            f"(its inputs: {', '.join(repr(n) for n in names) or 'none'})",
        )
    specs = []
    for name, dims, dtype in declared:
        if name in overrides:
            shape = overrides[name]
            if dims is not None and len(dims) != len(shape):
                raise ModelError(
                    model,
                    f"input_shapes[{name!r}] = {shape} has rank {len(shape)} but input {name!r} "
                    f"has rank {len(dims)} {shape_text(dims)}",
                )
            specs.append(InputSpec(name, shape, dtype))
            continue
        if dims is None:
            raise ModelError(
                model, f"input {name!r} has an unknown rank; {override_hint(name, None)}"
            )
        shape_list: list[int] = []
        for i, d in enumerate(dims):
            if i == 0 and batch_size is not None:
                shape_list.append(batch_size)
            elif is_known(d):
                shape_list.append(int(d))
            elif i == 0:
                shape_list.append(1)
            else:
                label = f" {d!r}" if isinstance(d, str) and d else ""
                raise ModelError(
                    model,
                    f"input {name!r} has an unknown dimension {i}{label} in shape "
                    f"{shape_text(dims)}; {override_hint(name, dims)}",
                )
        specs.append(InputSpec(name, tuple(shape_list), dtype))
    return tuple(specs)


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """Parse the CLI form ``NAME:1x3x32x32`` into ``("NAME", (1, 3, 32, 32))``.

    The name may itself contain colons (the last one separates the shape). Raises
    ``ModelError`` for anything else.
    """
    name, sep, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
    except ValueError:
        shape = ()
    if not sep or not name or not shape or any(d <= 0 for d in shape):
        raise ModelError(
            "input-shape", f"expected NAME:DIMxDIMx... with positive sizes, got {text!r}"
        )
    return name, shape


def random_array(shape: tuple[int, ...], dtype: str, rng: np.random.Generator) -> np.ndarray:
    """A random array of ``dtype``: standard normal floats, small integers, random booleans."""
    kind = np.dtype(dtype).kind
    if kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "b":
        return rng.random(shape) < 0.5
    if kind in "iu":
        return rng.integers(0, 8, size=shape).astype(dtype)
    raise ModelError("inputs", f"cannot make random values of dtype {dtype}")


def random_inputs(model: LoadedModel, seed: int = 0) -> dict[str, np.ndarray]:
    """One random array per input of ``model``, in input order; the same values for a seed."""
    rng = np.random.default_rng(seed)
    return {spec.name: random_array(spec.shape, spec.dtype, rng) for spec in model.inputs}
