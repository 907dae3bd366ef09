"""Compile a model (with a tuning database or without), save it, load it back and run it.

A saved model is a folder: ``model.so`` (the Relax VM executable, ``export_library``) and
``model.json`` (what it is: the model, its inputs, the target, whether and from which
database it was tuned, how the VM runs ``main``, the TVM version). ``load_compiled`` needs
only that folder, so a fresh process can run or time the model without the tuning
process's state.

On a CPU ``model.so`` runs ``main`` compiled to native code (``pipeline.exec_mode_for``),
which the VM's instrument hook cannot see into; a folder saved ``hookable`` also holds
``model-bytecode.so``, the same model with ``main`` run by the bytecode interpreter, for
per-kernel profiles (``load_compiled(folder, hookable=True)``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from tuner.models._base import InputSpec, LoadedModel, ModelError
from tuner.models.lowering import prepared_unlowered_ops, unlowered_problem
from tuner.models.pipeline import BYTECODE, build_with_database, exec_mode_for

LIBRARY = "model.so"
HOOKABLE_LIBRARY = "model-bytecode.so"
METADATA = "model.json"
FORMAT = "tuneloom-compiled-model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CompiledModel:
    """A loaded compiled model: a Relax VM ready to run, and its metadata."""

    vm: Any
    inputs: tuple[InputSpec, ...]
    metadata: dict[str, Any]
    device: Any

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs (as NumPy arrays, in the model's output order) for named inputs."""
        return flatten_outputs(self.vm["main"](*self.arguments(inputs)))

    def arguments(self, inputs: Mapping[str, np.ndarray]) -> list[Any]:
        """The inputs as device tensors in ``main``'s parameter order (checked)."""
        args = []
        for spec in self.inputs:
            if spec.name not in inputs:
                raise ModelError(self.metadata["model"], f"input {spec.name!r} is missing")
            value = np.ascontiguousarray(inputs[spec.name])
            if tuple(value.shape) != spec.shape or str(value.dtype) != spec.dtype:
                raise ModelError(
                    self.metadata["model"],
                    f"input {spec.name!r} must be {spec.dtype}{list(spec.shape)}, "
                    f"got {value.dtype}{list(value.shape)}",
                )
            args.append(tvm.runtime.tensor(value, self.device))
        return args


def compile_model(
    model: LoadedModel,
    target: Target | Mapping[str, Any],
    database_dir: str | Path | None,
    *,
    exec_mode: str | None = None,
) -> Any:
    """The model compiled for ``target`` with the tuned schedules of the MetaSchedule
    database in ``database_dir`` (None: no database, i.e. the untuned model; both go through
    the same pipeline, so they differ only in the schedules). ``exec_mode``: how the VM runs
    ``main`` (default: ``pipeline.exec_mode_for(target)``)."""
    target = target if isinstance(target, Target) else Target(dict(target))
    database = open_database(database_dir) if database_dir else ms.database.MemoryDatabase()
    try:
        return build_with_database(model.mod, target, database, exec_mode or exec_mode_for(target))
    except Exception as exc:
        unlowered = prepared_unlowered_ops(model.mod, target)
        if unlowered:
            raise ModelError(model.name, unlowered_problem(unlowered)) from None
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ModelError(
            model.name, f"cannot compile: {type(exc).__name__}: {lines[-1] if lines else ''}"
        ) from None


def open_database(folder: str | Path) -> Any:
    """The MetaSchedule JSON database in ``folder`` (both files must be there)."""
    folder = Path(folder)
    workload = folder / "database_workload.json"
    records = folder / "database_tuning_record.json"
    if not workload.is_file() or not records.is_file():
        raise ModelError(
            str(folder), "not a MetaSchedule database (needs database_workload.json and "
            "database_tuning_record.json)",
        )  # fmt: skip
    return ms.database.JSONDatabase(
        path_workload=str(workload), path_tuning_record=str(records), allow_missing=False
    )


