"""The client commands (submit, jobs, pause, resume, cancel, priority, wait, fetch) end to end
against a real HTTP server on a free loopback port, with a fake tuner behind its API."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from collectors.jobs import JobArtifact, JobSpec, JobState
from collectors.sqlite_store import SQLiteStore
from dashboard import api
from dashboard.access import Access
from dashboard.app import create_app
from dashboard.server import RunningDashboard, start
from tests.dashboard.fake_tuner import FakeTuner
from tests.tuneloom.server_process import free_port
from tuneloom.cli import main
from tuneloom.client import ArchiveError, ServerClient, ServerError

ONNX = b"\x08\x08\x12\x08tuneloom" + bytes(range(256))


@dataclass
class Served:
    url: str
    tuner: FakeTuner
    uploads: Path


@pytest.fixture(autouse=True)
def no_server_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNELOOM_SERVER", raising=False)
    monkeypatch.delenv("TUNELOOM_TOKEN", raising=False)


def start_server(folder: Path, **options: Any) -> tuple[RunningDashboard, SQLiteStore, Served]:
    """A server on a free loopback port over a SQLite store and a fake tuner."""
    folder.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(folder / "store.db")
    tuner = FakeTuner(folder / "runs")
    app = create_app(store, tuner, live=False, uploads_dir=folder / "up", **options)
    running = start(app)
    return running, store, Served(running.url, tuner, folder / "up")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the module's tests (each starts with no jobs, see ``server``)."""
    running, store, served = start_server(tmp_path_factory.mktemp("server"))
    yield served
    running.stop()
    store.close()


