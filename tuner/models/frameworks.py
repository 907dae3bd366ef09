"""Importing the frameworks models come from, quietly: TensorFlow's start-up notices and
logging turned down, and a clear error when it is missing."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType

from tuner._base import one_line
from tuner.models._base import ModelError


def import_tensorflow() -> ModuleType:
    """Import TensorFlow with its C++ logging quietened; ``ModelError`` if it is missing."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _stderr_silenced():  # C++ start-up notices ignore TF_CPP_MIN_LOG_LEVEL
            import tensorflow as tf
    except ImportError as exc:
        raise ModelError(
            "tensorflow",
            f"TensorFlow is not installed ({one_line(exc)}); pip install tensorflow-cpu",
        ) from None
    tf.get_logger().setLevel("ERROR")
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tf


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside (native libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
