"""Shared pieces of the log importers: the import context, line reading, error codes."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec

from collectors.record_fields import record_event

FORMATS = ("metaschedule", "autotvm", "ansor", "tuneloom")

# How many bad lines keep their reason in a summary (all of them are counted).
MAX_BAD_DETAILS = 50
# Bytes of a file hashed (with its size) into the import source id.
FINGERPRINT_BYTES = 64 * 1024
# Longer lines are reported as bad without being read into memory whole.
MAX_LINE_CHARS = 16 * 2**20
# Characters read at a time while splitting a file into lines.
READ_CHARS = 2**16

# AutoTVM ``MeasureErrorNo`` and Ansor ``MeasureErrorNO`` share these codes.
MEASURE_ERRORS: dict[int, tuple[str, str]] = {
    1: ("INSTANTIATION_ERROR", "build"),
    2: ("COMPILE_HOST", "build"),
    3: ("COMPILE_DEVICE", "build"),
    4: ("RUNTIME_DEVICE", "run"),
    5: ("WRONG_ANSWER", "run"),
    6: ("BUILD_TIMEOUT", "timeout"),
    7: ("RUN_TIMEOUT", "timeout"),
    8: ("UNKNOWN_ERROR", "other"),
}


class LogFormatError(ValueError):
    """A file cannot be imported (unknown format, missing companion file). Names the file."""


class BadLine(ValueError):
    """A line does not have the shape its format requires; the message says what is wrong."""


def measure_error(error_no: int) -> tuple[str, str]:
    """(exact error name, contract error class) for an AutoTVM/Ansor error number."""
    return MEASURE_ERRORS.get(error_no, (f"ERROR_NO_{error_no}", "other"))


@dataclass
class ImportContext:
    """Per-file state shared by an importer and the driver.

    The importer numbers its events with ``next_seq``, builds its records with ``record``
    (in ``RECORD_FIELDS`` order; the driver may ask for tuples instead of events) and reports
    lines it cannot read with ``bad_line``; the driver reads the counts back for the summary.
    """

    source: str
    job: str
    path: Path
    use_tvm: bool = True
    gap_s: float = 2.0
    workers: int | None = None  # processes parsing a big file: None picks, 0 parses here
    record: Callable[..., Any] = record_event
    bad_lines: int = 0
    bad_details: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _seq: int = 0

    def next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def peek_seq(self) -> int:
        """The seq ``next_seq`` gives next (for an event that may still be refused)."""
        return self._seq

    def bad_line(self, line: int, reason: str, *, file: Path | None = None) -> None:
        """Count a line that could not be read; keeps the first few reasons."""
        self.bad_lines += 1
        if len(self.bad_details) < MAX_BAD_DETAILS:
            detail: dict[str, Any] = {"line": line, "reason": reason}
            if file is not None and file != self.path:
                detail["file"] = str(file)
            self.bad_details.append(detail)


def iter_json_lines(
    path: Path, on_too_long: Callable[[int, str], None] | None = None
) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line that is not a ``#`` comment, streamed.

    Bytes that are not UTF-8 become U+FFFD. A line longer than ``MAX_LINE_CHARS`` is skipped
    without being held in memory; ``on_too_long(number, reason)`` is told about it.
    """
    with open(path, encoding="utf-8", errors="replace") as stream:
        yield from numbered_lines(stream, on_too_long)


