"""The JSON API under /api/v1 (Flask test client): every endpoint, its errors, the token rule,
model uploads and job archives; and the Jobs page's download link (also in the browser)."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from collectors.events import JobEvent, RecordEvent
from collectors.jobs import JobInfo, JobSpec
from collectors.sqlite_store import SQLiteStore
from dashboard import api
from dashboard.access import Access
from dashboard.app import create_app, parts
from dashboard.pages import jobs as jobs_page
from tests.dashboard.browser import served
from tests.dashboard.fake_tuner import FakeTuner, ListOnlyTuner

ONNX = b"\x08\x08\x12\x08tuneloom" + bytes(range(256))  # starts as an ONNX file does
READ_ONLY = "this dashboard runs no tuner (read-only); start `tuneloom server --db PATH`"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()


@pytest.fixture
def tuner(tmp_path: Path) -> FakeTuner:
    return FakeTuner(tmp_path / "runs")


def make_client(store: SQLiteStore, control: Any, tmp_path: Path, **options: Any) -> Any:
    app = create_app(store, control, live=False, uploads_dir=tmp_path / "up", **options)
    return app.server.test_client()


@pytest.fixture
def client(store: SQLiteStore, tuner: FakeTuner, tmp_path: Path) -> Any:
    return make_client(store, tuner, tmp_path)


def submit(client: Any, **spec: Any) -> str:
    response = client.post("/api/v1/jobs", json={"workloads": ["matmul:64"], **spec})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def error(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def upload(client: Any, spec: dict[str, Any], name: str, raw: bytes, **headers: str) -> Any:
    return client.post(
        "/api/v1/jobs",
        data={"spec": json.dumps(spec), "model": (io.BytesIO(raw), name)},
        content_type="multipart/form-data",
        headers=headers,
    )


def stored_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- viewing ----------------------------------------------------------------------------


def test_health_counts_jobs_and_adds_the_servers_status(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path)
    body = client.get("/api/v1/health").get_json()
    assert body == {"status": "ok", "version": api.version(), "jobs": 0, "controls": True}
    assert body["version"] == "0.1.0"
    submit(client)
    assert client.get("/api/v1/health").get_json()["jobs"] == 1
    refusing = make_client(
        store, tuner, tmp_path,
        status=lambda: {"accepting": False, "reason": "store cannot be written: disk full"},
    )  # fmt: skip
    body = refusing.get("/api/v1/health").get_json()
    assert body["accepting"] is False and body["reason"].endswith("disk full")
    assert body["status"] == "ok" and body["jobs"] == 1


def test_jobs_are_listed_and_looked_up_as_the_tuner_reports_them(
    client: Any, tuner: FakeTuner
) -> None:
    assert client.get("/api/v1/jobs").get_json() == []
    first = submit(client, trials=8, priority=3, name="mm")
    second = submit(client, model="zoo:cnn")
    tuner.start(first)
    tuner.measure(first, 5)
    listed = client.get("/api/v1/jobs").get_json()
    assert [JobInfo.from_dict(item) for item in listed] == tuner.list()
    one = client.get(f"/api/v1/jobs/{first}").get_json()
    assert one["state"] == "running" and one["trials_done"] == 5 and one["trials_total"] == 8
    assert one["name"] == "mm" and one["priority"] == 3 and one["tasks"] == ["matmul:64"]
    assert client.get(f"/api/v1/jobs/{second}").get_json()["model"] == "zoo:cnn"
    assert error(client.get("/api/v1/jobs/nope"), 404) == "no job 'nope'"


def test_a_read_only_dashboard_replays_jobs_from_the_store_and_refuses_changes(
    store: SQLiteStore, tmp_path: Path
) -> None:
    store.append(
        [
            JobEvent(source="t", seq=1, ts=1.0, job="a", change="submitted", priority=2,
                     name="matmul job", trials=8, tasks=("m1", "m2"), target="llvm"),
            JobEvent(source="t", seq=2, ts=2.0, job="a", change="started"),
            JobEvent(source="t", seq=3, ts=3.0, job="b", change="submitted", model="zoo:mlp"),
            JobEvent(source="t", seq=4, ts=4.0, job="b", change="failed", detail="oom"),
            *[RecordEvent(source="t", seq=10 + i, ts=5.0, job="a", task="m1", candidate=i,
                          run_secs=(1e-3,)) for i in range(3)],
        ]
    )  # fmt: skip
    client = make_client(store, None, tmp_path)
    health = client.get("/api/v1/health").get_json()
    assert health["controls"] is False and health["jobs"] == 2
    a, b = client.get("/api/v1/jobs").get_json()
    assert a == {
        "id": "a", "name": "matmul job", "state": "running", "priority": 2, "target": "llvm",
        "tasks": ["m1", "m2"], "trials_done": 3, "trials_total": 8, "detail": None,
        "model": None,
    }  # fmt: skip
    assert b["name"] == "zoo:mlp" and b["state"] == "failed" and b["detail"] == "oom"
    assert b["trials_done"] == 0 and b["trials_total"] == 0
    assert client.get("/api/v1/jobs/b").get_json() == b
    error(client.get("/api/v1/jobs/c"), 404)
    for path in ["jobs", "jobs/a/pause", "jobs/a/resume", "jobs/a/cancel", "jobs/a/priority"]:
        assert error(client.post(f"/api/v1/{path}", json={"priority": 1}), 503) == READ_ONLY
    assert error(client.get("/api/v1/jobs/a/artifact"), 503) == READ_ONLY


def test_unknown_endpoints_answer_json_not_the_dashboard_page(client: Any) -> None:
    assert error(client.get("/api/v1/nothing/here"), 404) == (
        "no API endpoint GET /api/v1/nothing/here"
    )
    assert "no API endpoint" in error(client.delete("/api/v1/jobs"), 404)
    assert client.get("/jobs").status_code == 200  # the page itself is still the page


# --- submitting -------------------------------------------------------------------------


def test_a_json_spec_is_submitted_through_the_control(client: Any, tuner: FakeTuner) -> None:
    response = client.post(
        "/api/v1/jobs",
        json={"workloads": ["matmul:64", "dense:1x8x8"], "trials": 16, "priority": -2,
              "allocator": "uniform", "name": "two", "device": "rpc:pi"},
    )  # fmt: skip
    assert response.status_code == 201 and response.get_json() == {"id": "j1"}
    assert response.headers["Location"] == "/api/v1/jobs/j1"
    spec = tuner.specs["j1"]
    assert spec.workloads == ("matmul:64", "dense:1x8x8") and spec.trials == 16
    assert (spec.priority, spec.allocator, spec.name, spec.device) == (-2, "uniform", "two",
                                                                       "rpc:pi")  # fmt: skip
    submit(client, model="zoo:mlp", workloads=[])
    assert tuner.specs["j2"].model == "zoo:mlp"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"workloads": ["matmul:64"], "trails": 3}, "unknown job spec field 'trails'"),
        ({}, "a job needs a model or at least one workload"),
        ({"workloads": ["matmul:64"], "trials": 0}, "trials must be a positive integer, got 0"),
        ({"workloads": "matmul:64"}, "workloads must be a list"),
        ({"workloads": ["matmul:64"], "trials": 2_000_000}, "Trials must be between 1 and"),
        ({"workloads": ["matmul:64"], "priority": 10**7}, "The priority must be between"),
        ({"model": "/etc/passwd"}, "model: give a zoo model (zoo:NAME) or upload the model"),
        ({"model": "zoo:gpt"}, "Unknown zoo model 'zoo:gpt' (zoo: zoo:cnn, zoo:mlp)."),
        ({"workloads": ["bad:1"]}, "unknown workload 'bad:1'"),  # the tuner's own refusal
        ({"workloads": ["matmul:64"], "warm_start": "library"}, "has no schedule library"),
        ([1, 2], "the body must be a JSON object, got list"),
    ],
)
def test_bad_specs_are_refused_with_400_naming_the_field(
    client: Any, tuner: FakeTuner, body: Any, expected: str
) -> None:
    assert expected in error(client.post("/api/v1/jobs", json=body), 400)
    assert tuner.specs == {}


def test_unreadable_bodies_are_400(client: Any) -> None:
    assert error(client.post("/api/v1/jobs", data="{nope", content_type="application/json"),
                 400).startswith("the body is not JSON")  # fmt: skip
    assert error(client.post("/api/v1/jobs"), 400) == "the request needs a JSON object as its body"


def test_a_warm_start_may_only_name_the_servers_library(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path, library=str(tmp_path / "lib"))
    submit(client, warm_start="library", reuse_only=True)
    submit(client, warm_start=str(tmp_path / "lib"))
    assert [s.warm_start for s in tuner.specs.values()] == [str(tmp_path / "lib")] * 2
    assert tuner.specs["j1"].reuse_only
    refused = client.post("/api/v1/jobs", json={"workloads": ["m"], "warm_start": "/home/x"})
    assert "only from the server's schedule library" in error(refused, 400)


def test_an_uploaded_model_is_kept_under_a_generated_name_and_submitted_by_path(
    client: Any, tuner: FakeTuner, tmp_path: Path
) -> None:
    response = upload(client, {"trials": 4}, "../models/My Net.onnx", ONNX)
    assert response.status_code == 201, response.get_json()
    spec = tuner.specs[response.get_json()["id"]]
    model = Path(spec.model)
    assert model.read_bytes() == ONNX and model.name == "My_Net.onnx"
    assert model.parent.parent == tmp_path / "up" / "models" and len(model.parent.name) == 32
    assert spec.name == "My Net.onnx" and spec.trials == 4  # named after the user's file
    named = upload(client, {"name": "mine", "priority": 2}, "n.onnx", ONNX)
    assert tuner.specs[named.get_json()["id"]].name == "mine"


def test_bad_model_uploads_are_refused_and_nothing_is_kept(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path, upload_limit=1024)
    big = upload(client, {}, "big.onnx", ONNX + bytes(2048))
    assert error(big, 413) == "big.onnx is 2.3 KiB; uploads are limited to 1 KiB."
    cases = {
        "net.onnx is a Python pickle; pickles are never loaded here (unpickling can run any "
        "code): export the model as ONNX, TFLite or Keras.": ("net.onnx", pickle.dumps([1])),
        "notes.onnx is not an ONNX model (an ONNX file starts with its IR version).": (
            "notes.onnx", b"just some text"
        ),
        "m.tflite is not a TFLite model (it lacks the TFL3 identifier).": ("m.tflite", ONNX),
        "weights.pt: only .onnx, .tflite or .keras files are accepted here.": (
            "weights.pt", pickle.dumps([1])
        ),
        "empty.onnx is empty.": ("empty.onnx", b""),
    }  # fmt: skip
    for expected, (name, raw) in cases.items():
        assert error(upload(client, {}, name, raw), 400) == expected
    assert "unknown job spec field 'x'" in error(upload(client, {"x": 1}, "m.onnx", ONNX), 400)
    both = upload(client, {"model": "zoo:cnn"}, "m.onnx", ONNX)
    assert error(both, 400) == "model: give a zoo model or a model file, not both"
    no_spec = client.post(
        "/api/v1/jobs", data={"model": (io.BytesIO(ONNX), "m.onnx")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert "needs a spec field" in error(no_spec, 400)
    assert "spec is not JSON" in error(upload_text(client, "{"), 400)
    assert tuner.specs == {} and stored_files(tmp_path / "up") == []


def upload_text(client: Any, spec_text: str) -> Any:
    return client.post(
        "/api/v1/jobs",
        data={"spec": spec_text, "model": (io.BytesIO(ONNX), "m.onnx")},
        content_type="multipart/form-data",
    )


def test_a_request_beyond_the_servers_limit_is_413_in_json(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path, upload_limit=1024)
    limit = parts_limit(client)
    huge = upload(client, {}, "huge.onnx", ONNX + bytes(limit))
    assert error(huge, 413) == "the request is too large: uploads are limited to 1 KiB"
    assert stored_files(tmp_path / "up") == []


def parts_limit(client: Any) -> int:
    return client.application.config["MAX_CONTENT_LENGTH"]


def test_the_tuners_refusal_of_an_upload_names_the_file_and_drops_it(
    client: Any, tuner: FakeTuner, tmp_path: Path
) -> None:
    def refuse(spec: Any) -> str:
        raise ValueError(f"model {spec.model}: not a valid ONNX model")

    tuner.submit = refuse  # type: ignore[method-assign]
    refused = upload(client, {}, "broken.onnx", ONNX)
    assert error(refused, 400) == "model broken.onnx: not a valid ONNX model"
    assert stored_files(tmp_path / "up") == []


# --- steering ---------------------------------------------------------------------------


def test_pause_resume_priority_and_cancel_answer_the_jobs_new_state(
    client: Any, tuner: FakeTuner
) -> None:
    job = submit(client)
    tuner.start(job)
    paused = client.post(f"/api/v1/jobs/{job}/pause", json={"reason": "lunch"})
    assert paused.status_code == 200
    assert paused.get_json() == tuner.infos[job].to_dict()
    assert paused.get_json()["state"] == "paused" and paused.get_json()["detail"] == "lunch"
    assert "only a queued or running job" in error(client.post(f"/api/v1/jobs/{job}/pause"), 409)
    resumed = client.post(f"/api/v1/jobs/{job}/resume")
    assert resumed.status_code == 200 and resumed.get_json()["state"] == "running"
    assert "not paused" in error(client.post(f"/api/v1/jobs/{job}/resume"), 409)
    raised = client.post(f"/api/v1/jobs/{job}/priority", json={"priority": 7})
    assert raised.status_code == 200 and raised.get_json()["priority"] == 7
    cancelled = client.post(f"/api/v1/jobs/{job}/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    assert "already ended" in error(client.post(f"/api/v1/jobs/{job}/cancel"), 409)
    assert "already ended" in error(
        client.post(f"/api/v1/jobs/{job}/priority", json={"priority": 1}), 409
    )


def test_steering_an_unknown_job_is_404(client: Any) -> None:
    for action in ("pause", "resume", "cancel"):
        assert error(client.post(f"/api/v1/jobs/j9/{action}"), 404) == "unknown job 'j9'"
    assert error(client.post("/api/v1/jobs/j9/priority", json={"priority": 1}), 404) == (
        "unknown job 'j9'"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, 'give the new priority as {"priority": N}'),
        ({"priority": "high"}, "The priority must be a whole number, got 'high'."),
        ({"priority": 2.5}, "The priority must be a whole number, got 2.5."),
        ({"priority": 10**7}, "The priority must be between -1,000,000 and 1,000,000."),
        ({"priority": None}, "Give a priority (a whole number; higher runs first)."),
    ],
)
def test_a_bad_priority_body_is_400(client: Any, body: Any, expected: str) -> None:
    job = submit(client)
    assert error(client.post(f"/api/v1/jobs/{job}/priority", json=body), 400) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"reason": 3}, "reason must be a string, got 3"),
        ({"reason": "x" * 501}, "reason must be at most 500 characters"),
        (["x"], "the body must be a JSON object, got list"),
    ],
)
def test_a_bad_pause_body_is_400(client: Any, tuner: FakeTuner, body: Any, expected: str) -> None:
    job = submit(client)
    assert error(client.post(f"/api/v1/jobs/{job}/pause", json=body), 400) == expected
    assert tuner.infos[job].state == "queued"


# --- who may change jobs ----------------------------------------------------------------


def test_changes_need_the_token_off_loopback_and_viewing_stays_open(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path, access=Access(host="0.0.0.0", token="s3cret"))
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.get("/api/v1/health").status_code == 200
    body = {"workloads": ["matmul:64"]}
    assert "need the access token" in error(client.post("/api/v1/jobs", json=body), 403)
    wrong = client.post("/api/v1/jobs", json=body, headers={"Authorization": "Bearer nope"})
    assert error(wrong, 403) == "The access token is not valid."
    other_scheme = client.post("/api/v1/jobs", json=body, headers={"Authorization": "s3cret"})
    error(other_scheme, 403)
    assert error(upload(client, {}, "m.onnx", ONNX), 403)
    assert tuner.specs == {} and stored_files(tmp_path / "up") == []
    bearer = client.post("/api/v1/jobs", json=body, headers={"Authorization": "Bearer s3cret"})
    assert bearer.status_code == 201
    header = client.post("/api/v1/jobs/j1/pause", headers={"X-Tuneloom-Token": "s3cret"})
    assert header.status_code == 200 and header.get_json()["state"] == "paused"
    assert upload(client, {}, "m.onnx", ONNX, **{"X-Tuneloom-Token": "s3cret"}).status_code == 201
    assert error(client.post("/api/v1/jobs/j1/resume"), 403)
    assert tuner.infos["j1"].state == "paused"


def test_without_a_token_an_exposed_dashboard_refuses_every_change(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    client = make_client(store, tuner, tmp_path, access=Access(host="0.0.0.0"))
    refused = client.post(
        "/api/v1/jobs", json={"workloads": ["m"]}, headers={"X-Tuneloom-Token": "anything"}
    )
    assert "Job controls are off: this dashboard is bound to 0.0.0.0" in error(refused, 403)
    assert tuner.specs == {}


def test_another_sites_page_may_not_change_jobs(client: Any, tuner: FakeTuner) -> None:
    body = {"workloads": ["matmul:64"]}
    evil = client.post("/api/v1/jobs", json=body, headers={"Origin": "http://evil.example"})
    assert "another site's page" in error(evil, 403)
    fetched = client.post("/api/v1/jobs", json=body, headers={"Sec-Fetch-Site": "cross-site"})
    error(fetched, 403)
    same = client.post("/api/v1/jobs", json=body, headers={"Origin": "http://localhost"})
    assert same.status_code == 201 and list(tuner.specs) == ["j1"]


# --- job files --------------------------------------------------------------------------


def archive_names(response: Any) -> dict[str, bytes | None]:
    with tarfile.open(fileobj=io.BytesIO(response.get_data()), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            for m in tar.getmembers()
        }


def test_a_finished_model_job_sends_its_compiled_model_and_database(
    client: Any, tuner: FakeTuner
) -> None:
    job = submit(client, model="zoo:cnn", workloads=[])
    tuner.finish(job)
    (tuner.runs / job / "database" / "elsewhere").symlink_to("/etc/passwd")
    response = client.get(f"/api/v1/jobs/{job}/artifact")
    assert response.status_code == 200 and response.mimetype == "application/gzip"
    assert response.headers["Content-Disposition"] == f"attachment; filename={job}.tar.gz"
    assert archive_names(response) == {
        "compiled": None,
        "compiled/model.so": b"\x7fELF library",
        "compiled/params": None,
        "compiled/params/weights.npz": b"PK weights",
        "database": None,
        "database/database_tuning_record.json": b'[0, ["trace"]]\n',
        "database/database_workload.json": b'["w"]\n',
    }  # the link is left out


def test_a_workload_job_sends_only_its_database(client: Any, tuner: FakeTuner) -> None:
    job = submit(client)
    tuner.finish(job)
    names = archive_names(client.get(f"/api/v1/jobs/{job}/artifact"))
    assert sorted(names) == [
        "database", "database/database_tuning_record.json", "database/database_workload.json"
    ]  # fmt: skip


def test_artifacts_of_unfinished_unknown_or_fileless_jobs_are_refused(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path, client: Any
) -> None:
    job = submit(client)
    assert "no files until it finishes" in error(client.get(f"/api/v1/jobs/{job}/artifact"), 409)
    assert error(client.get("/api/v1/jobs/j9/artifact"), 404) == "unknown job 'j9'"
    tuner.finish(job)
    for path in (tuner.runs / job / "database").iterdir():
        path.unlink()
    (tuner.runs / job / "database").rmdir()
    gone = client.get(f"/api/v1/jobs/{job}/artifact")
    assert error(gone, 409) == f"the database of job {job} is no longer on the server"
    fileless = make_client(store, ListOnlyTuner(tuner), tmp_path)
    assert error(fileless.get(f"/api/v1/jobs/{job}/artifact"), 404) == (
        "this tuner keeps no job files to fetch"
    )


def test_the_jobs_page_links_finished_jobs_to_their_files(
    store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    app = create_app(store, tuner, live=False, uploads_dir=tmp_path / "up")
    ctx = parts(app).context
    for spec in ({"workloads": ("m",)}, {"model": "zoo:cnn"}):
        job = tuner.submit(JobSpec(**spec))
        store.append([JobEvent(source="t", seq=len(tuner.specs), ts=1.0, job=job,
                               change="submitted")])  # fmt: skip
    tuner.finish("j2")
    infos = tuner.list()
    assert jobs_page.with_artifacts(ctx, infos) == {"j2"}
    rows = jobs_page.jobs_rows(ctx.view.snapshot(), infos, {"j2"})
    assert [row["files"] for row in rows] == ["", "[download](/api/v1/jobs/j2/artifact)"]
    fileless = parts(create_app(store, ListOnlyTuner(tuner), live=False)).context
    assert jobs_page.with_artifacts(fileless, infos) == set()
    assert app.server.test_client().get("/api/v1/jobs/j2/artifact").status_code == 200


@pytest.mark.browser
@pytest.mark.slow
def test_the_download_link_on_the_jobs_page_fetches_the_archive(
    page: Any, store: SQLiteStore, tuner: FakeTuner, tmp_path: Path
) -> None:
    tab, console = page
    job = tuner.submit(JobSpec(model="zoo:cnn"))
    store.append([JobEvent(source="t", seq=1, ts=1.0, job=job, change="submitted")])
    tuner.finish(job)
    app = create_app(store, tuner, uploads_dir=tmp_path / "up")
    with served(app) as running:
        tab.goto(running.url + "/jobs")
        link = tab.locator("#jobs-table a", has_text="download")
        expect(link).to_have_attribute("href", f"/api/v1/jobs/{job}/artifact")
        with tab.expect_download() as info:
            link.click()
        download = info.value
        assert download.suggested_filename == f"{job}.tar.gz"
        with tarfile.open(download.path(), mode="r:gz") as tar:
            assert "compiled/model.so" in tar.getnames()
    assert console.errors == []
