"""The Jobs page's model choice: an uploaded model file (kept in the managed folder) or a zoo
model, submitted through the Control protocol; the tuner's verdict is shown on the page."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from plotly.utils import PlotlyJSONEncoder

from collectors.jobs import Catalog, JobInfo, JobSpec
from collectors.memory_store import MemoryStore
from dashboard.access import Access
from dashboard.app import create_app, parts
from dashboard.context import AppContext
from dashboard.pages import jobs
from tests.dashboard.browser import served
from tuner._base import TunerError

ZOO = ("zoo:cnn", "zoo:mobilenet", "zoo:resnet", "zoo:mlp")  # what the fake tuner offers
MODEL_BYTES = b"\x08\x07\x12\x04test" + bytes(range(256)) * 4  # opaque to the dashboard
# Starts as an ONNX file does (so the upload is kept) but is no model: the tuner refuses it.
CORRUPT_ONNX = b"\x08\x07" + b"not a model"


class FakeControl:
    """Records what is submitted; refuses models when ``model_error`` is set."""

    def __init__(self, model_error: str | None = None) -> None:
        self.specs: list[JobSpec] = []
        self.model_error = model_error

    def submit(self, spec: JobSpec) -> str:
        if spec.model and self.model_error:
            raise TunerError(f"model {spec.model}: {self.model_error}")
        self.specs.append(spec)
        return f"j{len(self.specs)}"

    def pause(self, job: str, reason: str | None = None) -> None:
        raise TunerError(f"unknown job {job}")

    resume = cancel = pause

    def reprioritize(self, job: str, priority: int) -> None:
        raise TunerError(f"unknown job {job}")

    def list(self) -> list[JobInfo]:
        return []

    def catalog(self) -> Catalog:
        return Catalog(models=ZOO, devices=("llvm", "rpc:pi"))


def layout_text(component: Any) -> str:
    """A component tree as the JSON the browser gets."""
    return json.dumps(component, cls=PlotlyJSONEncoder)


def data_url(raw: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def ctx_with(control: Any, tmp_path: Path, **options: Any) -> AppContext:
    app = create_app(MemoryStore(), control, live=False, uploads_dir=tmp_path / "up", **options)
    return parts(app).context


def form(**overrides: Any) -> dict[str, Any]:
    values = {"workloads": "", "trials": 8, "priority": 0, "target": "llvm", "name": None}
    return values | overrides


def stored_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*") if p.is_file())


def test_an_uploaded_model_is_submitted_as_a_path_inside_the_managed_folder(
    tmp_path: Path,
) -> None:
    control = FakeControl()
    ctx = ctx_with(control, tmp_path)
    given = "C:\\models\\tiny.onnx"  # browsers on Windows may send a path
    upload_id, message = jobs.upload_model(ctx, data_url(MODEL_BYTES), given, None)
    assert upload_id is not None and message == "Uploaded tiny.onnx (1 KiB)."
    done, message = jobs.submit_job(ctx, None, model_upload=upload_id, **form(name="tiny"))
    assert (done, message) == (True, "Submitted j1.")
    (spec,) = control.specs
    model = Path(spec.model)
    assert ctx.uploads.contains(model) and model.parent.name == upload_id
    assert model.name == "tiny.onnx" and model.read_bytes() == MODEL_BYTES
    assert spec.workloads == () and spec.trials == 8 and spec.name == "tiny"


def test_a_zoo_model_is_submitted_by_name(tmp_path: Path) -> None:
    control = FakeControl()
    ctx = ctx_with(control, tmp_path)
    done, message = jobs.submit_job(ctx, None, zoo="zoo:mobilenet", **form(workloads=""))
    assert done, message
    assert control.specs[0].model == "zoo:mobilenet"
    assert stored_files(tmp_path) == []


def test_bad_model_choices_are_refused_before_the_tuner_sees_them(tmp_path: Path) -> None:
    control = FakeControl()
    ctx = ctx_with(control, tmp_path)
    upload_id, _ = jobs.upload_model(ctx, data_url(MODEL_BYTES), "net.onnx", None)
    cases = [
        ({"zoo": "zoo:cnn", "model_upload": upload_id}, "not both"),
        ({"zoo": "zoo:gpt"}, "Unknown zoo model 'zoo:gpt'"),
        ({"zoo": "/etc/passwd"}, "Unknown zoo model"),
        ({"model_upload": "../../../etc/passwd"}, "no longer there"),
        ({"model_upload": "f" * 32}, "no longer there"),
        ({}, "choose a zoo model or upload a model file"),
    ]
    for choice, expected in cases:
        done, message = jobs.submit_job(ctx, None, **choice, **form())
        assert not done and expected in message, (choice, message)
    assert control.specs == []


def test_the_tuners_verdict_on_a_model_is_shown_with_the_files_own_name(tmp_path: Path) -> None:
    control = FakeControl(model_error="not a valid ONNX model")
    ctx = ctx_with(control, tmp_path)
    upload_id, _ = jobs.upload_model(ctx, data_url(CORRUPT_ONNX), "broken.onnx", None)
    done, message = jobs.submit_job(ctx, None, model_upload=upload_id, **form())
    assert (done, message) == (False, "model broken.onnx: not a valid ONNX model")
    done, message = jobs.submit_job(ctx, None, zoo="zoo:resnet", **form())
    assert (done, message) == (False, "model zoo:resnet: not a valid ONNX model")


def test_model_uploads_are_checked_and_nothing_bad_is_kept(tmp_path: Path) -> None:
    ctx = ctx_with(FakeControl(), tmp_path, upload_limit=1024)
    cases = {
        "weights.bin: only .onnx, .tflite or .keras files are accepted here.": (
            data_url(b"x"), "weights.bin"
        ),
        "big.keras is 2 KiB; uploads are limited to 1 KiB.": (data_url(b"x" * 2048), "big.keras"),
        "empty.onnx is empty.": (data_url(b""), "empty.onnx"),
        "junk.onnx is not an ONNX model (an ONNX file starts with its IR version).": (
            data_url(b"garbage"), "junk.onnx"
        ),
        "m.tflite is a Python pickle; pickles are never loaded here (unpickling can run any "
        "code): export the model as ONNX, TFLite or Keras.": (
            data_url(pickle.dumps([1, 2])), "m.tflite"
        ),
    }  # fmt: skip
    for expected, (contents, name) in cases.items():
        assert jobs.upload_model(ctx, contents, name, None) == (None, expected)
    assert stored_files(tmp_path) == []


def test_model_uploads_and_submissions_need_the_token_off_loopback(tmp_path: Path) -> None:
    control = FakeControl()
    ctx = ctx_with(control, tmp_path, access=Access(host="0.0.0.0", token="s3cret"))
    upload_id, message = jobs.upload_model(ctx, data_url(MODEL_BYTES), "m.onnx", None)
    assert upload_id is None and message == "Job controls need the access token: enter it above."
    assert jobs.upload_model(ctx, data_url(MODEL_BYTES), "m.onnx", "wrong")[1] == (
        "The access token is not valid."
    )
    assert stored_files(tmp_path) == []
    upload_id, _ = jobs.upload_model(ctx, data_url(MODEL_BYTES), "m.onnx", "s3cret")
    assert upload_id is not None
    done, message = jobs.submit_job(ctx, "wrong", model_upload=upload_id, **form())
    assert not done and control.specs == []
    assert jobs.submit_job(ctx, "s3cret", model_upload=upload_id, **form())[0]
    assert Path(control.specs[0].model).read_bytes() == MODEL_BYTES


def test_a_dashboard_without_a_tuner_offers_no_model_upload(tmp_path: Path) -> None:
    ctx = ctx_with(None, tmp_path)
    assert jobs.upload_model(ctx, data_url(MODEL_BYTES), "m.onnx", None)[0] is None
    text = layout_text(jobs.layout(ctx))
    assert "submit-model-upload" not in text
    live = ctx_with(FakeControl(), tmp_path, upload_limit=4096)
    text = layout_text(jobs.layout(live))
    assert '"max_size": 4096' in text and ".onnx,.tflite,.keras" in text
    assert all(name in text for name in ZOO) and '"rpc:pi"' in text
    assert 'submit-model"' not in text  # no free-text model path any more
    assert stored_files(tmp_path) == []


@pytest.mark.slow
def test_the_real_engine_refuses_a_corrupt_model_and_the_page_says_why(tmp_path: Path) -> None:
    from tuner.engine import Engine, EngineSettings

    store = MemoryStore()
    with Engine(EngineSettings(runs_dir=tmp_path / "runs"), store=store) as engine:
        app = create_app(store, engine, live=False, uploads_dir=tmp_path / "up")
        ctx = parts(app).context
        upload_id, _ = jobs.upload_model(ctx, data_url(CORRUPT_ONNX), "corrupt.onnx", None)
        done, message = jobs.submit_job(ctx, None, model_upload=upload_id, **form(trials=2))
        assert engine.list() == []
    assert not done and "corrupt.onnx" in message
    assert str(tmp_path) not in message  # the user's file name, not the server's path
    assert store.jobs().empty


# --- in the browser ---------------------------------------------------------------------


def choose_file(tab: Any, name: str, raw: bytes) -> None:
    tab.set_input_files(
        "#submit-model-upload input[type=file]",
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": raw}],
    )


@pytest.mark.browser
@pytest.mark.slow
def test_a_model_uploaded_on_the_jobs_page_reaches_the_control(page, tmp_path: Path) -> None:
    tab, console = page
    control = FakeControl()
    app = create_app(MemoryStore(), control, uploads_dir=tmp_path, upload_limit=4096)
    with served(app) as running:
        tab.goto(running.url + "/jobs")
        status = tab.locator("#submit-model-status")
        choose_file(tab, "huge.onnx", b"x" * 8192)
        expect(status).to_have_text("huge.onnx is 8 KiB; uploads are limited to 4 KiB.")
        choose_file(tab, "tiny.onnx", MODEL_BYTES)
        expect(status).to_have_text("Uploaded tiny.onnx (1 KiB).")
        tab.fill("#submit-trials", "4")
        tab.click("#submit-job")
        expect(tab.locator("#submit-message")).to_have_text("Submitted j1.")
        (spec,) = control.specs
        assert Path(spec.model).parent.parent.parent == tmp_path
        assert Path(spec.model).read_bytes() == MODEL_BYTES and spec.trials == 4
        assert spec.name == "tiny.onnx"  # named after the file when no name is given
        # Removing the upload and choosing a zoo model instead.
        tab.click("#submit-model-clear")
        expect(status).to_have_text("")
        tab.click("#submit-zoo")
        tab.get_by_role("option", name="zoo:mlp").click()
        tab.click("#submit-job")
        expect(tab.locator("#submit-message")).to_have_text("Submitted j2.")
        assert control.specs[1].model == "zoo:mlp"
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_a_bad_models_error_is_shown_on_the_page(page, tmp_path: Path) -> None:
    tab, console = page
    control = FakeControl(model_error="corrupt or truncated ONNX file")
    with served(create_app(MemoryStore(), control, uploads_dir=tmp_path)) as running:
        tab.goto(running.url + "/jobs")
        choose_file(tab, "broken.onnx", CORRUPT_ONNX)
        expect(tab.locator("#submit-model-status")).to_contain_text("Uploaded broken")
        tab.click("#submit-job")
        expect(tab.locator("#submit-message")).to_have_text(
            "model broken.onnx: corrupt or truncated ONNX file"
        )
        expect(tab.locator("#submit-message")).to_have_class("tl-message tl-error")
    assert control.specs == []
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_model_uploads_need_the_token_off_loopback(page, tmp_path: Path) -> None:
    tab, console = page
    control = FakeControl()
    access = Access(host="0.0.0.0", token="s3cret-token")
    with served(create_app(MemoryStore(), control, access=access, uploads_dir=tmp_path)) as run:
        tab.goto(run.url + "/jobs")
        status = tab.locator("#submit-model-status")
        choose_file(tab, "m.onnx", MODEL_BYTES)
        expect(status).to_have_text("Job controls need the access token: enter it above.")
        assert stored_files(tmp_path) == []
        tab.fill("#token-input", "s3cret-token")
        tab.click("#token-apply")
        expect(tab.locator("#token-status")).to_have_text("Token accepted.")
        choose_file(tab, "m.onnx", MODEL_BYTES)
        expect(status).to_have_text("Uploaded m.onnx (1 KiB).")
        tab.click("#submit-job")
        expect(tab.locator("#submit-message")).to_have_text("Submitted j1.")
    assert len(stored_files(tmp_path)) == 1 and len(control.specs) == 1
    assert console.errors == []
