"""The dashboard's managed upload folder: files the browser sends, stored under generated names.

Nothing the browser says decides where a file goes. Each upload gets a fresh folder named by a
random hex id (``<root>/<kind>/<id>/``); inside it a file keeps a cleaned copy of its name
(letters, digits, ``_`` and ``-`` plus an allowed extension), so importers that pair files by
name (a MetaSchedule database) and job names read as the user's file. Uploads are checked for
an allowed extension, emptiness, undecodable data and a size limit on the decoded bytes;
models also for a pickle or content that is not the model format its extension names.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dashboard.modelfiles import model_problem

DEFAULT_LIMIT = 64 * 1024 * 1024  # bytes, decoded, per upload (all its files together)
MAX_FILES = 20  # files in one upload
MAX_STEM = 60  # characters kept of a file name's stem

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "logs": (".json", ".jsonl", ".log", ".txt"),
    "models": (".onnx", ".tflite", ".keras"),
}
_ID = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class UploadError(ValueError):
    """An upload that cannot be stored; the message says why, for the page."""


@dataclass(frozen=True)
class StoredFile:
    """One stored file: where it is, the name the browser gave it, its size in bytes."""

    path: Path
    name: str
    size: int


@dataclass(frozen=True)
class Upload:
    """The files of one upload, all in one folder; ``id`` names it (32 hex digits)."""

    id: str
    kind: str
    folder: Path
    files: tuple[StoredFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self, text: str) -> str:
        """``text`` with stored paths replaced by the names the user knows."""
        for item in self.files:
            text = text.replace(str(item.path), item.name)
        return text.replace(str(self.folder), "the upload")


def format_size(size: float) -> str:
    """Bytes in words: ``512 bytes``, ``1.5 KiB``, ``64 MiB``."""
    if size < 1024:
        return f"{int(size)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


def display_name(filename: object) -> str:
    """The last part of a browser-given file name, as text (never a path)."""
    text = filename if isinstance(filename, str) else ""
    name = PurePosixPath(text.replace("\\", "/")).name.strip()
    return name[:200] or "upload"


def extension(name: str) -> str:
    """The lower-case extension of a file name (``""`` when it has none)."""
    return PurePosixPath(name).suffix.lower()


def safe_name(filename: object, allowed: Sequence[str]) -> str:
    """A file name made only of safe characters with its (allowed) extension."""
    name = display_name(filename)
    ext = extension(name)
    if ext not in allowed:
        raise UploadError(f"{name}: {_allowed_text(allowed)}")
    stem = _UNSAFE.sub("_", name[: -len(ext)]).strip("_-")[:MAX_STEM] or "upload"
    return f"{stem}{ext}"


def decode(contents: object, name: str, limit: int) -> bytes:
    """The bytes of a ``data:...;base64,`` URL as ``dcc.Upload`` sends it, checked.

    The size limit is applied to the decoded bytes, estimated before decoding so an oversized
    upload is never decoded.
    """
    if not isinstance(contents, str) or not contents:
        raise UploadError(f"{name}: no file content arrived.")
    head, comma, data = contents.partition(",")
    if not comma or not head.startswith("data:") or not head.endswith(";base64"):
        raise UploadError(f"{name}: the upload could not be read (not base64 file data).")
    estimate = len(data) * 3 // 4 - data[-2:].count("=")
    if estimate > limit:
        raise UploadError(too_large(name, estimate, limit))
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{name}: the upload could not be read (damaged base64 data).") from None
    if not raw:
        raise UploadError(f"{name} is empty.")
    if len(raw) > limit:
        raise UploadError(too_large(name, len(raw), limit))
    return raw


def too_large(name: str, size: int, limit: int) -> str:
    return f"{name} is {format_size(size)}; uploads are limited to {format_size(limit)}."


def _allowed_text(allowed: Sequence[str]) -> str:
    listed = ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]
    return f"only {listed} files are accepted here."


def default_folder(store_path: object) -> Path | None:
    """``<db stem>-uploads/`` beside a store file; None for a store without a file."""
    if not isinstance(store_path, (str, Path)) or str(store_path) in ("", ":memory:"):
        return None
    path = Path(store_path)
    return path.parent / f"{path.stem}-uploads"


class UploadFolder:
    """The folder the app owns for uploads; created on the first upload.

    ``root`` None uses a temporary folder, removed again by ``close``.
    """

    def __init__(self, root: str | Path | None = None, *, limit: int = DEFAULT_LIMIT) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"upload limit: must be a positive number of bytes, got {limit!r}")
        self.limit = limit
        self._root = Path(root) if root is not None else None
        self._temporary = root is None
        self._lock = threading.Lock()

    @property
    def limit_text(self) -> str:
        return format_size(self.limit)

    def accept(self, kind: str) -> str:
        """The extensions of ``kind`` as an ``accept`` attribute (``.onnx,.tflite,.keras``)."""
        return ",".join(EXTENSIONS[kind])

    def root(self) -> Path:
        """The folder itself, created when missing."""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="tuneloom-uploads-"))
            self._root.mkdir(parents=True, exist_ok=True)
            return self._root

    def save(self, kind: str, contents: object, filenames: object) -> Upload:
        """Store one upload of ``kind`` (``logs`` or ``models``): one file or several.

        ``contents``/``filenames`` are what ``dcc.Upload`` gives: a string each, or lists.
        Everything is checked before anything is written; raises UploadError.
        """
        allowed = _allowed(kind)
        items = _pairs(contents, filenames)
        _check_count(len(items))
        for _, name in items:
            safe_name(name, allowed)  # a wrong extension is refused before decoding
        return self.store(
            kind, [(given, decode(data, display_name(given), self.limit)) for data, given in items]
        )

    def store(self, kind: str, files: Sequence[tuple[object, bytes]]) -> Upload:
        """Store one upload of ``kind`` from (file name as given, bytes) pairs: names,
        emptiness, the size limit and, for models, the content (``modelfiles``) are all
        checked before anything is written; raises UploadError."""
        allowed = _allowed(kind)
        _check_count(len(files))
        names = _unique([safe_name(given, allowed) for given, _ in files])
        for given, raw in files:
            if not raw:
                raise UploadError(f"{display_name(given)} is empty.")
            if len(raw) > self.limit:
                raise UploadError(too_large(display_name(given), len(raw), self.limit))
        total = sum(len(raw) for _, raw in files)
        if total > self.limit:
            raise UploadError(
                f"These {len(files)} files are {format_size(total)} together; uploads are "
                f"limited to {self.limit_text}."
            )
        if kind == "models":
            for given, raw in files:
                problem = model_problem(display_name(given), raw)
                if problem is not None:
                    raise UploadError(problem)
        upload_id = uuid.uuid4().hex
        stored = []
        try:
            folder = self.root() / kind / upload_id
            folder.mkdir(parents=True)
            for (given, raw), name in zip(files, names, strict=True):
                path = folder / name
                with open(path, "xb") as stream:
                    stream.write(raw)
                stored.append(StoredFile(path, display_name(given), len(raw)))
        except OSError as exc:
            if self._root is not None:
                shutil.rmtree(self._root / kind / upload_id, ignore_errors=True)
            reason = exc.strerror or type(exc).__name__
            raise UploadError(f"The upload could not be stored on the server ({reason}).") from None
        return Upload(upload_id, kind, folder, tuple(stored))

    def find(self, kind: str, upload_id: object) -> Upload:
        """A stored upload by its id; UploadError when there is none (or the id is malformed)."""
        if kind not in EXTENSIONS:
            raise ValueError(f"unknown upload kind {kind!r}")
        if not isinstance(upload_id, str) or not _ID.match(upload_id) or self._root is None:
            raise UploadError("The uploaded file is no longer there: upload it again.")
        folder = self._root / kind / upload_id
        files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
        if not files:
            raise UploadError("The uploaded file is no longer there: upload it again.")
        return Upload(
            upload_id, kind, folder, tuple(StoredFile(p, p.name, p.stat().st_size) for p in files)
        )

    def contains(self, path: str | Path) -> bool:
        """Whether ``path`` lies inside this folder."""
        if self._root is None:
            return False
        try:
            Path(path).resolve().relative_to(self._root.resolve())
        except ValueError:
            return False
        return True

    def discard(self, upload: Upload) -> None:
        """Remove an upload's files (e.g. a log that could not be imported)."""
        if self.contains(upload.folder) and upload.folder.parent.parent == self._root:
            shutil.rmtree(upload.folder, ignore_errors=True)

    def close(self) -> None:
        """Remove the folder when it is a temporary one."""
        with self._lock:
            if self._temporary and self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def __repr__(self) -> str:
        where = "temporary" if self._root is None else str(self._root)
        return f"UploadFolder({where}, limit={self.limit_text})"


def _allowed(kind: str) -> tuple[str, ...]:
    allowed = EXTENSIONS.get(kind)
    if allowed is None:
        raise ValueError(f"unknown upload kind {kind!r} (kinds: {', '.join(EXTENSIONS)})")
    return allowed


def _check_count(count: int) -> None:
    if not count:
        raise UploadError("No file was uploaded.")
    if count > MAX_FILES:
        raise UploadError(f"{count} files at once; upload at most {MAX_FILES}.")


def _pairs(contents: object, filenames: object) -> list[tuple[object, object]]:
    if contents is None:
        return []
    if isinstance(contents, str):
        return [(contents, filenames)]
    if not isinstance(contents, list):
        raise UploadError("The upload could not be read (unexpected data).")
    names = filenames if isinstance(filenames, list) else []
    return [(c, names[i] if i < len(names) else None) for i, c in enumerate(contents)]


def _unique(names: list[str]) -> list[str]:
    """Names with ``_2``, ``_3``... added to repeats (keeping the extension)."""
    seen: set[str] = set()
    out = []
    for name in names:
        stem, ext = name[: -len(extension(name))], extension(name)
        candidate, n = name, 2
        while candidate.lower() in seen:
            candidate = f"{stem}_{n}{ext}"
            n += 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out
