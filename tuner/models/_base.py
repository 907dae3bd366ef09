"""Types shared by the model modules: what a loaded model is, and the error for bad models.

Nothing here imports TVM or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuner._base import TunerError

# Frameworks a model can come from (``LoadedModel.framework``).
FRAMEWORKS = ("keras", "savedmodel", "tflite", "onnx", "relax-nn")
# Baselines a model can be compared with (``tuner.models.baselines``).
BASELINES = ("tensorflow", "tflite", "onnxruntime")


class ModelError(TunerError):
    """A model that cannot be imported, compiled or run; the message names the model."""

    def __init__(self, model: str, problem: str) -> None:
        super().__init__(f"model {model}: {problem}")
        self.model = model
        self.problem = problem


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One model input: its name, static shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(eq=False)
class LoadedModel:
    """A model imported into a Relax module, with what is needed to compare it.

    ``source`` re-loads the same model in another process (a zoo name like ``zoo:cnn`` or a
    file path); ``None`` for an in-memory object. ``mod`` is the Relax IRModule straight from
    the frontend with the weights bound as constants (every loader binds them). ``baselines``
    lists the names of ``BASELINES`` this model can be run by; ``artifacts`` keeps the
    framework objects the baselines need in this process (e.g. ``keras_model``,
    ``tflite_bytes``, ``onnx_bytes``).
    """

    name: str
    framework: str
    source: str | None
    inputs: tuple[InputSpec, ...]
    mod: Any
    baselines: tuple[str, ...] = ()
    artifacts: dict[str, Any] = field(default_factory=dict)