def compile_and_save(
    model: LoadedModel,
    target: Mapping[str, Any],
    folder: str | Path,
    *,
    database_dir: str | Path | None = None,
    hookable: bool = False,
) -> Path:
    """Compile ``model`` (``compile_model``) and save it into ``folder``; with ``hookable``
    also the bytecode build the instrument hook sees into (profiles need it), unless the
    model's own build is bytecode already. Returns the folder."""
    exec_mode = exec_mode_for(Target(dict(target)))
    executable = compile_model(model, target, database_dir, exec_mode=exec_mode)
    hooked = None
    if hookable and exec_mode != BYTECODE:
        hooked = compile_model(model, target, database_dir, exec_mode=BYTECODE)
    return save_compiled(
        executable, model, target, folder,
        database_dir=database_dir, exec_mode=exec_mode, hookable_executable=hooked,
    )  # fmt: skip


def save_compiled(
    executable: Any,
    model: LoadedModel,
    target: Mapping[str, Any],
    folder: str | Path,
    *,
    database_dir: str | Path | None = None,
    exec_mode: str,
    hookable_executable: Any = None,
) -> Path:
    """Write ``model.so`` and ``model.json`` into ``folder`` (and ``model-bytecode.so``
    from ``hookable_executable``, a bytecode build of the same model); ``exec_mode`` is how
    ``executable`` runs ``main``. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    executable.export_library(str(folder / LIBRARY))
    hookable_library = LIBRARY if exec_mode == BYTECODE else None
    if hookable_executable is not None:
        hookable_executable.export_library(str(folder / HOOKABLE_LIBRARY))
        hookable_library = HOOKABLE_LIBRARY
    metadata = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "model": model.name,
        "source": model.source,
        "framework": model.framework,
        "inputs": [
            {"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in model.inputs
        ],
        "target": dict(target),
        "tuned": database_dir is not None,
        "database": str(Path(database_dir).resolve()) if database_dir else None,
        "exec_mode": exec_mode,
        "hookable_library": hookable_library,
        "tvm": tvm.__version__,
        "created": time.time(),
    }
    (folder / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    return folder


def load_compiled(folder: str | Path, *, hookable: bool = False) -> CompiledModel:
    """A saved model, ready to run on this machine's CPU (its first GPU if built for cuda).
    ``hookable``: the build whose calls the VM's instrument hook sees (ModelError when the
    folder was saved without one)."""
    folder = Path(folder)
    metadata = read_metadata(folder)
    library_name = LIBRARY
    if hookable:
        # A folder saved before ``exec_mode`` was recorded holds a bytecode build only.
        library_name = metadata.get("hookable_library", LIBRARY)
        if not library_name:
            raise ModelError(
                str(folder), "saved without a bytecode build, so its kernels cannot be profiled"
            )
        if library_name not in (LIBRARY, HOOKABLE_LIBRARY):
            raise ModelError(str(folder), f"{METADATA} names an unknown library {library_name!r}")
    try:
        library = tvm.runtime.load_module(str(folder / library_name))
    except Exception as exc:
        raise ModelError(str(folder), f"cannot load {library_name}: {type(exc).__name__}") from None
    target = metadata.get("target")
    device = tvm.cuda(0) if isinstance(target, dict) and target.get("kind") == "cuda" else tvm.cpu()
    inputs = tuple(
        InputSpec(str(i["name"]), tuple(int(d) for d in i["shape"]), str(i["dtype"]))
        for i in metadata["inputs"]
    )
    return CompiledModel(relax.VirtualMachine(library, device), inputs, metadata, device)


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of a saved model, checked."""
    folder = Path(folder)
    path = folder / METADATA
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(str(folder), f"not a compiled model (no {METADATA})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(str(folder), f"unreadable {METADATA}: {exc}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelError(str(folder), f"{METADATA} is not a {FORMAT} description")
    if metadata.get("version") != FORMAT_VERSION:
        raise ModelError(
            str(folder), f"{METADATA} has version {metadata.get('version')!r}, "
            f"this tuneloom reads version {FORMAT_VERSION}",
        )  # fmt: skip
    return metadata


def flatten_outputs(value: Any) -> list[np.ndarray]:
    """A VM result (a tensor or nested tuples of tensors) -> NumPy arrays, in order."""
    if hasattr(value, "numpy"):
        return [value.numpy()]
    if isinstance(value, Sequence) or hasattr(value, "__len__"):
        return [array for item in value for array in flatten_outputs(item)]
    raise TypeError(f"unexpected model output {type(value).__name__}")