@pytest.fixture
def server(shared: Served, tmp_path: Path) -> Served:
    """The shared server with a tuner that knows no jobs yet."""
    tuner = shared.tuner
    tuner.specs.clear()
    tuner.infos.clear()
    tuner.on_list = None
    tuner.runs = tmp_path / "runs"
    return shared


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start servers of their own (stopped after the test), with ``create_app`` options."""
    running: list[tuple[RunningDashboard, SQLiteStore]] = []

    def start_one(**options: Any) -> Served:
        dashboard, store, served = start_server(tmp_path / f"server{len(running)}", **options)
        running.append((dashboard, store))
        return served

    yield start_one
    for dashboard, store in running:
        dashboard.stop()
        store.close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def on(served: Served, *argv: str) -> list[str]:
    """``argv`` with ``--server`` naming ``served`` after the command name."""
    return [argv[0], "--server", served.url, *argv[1:]]


# --- submit and jobs --------------------------------------------------------------------


def test_submit_sends_the_spec_and_prints_the_new_id(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, *on(server, "submit", "--workload", "matmul:64", "--workload", "dense:1x8x8",
                    "--trials", "40", "--trials-per-task", "30", "--priority", "5",
                    "--name", "pair", "--target", "llvm -num-cores=2", "--device", "rpc:pi",
                    "--allocator", "uniform"),
    )  # fmt: skip
    assert (code, out, err) == (0, "j1\n", "")
    spec = server.tuner.specs["j1"]
    assert spec.workloads == ("matmul:64", "dense:1x8x8") and spec.name == "pair"
    assert (spec.trials, spec.trials_per_task, spec.priority) == (40, 30, 5)
    assert (spec.target, spec.device, spec.allocator) == ("llvm -num-cores=2", "rpc:pi", "uniform")
    assert spec.model is None and spec.warm_start is None
    code, out, _ = cli(capsys, *on(server, "submit", "zoo:cnn", "--json"))
    assert code == 0 and json.loads(out) == {"id": "j2"}
    assert server.tuner.specs["j2"].model == "zoo:cnn"


def test_a_local_model_file_is_uploaded(
    server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "tiny net.onnx"
    model.write_bytes(ONNX)
    code, out, _ = cli(
        capsys, *on(server, "submit", str(model), "--input-shape", "x:1x3x8x8", "--trials", "4")
    )
    assert (code, out) == (0, "j1\n")
    spec = server.tuner.specs["j1"]
    stored = Path(spec.model)
    assert stored.read_bytes() == ONNX and stored.parent.parent == server.uploads / "models"
    assert spec.name == "tiny net.onnx" and spec.input_shapes == {"x": (1, 3, 8, 8)}


def test_submit_mistakes_are_one_line_and_exit_2(
    server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pickled = tmp_path / "model.onnx"
    pickled.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94.")
    cases = [
        (["submit"], "nothing to tune: give a MODEL"),
        (["submit", str(tmp_path / "gone.onnx")], f"no such file: {tmp_path / 'gone.onnx'}"),
        (["submit", str(tmp_path)], "is not a file: upload a .onnx, .tflite or .keras file"),
        (["submit", str(pickled)], "model.onnx is a Python pickle; pickles are never loaded"),
        (["submit", "zoo:gpt"], "Unknown zoo model 'zoo:gpt'"),
        (["submit", "--workload", "bad:1"], "unknown workload 'bad:1'"),
        (["submit", "--workload", "m", "--warm-start", "library"], "has no schedule library"),
        (["submit", "--workload", "m", "--trials", "0"], "--trials must be"),
    ]
    for argv, expected in cases:
        code, out, err = cli(capsys, *on(server, *argv))
        assert code == 2 and out == "", argv
        assert err.startswith(f"tuneloom {argv[0]}: error: ") and err.count("\n") == 1, err
        assert expected in err, (argv, err)
    assert server.tuner.specs == {}


def test_jobs_prints_a_table_and_json(server: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, *on(server, "jobs")) == (0, "no jobs\n", "")
    client = ServerClient(server.url)
    client.submit(JobSpec(workloads=("matmul:64",), trials=8, name="small"))
    client.submit(JobSpec(model="zoo:mlp", priority=2))
    server.tuner.start("j1")
    server.tuner.measure("j1", 3)
    server.tuner.fail("j2", "out of memory")
    code, out, _ = cli(capsys, *on(server, "jobs"))
    assert code == 0
    assert out.splitlines() == [
        "ID  NAME     STATE    PRIORITY  TRIALS  DETAIL",
        "j1  small    running  0         3/8",
        "j2  zoo:mlp  failed   2         0/32    out of memory",
    ]
    code, out, _ = cli(capsys, *on(server, "jobs", "--json"))
    assert json.loads(out) == [info.to_dict() for info in server.tuner.list()]


# --- steering ---------------------------------------------------------------------------


def test_pause_resume_priority_and_cancel_say_what_happened(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, *on(server, "submit", "--workload", "matmul:64", "--name", "mm"))
    server.tuner.start("j1")
    assert cli(capsys, *on(server, "pause", "j1", "--reason", "lunch")) == (
        0, "paused j1 (mm)\n", ""
    )  # fmt: skip
    assert server.tuner.infos["j1"].detail == "lunch"
    assert cli(capsys, *on(server, "resume", "j1"))[1] == "resumed j1 (mm): running\n"
    assert cli(capsys, *on(server, "priority", "j1", "9"))[1] == (
        "set the priority of j1 (mm) to 9\n"
    )
    code, out, _ = cli(capsys, *on(server, "cancel", "j1", "--json"))
    assert code == 0 and json.loads(out) == server.tuner.infos["j1"].to_dict()
    assert json.loads(out)["state"] == "cancelled" and json.loads(out)["priority"] == 9
    code, out, err = cli(capsys, *on(server, "cancel", "j1"))
    assert (code, out) == (2, "")
    assert err == "tuneloom cancel: error: job j1 has already ended (cancelled)\n"
    code, _, err = cli(capsys, *on(server, "pause", "j7"))
    assert (code, err) == (2, "tuneloom pause: error: unknown job 'j7'\n")


def test_changes_carry_the_token_from_the_option_or_the_environment(
    serve: Callable[..., Served],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = serve(access=Access(host="0.0.0.0", token="s3cret"))
    code, _, err = cli(capsys, *on(server, "submit", "--workload", "m"))
    assert code == 2 and "Job controls need the access token: pass --token" in err
    code, _, err = cli(capsys, *on(server, "submit", "--workload", "m", "--token", "x"))
    assert (code, err) == (2, "tuneloom submit: error: The access token is not valid.\n")
    assert cli(capsys, *on(server, "submit", "--workload", "m", "--token", "s3cret"))[:2] == (
        0, "j1\n"
    )  # fmt: skip
    monkeypatch.setenv("TUNELOOM_TOKEN", "s3cret")
    monkeypatch.setenv("TUNELOOM_SERVER", server.url)
    assert cli(capsys, "pause", "j1")[:2] == (0, "paused j1 (m)\n")
    assert cli(capsys, "jobs", "--json")[0] == 0  # viewing never needed it


# --- wait -------------------------------------------------------------------------------


def scripted(fail: dict[str, str] | None = None, step: int = 4) -> Callable[[FakeTuner], None]:
    """A tuner that, each time it is asked, runs its jobs ``step`` trials further and ends
    each when its budget is spent (failing those named in ``fail``)."""

    def advance(tuner: FakeTuner) -> None:
        for job, info in list(tuner.infos.items()):
            if info.state == JobState.QUEUED:
                tuner.start(job)
            elif info.state == JobState.RUNNING:
                tuner.measure(job, step)
                if tuner.infos[job].trials_done >= info.trials_total:
                    if fail and job in fail:
                        tuner.fail(job, fail[job])
                    else:
                        tuner.finish(job)

    return advance


def test_wait_exits_0_once_every_job_finished(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    for trials in ("8", "12"):
        cli(capsys, *on(server, "submit", "--workload", "matmul:64", "--trials", trials))
    server.tuner.on_list = scripted()
    code, out, err = cli(capsys, *on(server, "wait", "j1", "j2", "--poll", "0.01"))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "j1  finished  8/8 trials  matmul:64",
        "j2  finished  12/12 trials  matmul:64",
    ]


def test_wait_exits_1_naming_the_job_that_failed_and_why(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        cli(capsys, *on(server, "submit", "--workload", "matmul:64", "--trials", "8"))
    server.tuner.on_list = scripted(fail={"j2": "the device went away"})
    code, out, _ = cli(capsys, *on(server, "wait", "j1", "j2", "--poll", "0.01", "--json"))
    assert code == 1
    states = {item["id"]: (item["state"], item["detail"]) for item in json.loads(out)}
    assert states == {"j1": ("finished", None), "j2": ("failed", "the device went away")}
    server.tuner.on_list = None
    cli(capsys, *on(server, "submit", "--workload", "matmul:64", "--trials", "8"))
    server.tuner.cancel("j3")
    code, out, _ = cli(capsys, *on(server, "wait", "j3"))
    assert code == 1 and out == "j3  cancelled  0/8 trials  matmul:64: cancelled by a user\n"


def test_wait_gives_up_with_exit_3_when_the_timeout_runs_out(
    server: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, *on(server, "submit", "--workload", "matmul:64", "--trials", "8"))
    server.tuner.start("j1")
    code, out, err = cli(capsys, *on(server, "wait", "j1", "--timeout", "0.2", "--poll", "0.05"))
    assert code == 3 and out == "j1  running  0/8 trials  matmul:64\n"
    assert err == ("tuneloom wait: timed out after 0.2 s; not ended: j1 (running, 0/8 trials)\n")
    code, _, err = cli(capsys, *on(server, "wait", "j1", "j9"))
    assert (code, err) == (2, "tuneloom wait: error: no job 'j9'\n")


# --- fetch ------------------------------------------------------------------------------


def test_fetch_extracts_the_compiled_model_and_the_database(
    server: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, *on(server, "submit", "zoo:cnn"))
    code, _, err = cli(capsys, *on(server, "fetch", "j1", "--out", str(tmp_path / "out")))
    assert code == 2 and "j1 is queued: it has no files until it finishes" in err
    server.tuner.finish("j1")
    out_dir = tmp_path / "out"
    code, out, _ = cli(capsys, *on(server, "fetch", "j1", "--out", str(out_dir)))
    assert code == 0
    assert out.splitlines() == [
        f"fetched j1 into {out_dir}",
        f"  compiled model: {out_dir / 'compiled'}",
        f"  database: {out_dir / 'database'}",
    ]
    files = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    assert files == [
        "compiled/model.so", "compiled/params/weights.npz",
        "database/database_tuning_record.json", "database/database_workload.json",
    ]  # fmt: skip
    assert (out_dir / "compiled" / "model.so").read_bytes() == b"\x7fELF library"
    code, _, err = cli(capsys, *on(server, "fetch", "j1", "--out", str(out_dir)))
    assert code == 2 and f"{out_dir / 'compiled'} already exists" in err
    cli(capsys, *on(server, "submit", "--workload", "matmul:64"))
    server.tuner.finish("j2")
    code, out, _ = cli(capsys, *on(server, "fetch", "j2", "--out", str(tmp_path / "o2"), "--json"))
    assert code == 0 and json.loads(out) == {
        "job": "j2", "out": str(tmp_path / "o2"), "compiled": None,
        "database": str(tmp_path / "o2" / "database"),
    }  # fmt: skip


def evil_archive(kind: str) -> Callable[[JobArtifact, BinaryIO], None]:
    """A ``write_archive`` that sends a member the client must refuse."""

    def write(_artifact: JobArtifact, stream: BinaryIO) -> None:
        with tarfile.open(fileobj=stream, mode="w:gz") as tar:
            good = tarfile.TarInfo("database/database_workload.json")
            good.size = 2
            tar.addfile(good, io.BytesIO(b"[]"))
            names = {"dotdot": "database/../../escaped.txt", "absolute": "/tmp/escaped.txt"}
            bad = tarfile.TarInfo(names.get(kind, "database/x"))
            if kind == "symlink":
                bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            elif kind == "hardlink":
                bad.type, bad.linkname = tarfile.LNKTYPE, "database/database_workload.json"
            elif kind == "device":
                bad.type = tarfile.CHRTYPE
            if kind in ("dotdot", "absolute"):
                bad.size = 4
                tar.addfile(bad, io.BytesIO(b"evil"))
            else:
                tar.addfile(bad)

    return write


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("dotdot", "'database/../../escaped.txt' leaves the folder (..)"),
        ("absolute", "'/tmp/escaped.txt' has an absolute path"),
        ("symlink", "'database/x' is a link"),
        ("hardlink", "'database/x' is a link"),
        ("device", "'database/x' is a device or another special file"),
    ],
)
def test_fetch_refuses_an_archive_with_an_unsafe_member_and_writes_nothing(
    server: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    why: str,
) -> None:
    cli(capsys, *on(server, "submit", "--workload", "matmul:64"))
    server.tuner.finish("j1")
    monkeypatch.setattr(api, "write_archive", evil_archive(kind))
    out_dir = tmp_path / "deep" / "out"
    code, out, err = cli(capsys, *on(server, "fetch", "j1", "--out", str(out_dir)))
    assert (code, out) == (2, "")
    assert err == f"tuneloom fetch: error: refused the archive of job j1: member {why}\n"
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped.txt").exists()
    with pytest.raises(ArchiveError):
        ServerClient(server.url).fetch("j1", out_dir)


# --- no server, or not ours ---------------------------------------------------------------


def test_no_server_is_one_line_naming_the_url_and_how_to_start_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for argv in (["jobs"], ["submit", "zoo:cnn"], ["wait", "j1"], ["fetch", "j1", "--out", "o"]):
        code, out, err = cli(capsys, argv[0], "--server", url, *argv[1:])
        assert (code, out) == (2, "")
        assert err == (
            f"tuneloom {argv[0]}: error: no tuneloom server at {url}: start one with "
            "`tuneloom server --db PATH`\n"
        )
    monkeypatch.setenv("TUNELOOM_SERVER", url + "/")
    assert cli(capsys, "pause", "j1")[2].startswith(
        f"tuneloom pause: error: no tuneloom server at {url}:"
    )
    unknown_host = "http://no-such-host.invalid:8050"
    code, _, err = cli(capsys, "jobs", "--server", unknown_host)
    assert (code, err) == (
        2,
        f"tuneloom jobs: error: no tuneloom server at {unknown_host}: start one with "
        "`tuneloom server --db PATH`\n",
    )


def test_a_server_that_is_not_tuneloom_is_said_so(server: Served) -> None:
    client = ServerClient(server.url + "/not-the-api")
    with pytest.raises(ServerError, match="not JSON: is it a tuneloom server"):
        client.jobs()
    with pytest.raises(ServerError) as raised:
        ServerClient(server.url).job("j404")
    assert (raised.value.status, raised.value.message) == (404, "no job 'j404'")
    assert ServerClient(server.url).health()["controls"] is True
    assert ServerClient(server.url).jobs() == []
