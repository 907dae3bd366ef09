"""An HTTP client of a tuneloom server's JSON API (``/api/v1``), on the standard library.

``ServerClient(url, token)`` lists, submits, steers and fetches jobs. A server that is not
there raises ``ServerUnavailable``; a request the server refuses raises ``ServerError`` with
its HTTP status and the server's one-line reason. The URL defaults to ``$TUNELOOM_SERVER``,
else ``http://127.0.0.1:8050``; the token to ``$TUNELOOM_TOKEN``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import shutil
import ssl
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import quote, urlsplit

from collectors.jobs import JobInfo, JobSpec

DEFAULT_URL = "http://127.0.0.1:8050"
SERVER_ENV = "TUNELOOM_SERVER"
TOKEN_ENV = "TUNELOOM_TOKEN"
API = "/api/v1"
ARCHIVE_FOLDERS = ("compiled", "database")  # what a job's archive holds, at its top


class ClientError(Exception):
    """A request to a tuneloom server that did not succeed; the message is one line."""


class ServerUnavailable(ClientError):
    """No tuneloom server answers at the URL (connection refused, unknown host, timeout)."""

    def __init__(self, url: str, message: str | None = None) -> None:
        super().__init__(
            message or f"no tuneloom server at {url}: start one with `tuneloom server --db PATH`"
        )
        self.url = url


class ServerError(ClientError):
    """The server refused a request: its HTTP ``status`` and its ``error`` line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ArchiveError(ClientError):
    """A job archive that is damaged or holds something that must not be extracted."""


def server_url(given: str | None = None) -> str:
    """``given``, else ``$TUNELOOM_SERVER``, else ``http://127.0.0.1:8050`` (no trailing /)."""
    url = (given or os.environ.get(SERVER_ENV, "").strip() or DEFAULT_URL).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"the server URL must look like http://HOST:PORT, got {url!r}")
    return url


def server_token(given: str | None = None) -> str | None:
    """``given``, else ``$TUNELOOM_TOKEN`` (None when neither is set)."""
    return given or os.environ.get(TOKEN_ENV, "").strip() or None