def numbered_lines(
    stream: TextIO,
    on_too_long: Callable[[int, str], None] | None = None,
    counted: list[int] | None = None,
) -> Iterator[tuple[int, str]]:
    """``iter_json_lines`` of an open text stream; appends the number of lines read (blank,
    comment and too long ones included) to ``counted`` once the stream is exhausted.

    The stream is read in blocks of ``READ_CHARS`` split at newlines (a line per
    ``readline`` cost five times as much); a line reaching ``MAX_LINE_CHARS`` is dropped
    as soon as it does, so memory stays within a block and one line.
    """
    limit = MAX_LINE_CHARS
    read = stream.read
    number = 0
    carry = ""  # the start of a line that goes on in the next block
    skipping = False  # that line is too long (reported): the rest of it is dropped

    def too_long(at: int) -> None:
        if on_too_long is not None:
            on_too_long(at, f"line longer than {limit:,} characters")

    while block := read(READ_CHARS):
        lines = block.split("\n")
        last = lines.pop()  # after the last newline: unfinished
        if lines:
            if skipping:
                number += 1  # the end of the long line
                del lines[0]
            elif carry:
                lines[0] = carry + lines[0]
            carry, skipping = "", False
            for line in lines:
                number += 1
                if len(line) >= limit:
                    too_long(number)
                    continue
                text = line.strip()
                if text and text[0] != "#":
                    yield number, text
        if not skipping:
            carry += last
            if len(carry) >= limit:
                too_long(number + 1)
                carry, skipping = "", True
    if skipping or carry:
        number += 1
        text = carry.strip()
        if text and text[0] != "#":
            yield number, text
    if counted is not None:
        counted.append(number)


def parse_json(text: str) -> Any:
    """Decode one line (without surrounding whitespace), raising BadLine with a short reason
    (no NaN/Infinity accepted)."""
    try:
        value, end = _scan_once(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError, RecursionError):
        pass
    try:  # the slow path names the problem
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:
        raise BadLine(str(exc)) from None
    except RecursionError:
        raise BadLine("not valid JSON (nested too deeply)") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_scan_once = _DECODER.scan_once
# scan_json(text, index) -> (value, end): one JSON value starting at ``index`` (no leading
# whitespace), as ``parse_json`` reads it. Raises StopIteration or ValueError when there is
# none there, RecursionError when it nests too deeply.
scan_json = _scan_once


def fingerprint(*paths: Path) -> str:
    """Short sha256 over the first 64 KiB and the size of each file."""
    digest = hashlib.sha256()
    for path in paths:
        size = os.path.getsize(path)
        with open(path, "rb") as stream:
            digest.update(stream.read(FINGERPRINT_BYTES))
        digest.update(f"|{size}|".encode())
    return digest.hexdigest()[:12]


def source_id(fmt: str, *paths: Path) -> str:
    """The import source of a file: ``import:<format>:<fingerprint>``."""
    return f"import:{fmt}:{fingerprint(*paths)}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def job_id(fmt: str, stem: str, source: str) -> str:
    """A readable job id: format, file stem and the short fingerprint (``autotvm-bert-1a2b3c``)."""
    clean = _UNSAFE.sub("_", stem).strip("_") or "log"
    if len(clean) > 60:
        clean = clean[:60]
    prefix = "" if clean.lower().startswith(fmt) else f"{fmt}-"
    return f"{prefix}{clean}-{source.rsplit(':', 1)[-1][:6]}"


def as_float_list(value: Any) -> list[float] | None:
    """A list of finite floats, or None when ``value`` is not one."""
    if not isinstance(value, list | tuple) or not value:
        return None
    out = []
    for item in value:
        number = finite(item)
        if number is None:
            return None
        out.append(number)
    return out


def as_float_tuple(value: Any) -> tuple[float, ...] | None:
    """A non-empty tuple of finite floats, or None when ``value`` is not a list of them."""
    if type(value) is not list or not value:
        return None
    if len(value) == 1:  # the usual case: one cost as a JSON float
        v = value[0]
        if type(v) is float and v - v == 0.0:
            return (v,)
    elif all(type(v) is float for v in value):  # several costs as JSON floats
        out = tuple(value)
        for v in out:
            if v - v != 0.0:  # inf or NaN (v - v is NaN for both)
                return None
        return out
    numbers = as_float_list(value)
    return None if numbers is None else tuple(numbers)


