"""Saved compiled models (real TVM, llvm): ``main`` runs compiled to native code, a bytecode
build beside it serves the instrument hook, and both compute the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuner.metaschedule.targets import target_config
from tuner.models._base import LoadedModel, ModelError
from tuner.models.compiled import (
    HOOKABLE_LIBRARY,
    LIBRARY,
    METADATA,
    compile_and_save,
    load_compiled,
)
from tuner.models.loaders import load_model
from tuner.models.pipeline import COMPILED, build_with_database
from tuner.models.zoo import build_onnx

TARGET = target_config("llvm", 1)


@pytest.fixture(scope="module")
def mlp() -> LoadedModel:
    return load_model(build_onnx("mlp"), name="onnx-mlp")


def _inputs(model: LoadedModel, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s.name: rng.standard_normal(s.shape).astype(s.dtype) for s in model.inputs}


def _calls_the_hook_sees(model: LoadedModel, folder: Path, *, hookable: bool) -> list[str]:
    compiled = load_compiled(folder, hookable=hookable)
    names: list[str] = []

    def instrument(_func: object, name: str, before_run: bool, *_rest: object) -> None:
        if before_run:
            names.append(name)

    compiled.vm.set_instrument(instrument)
    compiled.run(_inputs(model, 0))
    return names


def test_main_runs_compiled_and_the_hookable_build_sees_every_kernel(
    mlp: LoadedModel, tmp_path: Path
) -> None:
    folder = compile_and_save(mlp, TARGET, tmp_path / "m", hookable=True)
    metadata = json.loads((folder / METADATA).read_text())
    assert metadata["exec_mode"] == COMPILED
    assert metadata["hookable_library"] == HOOKABLE_LIBRARY
    assert (folder / LIBRARY).is_file() and (folder / HOOKABLE_LIBRARY).is_file()

    # Compiled functions call the kernels without the interpreter, so without its hook.
    assert _calls_the_hook_sees(mlp, folder, hookable=False) == []
    hooked = _calls_the_hook_sees(mlp, folder, hookable=True)
    assert [n for n in hooked if n.startswith("fused_")], hooked

    for seed in (1, 2):  # the same model either way, and its outputs depend on the input
        inputs = _inputs(mlp, seed)
        fast = load_compiled(folder).run(inputs)
        slow = load_compiled(folder, hookable=True).run(inputs)
        np.testing.assert_array_equal(fast[0], slow[0])
    assert not np.array_equal(
        load_compiled(folder).run(_inputs(mlp, 1))[0], load_compiled(folder).run(_inputs(mlp, 2))[0]
    )


def test_a_model_saved_without_a_bytecode_build_cannot_be_hooked(
    mlp: LoadedModel, tmp_path: Path
) -> None:
    folder = compile_and_save(mlp, TARGET, tmp_path / "m")
    assert not (folder / HOOKABLE_LIBRARY).exists()
    with pytest.raises(ModelError, match="without a bytecode build"):
        load_compiled(folder, hookable=True)


def test_a_folder_saved_before_exec_modes_is_its_own_bytecode_build(
    mlp: LoadedModel, tmp_path: Path
) -> None:
    folder = compile_and_save(mlp, TARGET, tmp_path / "m", hookable=True)
    # An older folder: one bytecode library, no exec_mode in its metadata.
    (folder / HOOKABLE_LIBRARY).replace(folder / LIBRARY)
    metadata = json.loads((folder / METADATA).read_text())
    del metadata["exec_mode"], metadata["hookable_library"]
    (folder / METADATA).write_text(json.dumps(metadata))
    assert _calls_the_hook_sees(mlp, folder, hookable=True)


def test_metadata_cannot_point_the_loader_at_another_file(mlp: LoadedModel, tmp_path: Path) -> None:
    folder = compile_and_save(mlp, TARGET, tmp_path / "m", hookable=True)
    metadata = json.loads((folder / METADATA).read_text())
    metadata["hookable_library"] = "../elsewhere.so"
    (folder / METADATA).write_text(json.dumps(metadata))
    with pytest.raises(ModelError, match="unknown library"):
        load_compiled(folder, hookable=True)


def test_an_unknown_exec_mode_is_refused(mlp: LoadedModel) -> None:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    with pytest.raises(ValueError, match="exec_mode must be"):
        build_with_database(mlp.mod, tvm.target.Target(TARGET), ms.database.MemoryDatabase(), "jit")