class ServerClient:
    """The JSON API of the tuneloom server at ``url`` (see ``server_url`` for the default).

    ``token`` is sent with every request (changes need it when the server was started with
    one, or listens on a non-loopback address). ``timeout`` bounds each request in seconds.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        self.url = server_url(url)
        self.token = server_token(token)
        self.timeout = timeout
        handlers: list[Any] = []
        if _is_loopback(urlsplit(self.url).hostname or ""):
            handlers.append(urllib.request.ProxyHandler({}))  # never send loopback to a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"ServerClient({self.url!r})"

    def health(self) -> dict[str, Any]:
        """What the server says of itself: status, version, number of jobs, controls..."""
        return self._json("GET", "/health")

    def jobs(self) -> list[JobInfo]:
        """Every job the server knows."""
        return [JobInfo.from_dict(item) for item in self._json("GET", "/jobs")]

    def job(self, job: str) -> JobInfo:
        """One job (ServerError 404 when the server does not know it)."""
        return JobInfo.from_dict(self._json("GET", _job_path(job)))

    def submit(self, spec: JobSpec, model_file: str | Path | None = None) -> str:
        """Submit ``spec``; returns the new job's id. With ``model_file`` that local file is
        uploaded as the job's model (``spec.model`` is then ignored); a zoo model
        (``zoo:NAME``) goes in the spec itself."""
        data = spec.to_dict()
        if model_file is None:
            return self._json("POST", "/jobs", data)["id"]
        path = Path(model_file)
        data.pop("model", None)
        raw = path.read_bytes()
        body, content_type = _multipart({"spec": json.dumps(data)}, {"model": (path.name, raw)})
        return self._json("POST", "/jobs", body=body, content_type=content_type)["id"]

    def pause(self, job: str, reason: str | None = None) -> JobInfo:
        """Pause a queued or running job; returns it as it is now."""
        body = {"reason": reason} if reason else {}
        return JobInfo.from_dict(self._json("POST", _job_path(job, "pause"), body))

    def resume(self, job: str) -> JobInfo:
        """Resume a paused job."""
        return JobInfo.from_dict(self._json("POST", _job_path(job, "resume"), {}))

    def cancel(self, job: str) -> JobInfo:
        """Cancel a job that has not ended."""
        return JobInfo.from_dict(self._json("POST", _job_path(job, "cancel"), {}))

    def priority(self, job: str, priority: int) -> JobInfo:
        """Give a job a new priority (higher runs first)."""
        body = {"priority": priority}
        return JobInfo.from_dict(self._json("POST", _job_path(job, "priority"), body))

    def fetch(self, job: str, out_dir: str | Path) -> Path:
        """Download a finished job's archive and extract it into ``out_dir``: ``compiled/``
        (a model job's compiled model) and ``database/`` (its MetaSchedule database).

        The archive is checked first: absolute paths, ``..``, links, devices or anything
        outside those two folders refuse it whole (ArchiveError), as does an ``out_dir``
        that already holds one of them. Returns ``out_dir``.
        """
        out = Path(out_dir)
        with tempfile.TemporaryFile() as stream:
            with self._open("GET", _job_path(job, "artifact")) as response:
                try:
                    shutil.copyfileobj(response, stream, 1 << 20)
                except (OSError, http.client.HTTPException) as exc:
                    raise self._lost(exc) from None
            stream.seek(0)
            extract_archive(stream, out, what=f"the archive of job {job}")
        return out

    # --- requests ---------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        if data is not None:
            body, content_type = json.dumps(data).encode(), "application/json"
        with self._open(method, path, body, content_type) as response:
            try:
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self._lost(exc) from None
            status = response.status
        try:
            return json.loads(raw)
        except ValueError:
            message = f"{self.url} answered {method} {API}{path} with something that is not JSON"
            raise ServerError(status, f"{message}: is it a tuneloom server?") from None

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        request = urllib.request.Request(self.url + API + path, data=body, method=method)
        request.add_header("Accept", "application/json")
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            return self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise ServerError(exc.code, self._error_line(exc)) from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise self._timed_out() from None
            if isinstance(exc.reason, ssl.SSLError):
                why = _one_line(exc.reason)
                raise ServerUnavailable(
                    self.url, f"no TLS connection to {self.url}: {why}"
                ) from None
            raise ServerUnavailable(self.url) from None
        except TimeoutError:
            raise self._timed_out() from None
        except (OSError, http.client.HTTPException) as exc:
            raise self._lost(exc) from None

    def _error_line(self, exc: urllib.error.HTTPError) -> str:
        try:
            error = json.loads(exc.read(64 * 1024)).get("error")
        except (ValueError, AttributeError, OSError, http.client.HTTPException):
            error = None
        if isinstance(error, str) and error:
            return error
        return f"{self.url} answered HTTP {exc.code} {exc.reason}: is it a tuneloom server?"

    def _timed_out(self) -> ServerUnavailable:
        return ServerUnavailable(
            self.url, f"the tuneloom server at {self.url} did not answer within {self.timeout:g} s"
        )

    def _lost(self, exc: BaseException) -> ServerUnavailable:
        if isinstance(exc, TimeoutError):
            return self._timed_out()
        return ServerUnavailable(
            self.url,
            f"lost the connection to the tuneloom server at {self.url} ({_one_line(exc)})",
        )


def extract_archive(stream: IO[bytes], out_dir: Path, *, what: str = "the archive") -> None:
    """Extract a job archive (gzipped tar) into ``out_dir`` after checking every member:
    only folders and regular files under ``compiled/`` or ``database/``, no absolute path,
    no ``..``; ArchiveError names the first member refused, and nothing is written then."""
    damaged = (tarfile.TarError, EOFError, OSError, zlib.error)
    try:
        tar = tarfile.open(fileobj=stream, mode="r:gz")  # noqa: SIM115 - closed below
    except damaged as exc:
        raise ArchiveError(f"{what} is damaged ({_one_line(exc)})") from None
    with tar:
        try:
            members = tar.getmembers()
        except damaged as exc:
            raise ArchiveError(f"{what} is damaged ({_one_line(exc)})") from None
        for member in members:
            problem = member_problem(member)
            if problem is not None:
                raise ArchiveError(f"refused {what}: member {member.name!r} {problem}")
        for top in sorted({PurePosixPath(m.name).parts[0] for m in members}):
            if (out_dir / top).exists():
                raise ArchiveError(
                    f"{out_dir / top} already exists: fetch into another folder or remove it"
                )
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            tar.extractall(out_dir, members=members, filter="data")
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{what} is damaged ({_one_line(exc)})") from None
        except OSError as exc:
            raise ClientError(
                f"could not extract {what} into {out_dir}: {_one_line(exc)}"
            ) from None


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why one archive member must not be extracted, or None."""
    name = member.name
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts:
        return "has no name"
    if ".." in parts:
        return "leaves the folder (..)"
    if member.issym() or member.islnk():
        return "is a link"
    if not (member.isfile() or member.isdir()):
        return "is a device or another special file"
    if parts[0] not in ARCHIVE_FOLDERS:
        return f"is outside {' and '.join(f'{f}/' for f in ARCHIVE_FOLDERS)}"
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _job_path(job: str, action: str | None = None) -> str:
    path = f"/jobs/{quote(job, safe='')}"
    return f"{path}/{action}" if action else path


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, text in fields.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: application/json; charset=utf-8\r\n\r\n".encode()
        )
        chunks.append(text.encode() + b"\r\n")
    for name, (filename, raw) in files.items():
        safe = filename.replace('"', "%22").replace("\r", "").replace("\n", "")
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        chunks.append(raw + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _is_loopback(host: str) -> bool:
    if host.rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