def is_text(value: str) -> bool:
    """True when ``value`` encodes as UTF-8 (no lone surrogate from a ``\\ud800`` escape)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def display_path(path: Path | str) -> str:
    """A path as valid text: bytes of a file name that are not UTF-8 become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (bools, text, inf, huge ints)."""
    if type(value) not in (int, float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_result(result: Any) -> tuple[Any, int, float | None, float]:
    """(costs, error_no, all_cost, timestamp) of an AutoTVM/Ansor result list, checked."""
    if not isinstance(result, list) or len(result) < 4:
        raise BadLine("result is not [costs, error_no, all_cost, timestamp]")
    costs, error_no, all_cost, ts = result[:4]
    if type(error_no) is not int:
        raise BadLine("result error_no is not an integer")
    when = finite(ts)
    if when is None:
        raise BadLine("result timestamp is not a finite number")
    return costs, error_no, finite(all_cost), when


def tensor_shapes(args: Any) -> tuple[tuple[tuple[int, ...], ...], str | None]:
    """Shapes and the first dtype of ``["TENSOR", shape, dtype]`` entries in an args list."""
    shapes: list[tuple[int, ...]] = []
    dtype = None
    if not isinstance(args, list):
        return (), None
    for arg in args:
        if (
            isinstance(arg, list)
            and len(arg) == 3
            and arg[0] == "TENSOR"
            and isinstance(arg[1], list)
            and all(type(d) is int for d in arg[1])
        ):
            shapes.append(tuple(arg[1]))
            if dtype is None and isinstance(arg[2], str):
                dtype = arg[2]
    return tuple(shapes), dtype


def compact(value: Any) -> str:
    """``json.dumps(value)`` for short values, faster for the ints and int lists of schedules."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str:
        return json.dumps(value)
    if kind is list and all(type(v) is int for v in value):
        return "[" + ", ".join(map(str, value)) + "]"
    return json.dumps(value)


def shape_text(shape: tuple[int, ...]) -> str:
    """``(1, 768)`` -> ``1x768``; a scalar is ``()``."""
    return "x".join(str(d) for d in shape) if shape else "()"


class UniqueNames:
    """Gives each workload key a readable task name, suffixing ``#2``... on collisions."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set()

    def get(self, key: str) -> str | None:
        return self._by_key.get(key)

    def names(self) -> list[str]:
        """Names in the order their keys were added."""
        return list(self._by_key.values())

    def available(self, wanted: str) -> str:
        """``wanted``, or ``wanted#2``, ``#3``... when taken (nothing is reserved)."""
        name = wanted
        n = 2
        while name in self._taken:
            name = f"{wanted}#{n}"
            n += 1
        return name

    def add(self, key: str, wanted: str) -> str:
        """Name ``key``: ``available(wanted)``, reserved from now on."""
        name = self.available(wanted)
        self._taken.add(name)
        self._by_key[key] = name
        return name


def stop_worker(proc: subprocess.Popen[bytes] | None, timeout_s: float = 5.0) -> None:
    """Stop a helper process that exits when its stdin closes: close stdin, wait up to
    ``timeout_s``, kill it if it is still there, close its stdout."""
    if proc is None:
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# A measured log line's result as AutoTVM and Ansor write it, ``[costs, error_no, all_cost,
# timestamp]``, read by msgspec: every number a float (JSON integers too) but the error number.
# msgspec refuses numbers beyond a float's range, so every float it reads is finite.
_DECODE_RESULT = msgspec.json.Decoder(tuple[tuple[float, ...], int, float, float]).decode


def quick_measurement(
    known: tuple[Any, Any], raw_result: Any, detail: Any
) -> tuple[Any, ...] | None:
    """``Measurement``'s fields from the JSON text of a log line's result, when it is
    ``[costs, error_no, all_cost, timestamp]`` exactly as the tools write it, with costs
    (without error) that ``as_float_tuple`` accepts, as that tuple; None for any other
    (the caller then reads the line the slow way, which words the error). ``known`` is the
    line's (workload, target)."""
    try:
        costs, error_no, all_cost, ts = _DECODE_RESULT(raw_result)
    except msgspec.MsgspecError:
        return None
    if error_no == 0 and not costs:
        return None
    return known[0], known[1], costs, error_no, all_cost, ts, detail
