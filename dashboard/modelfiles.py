"""A cheap look at an uploaded model file before it is kept: is it the format its extension
says, and is it not a Python pickle?

Nothing here parses or loads a model (the tuner does, and says what is wrong with one that
passes); it only reads the bytes each format starts with, so a pickle, an archive of pickles
or a file of another kind is refused with a reason before it reaches the tuner. Pickles are
never unpickled: unpickling runs whatever code the file names.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

PICKLE_SUFFIXES = (".pkl", ".pickle")
MAX_IR_VERSION = 100  # ONNX IR versions are small numbers (11 in 2024)


def looks_like_pickle(raw: bytes) -> bool:
    """Whether ``raw`` starts like a pickle of protocol 2 or later (``\\x80`` + protocol)."""
    return len(raw) >= 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def model_problem(name: str, raw: bytes) -> str | None:
    """Why ``raw`` (uploaded as ``name``) is refused, or None when it may be a model: a
    pickle, or a file that is not the model its extension says (ONNX starts with its IR
    version, TFLite carries the ``TFL3`` identifier, a Keras v3 file is a zip archive holding
    ``config.json``)."""
    if looks_like_pickle(raw):
        return _pickle_text(name)
    ext = PurePosixPath(name).suffix.lower()
    if ext == ".onnx" and not _onnx_head(raw):
        return f"{name} is not an ONNX model (an ONNX file starts with its IR version)."
    if ext == ".tflite" and raw[4:8] != b"TFL3":
        return f"{name} is not a TFLite model (it lacks the TFL3 identifier)."
    if ext == ".keras":
        return _keras_problem(name, raw)
    return None


def _pickle_text(name: str, member: str | None = None) -> str:
    what = f"{name} holds a Python pickle ({member})" if member else f"{name} is a Python pickle"
    return (
        f"{what}; pickles are never loaded here (unpickling can run any code): "
        "export the model as ONNX, TFLite or Keras."
    )


def _onnx_head(raw: bytes) -> bool:
    """Whether ``raw`` opens with field 1 of a ModelProto (``ir_version``, a varint)."""
    if len(raw) < 2 or raw[0] != 0x08:
        return False
    value = shift = 0
    for byte in raw[1:11]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return 1 <= value <= MAX_IR_VERSION
        shift += 7
    return False


def _keras_problem(name: str, raw: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        members = None
    if members is None or "config.json" not in members:
        return f"{name} is not a Keras model (a .keras file is a zip archive holding config.json)."
    pickled = [m for m in members if m.lower().endswith(PICKLE_SUFFIXES)]
    return _pickle_text(name, pickled[0]) if pickled else None
