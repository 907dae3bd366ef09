"""The app factory, its local assets, and `tuneloom serve` end to end (no browser)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore
from dashboard.app import ASSETS, create_app, parts
from dashboard.server import start
from tests.dashboard.synthetic import synthetic_history
from tuneloom.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_index_loads_only_local_scripts(sample_store: MemoryStore) -> None:
    app = create_app(sample_store, live=False)
    client = app.server.test_client()
    html = client.get("/").get_data(as_text=True)
    sources = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    links = re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert all(link.startswith("/") for link in links), links
    assert any("socket.io.min.js" in s for s in sources)
    assert any("tuneloom_live.js" in s for s in sources)
    assert client.get("/assets/socket.io.min.js").status_code == 200


def test_vendored_socket_io_keeps_its_licence_header() -> None:
    head = (ASSETS / "socket.io.min.js").read_text()[:200]
    assert "Socket.IO v4" in head and "MIT License" in head
    assert (ASSETS / "socket.io-client.LICENSE.txt").exists()


def test_layout_names_every_page_and_the_live_start(sample_store: MemoryStore) -> None:
    app = create_app(sample_store)
    layout = app.server.test_client().get("/_dash-layout").get_json()
    text = json.dumps(layout)
    for page in ("Timeline", "Convergence", "Inspector", "Records", "Jobs"):
        assert page in text
    assert f'"pos": {sample_store.last_pos()}' in text
    assert parts(app).bridge is not None


def test_routing_callback_renders_each_page(sample_store: MemoryStore) -> None:
    app = create_app(sample_store, live=False)
    client = app.server.test_client()
    client.get("/_dash-layout")
    deps = client.get("/_dash-dependencies").get_json()
    route = next(d for d in deps if d["output"].startswith("..page.children"))
    for path, marker in [("/", "timeline-graph"), ("/jobs", "jobs-table"), ("/nope", "Not found")]:
        body = {
            "output": route["output"],
            "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                        for o in route["output"].strip(".").split("...")],
            "inputs": [{"id": "url", "property": "pathname", "value": path}],
            "changedPropIds": ["url.pathname"],
            "state": [{"id": "page-shown", "property": "data", "value": None}],
        }  # fmt: skip
        response = client.post("/_dash-update-component", json=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert marker in response.get_data(as_text=True)


def test_first_layout_renders_the_requested_page(sample_store: MemoryStore) -> None:
    app = create_app(sample_store, live=False)
    client = app.server.test_client()
    jobs = client.get("/_dash-layout", headers={"Referer": "http://x/jobs"}).get_data(True)
    assert "jobs-table" in jobs and "timeline-graph" not in jobs
    plain = client.get("/_dash-layout").get_data(as_text=True)
    assert "jobs-table" not in plain and "timeline-graph" not in plain


def test_background_server_serves_and_stops(sample_store: MemoryStore) -> None:
    running = start(create_app(sample_store, live=False))
    try:
        with urllib.request.urlopen(running.url + "/", timeout=10) as response:
            assert response.status == 200
    finally:
        running.stop()


def _store_file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    store = SQLiteStore(path)
    synthetic_history(store, jobs=1, iterations=1)
    store.close()
    return path


@pytest.mark.slow
def test_serve_command_serves_a_store_until_interrupted(tmp_path: Path) -> None:
    db = _store_file(tmp_path)
    before = db.read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneloom", "serve", "--db", str(db), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://\S+/)", line).group(1)
        with urllib.request.urlopen(url + "_dash-layout", timeout=20) as response:
            assert "timeline" in response.read().decode().lower()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a loaded machine exits slowly
    assert proc.returncode == 0, err
    assert db.read_bytes() == before  # viewing never writes the store


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--db", "{missing}"], "no tuneloom store there"),
        (["--db", "{db}", "--port", "70000"], "--port must be between 0 and 65535"),
        (["--db", "{db}", "--databases", "{missing}"], "--databases: no such folder"),
        (["--db", "{text}"], "not a tuneloom store"),
    ],
)
def test_serve_reports_bad_input_in_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 100)
    names = {"missing": str(tmp_path / "none"), "db": str(_store_file(tmp_path)), "text": str(text)}
    assert main(["serve", *[a.format(**names) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert text.read_text() == "hello\n" * 100


def test_the_server_caps_malloc_arenas_on_glibc() -> None:
    import platform

    from dashboard.server import limit_malloc_arenas

    libc, _ = platform.libc_ver()
    assert limit_malloc_arenas() is (libc == "glibc")
