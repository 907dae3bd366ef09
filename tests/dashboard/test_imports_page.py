"""The Import page: samples and uploaded logs into the app's store, guarded like job controls."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from plotly.utils import PlotlyJSONEncoder

from collectors.hub import Hub
from collectors.importers import import_paths
from collectors.memory_store import MemoryStore
from collectors.sqlite_store import SQLiteStore
from dashboard.access import Access
from dashboard.app import create_app, parts
from dashboard.context import AppContext
from dashboard.pages import imports
from tests.dashboard.browser import served

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = {
    "tune-4-jobs": ROOT / "sample_logs" / "tune-4-jobs.jsonl",
    "metaschedule-matmul-128": ROOT / "sample_logs" / "metaschedule-matmul-128",
}


def autotvm_line(index: int, costs: list[float], error_no: int = 0, ts: float = 1000.0) -> str:
    """One AutoTVM (log format v0.2) measurement of a 1x64 by 32x64 dense."""
    return json.dumps(
        {
            "input": [
                "llvm -keys=cpu", "dense_nopack.x86",
                [["TENSOR", [1, 64], "float32"], ["TENSOR", [32, 64], "float32"], None, "float32"],
                {},
            ],
            "config": {"index": index, "code_hash": None,
                       "entity": [["tile_x", "sp", [-1, 2 ** (index % 5)]]]},
            "result": [costs, error_no, 0.5, ts + index],
            "version": 0.2,
            "tvm_version": "0.8.dev0",
        }
    )  # fmt: skip


AUTOTVM_LOG = (
    "\n".join(
        [
            autotvm_line(1, [2e-5]),
            autotvm_line(2, [1e-5, 1.2e-5]),
            "{not json at all",
            autotvm_line(3, [1e9], error_no=6),
        ]
    )
    + "\n"
).encode()


def layout_text(component: Any) -> str:
    """A component tree as the JSON the browser gets."""
    return json.dumps(component, cls=PlotlyJSONEncoder)


def data_url(raw: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(raw).decode()


def app_ctx(store: Any, **options: Any) -> AppContext:
    return parts(create_app(store, live=False, samples=SAMPLES, **options)).context


def test_a_sample_is_imported_once_and_every_page_sees_it(tmp_path: Path) -> None:
    store = MemoryStore()
    ctx = app_ctx(store, uploads_dir=tmp_path / "up")
    assert ctx.view.snapshot().records.empty  # cached before the import
    outcome = imports.import_sample(ctx, "tune-4-jobs", None)
    expected = import_paths([SAMPLES["tune-4-jobs"]], None)[0]
    assert outcome.done, outcome.message
    (summary,) = outcome.files
    assert summary["name"] == "tune-4-jobs" and summary["format"] == "tuneloom"
    assert summary["records"] == expected.records > 0
    assert summary["stored"] == expected.events == store.last_pos()
    assert outcome.message == f"Imported tune-4-jobs: {expected.events:,} new events of " + (
        f"{expected.events:,}."
    )
    snap = ctx.view.snapshot()  # the cached view picks the import up
    assert len(snap.records) == expected.records
    assert list(snap.jobs["job"]) == expected.jobs
    again = imports.import_sample(ctx, "tune-4-jobs", None)
    assert again.done and again.files[0]["stored"] == 0
    assert "already in this store" in again.message
    assert store.last_pos() == expected.events  # idempotent: nothing added twice
    assert not (tmp_path / "up").exists()  # a sample is read in place, never copied


def test_a_metaschedule_database_sample_reports_its_workloads() -> None:
    ctx = app_ctx(MemoryStore())
    outcome = imports.import_sample(ctx, "metaschedule-matmul-128", None, use_tvm=False)
    assert outcome.done, outcome.message
    (summary,) = outcome.files
    assert summary["format"] == "metaschedule" and summary["valid"] > 0
    rows = imports.workload_rows(summary)
    assert len(rows) == 1 and rows[0]["records"] == summary["records"]
    assert rows[0]["best"].endswith(("µs", "ms"))


def test_an_imported_metaschedule_database_joins_the_servers_schedule_library(
    tmp_path: Path,
) -> None:
    from tuneloom.commands.library import database_joiner
    from tuner.metaschedule.library import ScheduleLibrary

    folder = tmp_path / "library"
    ctx = app_ctx(MemoryStore(), on_database_imported=database_joiner(str(folder)))
    outcome = imports.import_sample(ctx, "metaschedule-matmul-128", None, use_tvm=False)
    assert outcome.done, outcome.message
    assert f"Schedule library {folder}: 1 schedule(s) added." in outcome.files[0]["notes"]
    assert [e.op_class for e in ScheduleLibrary(folder).entries()] == ["dense"]
    again = imports.import_sample(ctx, "metaschedule-matmul-128", None, use_tvm=False)
    assert f"Already in the schedule library {folder}." in again.files[0]["notes"]
    plain = imports.import_sample(ctx, "tune-4-jobs", None)  # not a database: no library note
    assert not any("library" in note for note in plain.files[0]["notes"])


def test_unknown_samples_and_empty_choices_are_named() -> None:
    ctx = app_ctx(MemoryStore())
    outcome = imports.import_sample(ctx, "nope", None)
    assert not outcome.done and "No sample named 'nope'" in outcome.message
    assert "tune-4-jobs" in outcome.message
    assert imports.import_sample(ctx, None, None).message == "Choose a sample first."


def test_an_uploaded_autotvm_log_is_imported_with_its_bad_lines(tmp_path: Path) -> None:
    store = MemoryStore()
    ctx = app_ctx(store, uploads_dir=tmp_path / "up")
    outcome = imports.import_upload(ctx, [data_url(AUTOTVM_LOG)], ["dense tuning.log"], None)
    assert outcome.done, outcome.message
    (summary,) = outcome.files
    assert summary["name"] == "dense tuning.log" and summary["format"] == "autotvm"
    assert (summary["records"], summary["valid"], summary["bad_lines"]) == (3, 2, 1)
    assert imports.bad_line_text(summary) == [f"line 3: {summary['bad_line_details'][0]['reason']}"]
    assert "not valid JSON" in summary["bad_line_details"][0]["reason"]
    assert imports.workload_rows(summary)[0]["best"] == "11 µs"
    assert len(store.records()) == 3
    # The log is kept in the managed folder under a generated folder, not the user's path.
    (kept,) = [p for p in (tmp_path / "up").rglob("*") if p.is_file()]
    assert kept.name == "dense_tuning.log" and kept.read_bytes() == AUTOTVM_LOG
    again = imports.import_upload(ctx, data_url(AUTOTVM_LOG), "copy.log", None)
    assert again.done and again.files[0]["stored"] == 0 and len(store.records()) == 3


def test_a_metaschedule_database_uploaded_as_two_files_is_one_import(tmp_path: Path) -> None:
    folder = SAMPLES["metaschedule-matmul-128"]
    names = ["database_workload.json", "database_tuning_record.json"]
    contents = [data_url((folder / n).read_bytes()) for n in names]
    ctx = app_ctx(MemoryStore(), uploads_dir=tmp_path)
    outcome = imports.import_upload(ctx, contents, names, None, use_tvm=False)
    assert outcome.done, outcome.message
    (summary,) = outcome.files
    assert summary["format"] == "metaschedule" and summary["records"] > 0
    assert summary["name"] == "database_tuning_record.json + database_workload.json"
    sample = imports.import_sample(ctx, "metaschedule-matmul-128", None, use_tvm=False)
    assert sample.done and sample.files[0]["stored"] == 0  # the same database, already in
    alone = imports.import_upload(ctx, contents[1], names[1], None, use_tvm=False)
    assert not alone.done and "no workload file" in alone.message
    assert str(tmp_path) not in alone.message  # the user's names, not the server's paths


def test_garbage_and_oversized_uploads_leave_the_store_and_folder_as_they_were(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    ctx = app_ctx(store, uploads_dir=tmp_path / "up", upload_limit=1024)
    imports.import_sample(ctx, "tune-4-jobs", None)
    before = store.last_pos()
    garbage = imports.import_upload(ctx, data_url(b"\x00\x9f\x92binary\xff\n" * 20), "x.log", None)
    assert not garbage.done and garbage.message.startswith("x.log: unknown log format")
    big = imports.import_upload(ctx, data_url(b"{}\n" * 1000), "big.jsonl", None)
    assert big.message == "big.jsonl is 2.9 KiB; uploads are limited to 1 KiB."
    wrong = imports.import_upload(ctx, data_url(b"{}"), "model.onnx", None)
    assert "only .json, .jsonl, .log or .txt files" in wrong.message
    empty = imports.import_upload(ctx, data_url(b""), "empty.log", None)
    assert empty.message == "empty.log is empty."
    assert store.last_pos() == before
    assert [p for p in (tmp_path / "up").rglob("*") if p.is_file()] == []


def test_imports_are_guarded_like_job_controls(tmp_path: Path) -> None:
    store = MemoryStore()
    guarded = app_ctx(store, access=Access(host="0.0.0.0", token="s3cret"), uploads_dir=tmp_path)
    outcome = imports.import_sample(guarded, "tune-4-jobs", None)
    assert not outcome.done and outcome.message == (
        "Imports need the access token: enter it above."
    )
    assert not imports.import_upload(guarded, data_url(AUTOTVM_LOG), "a.log", "wrong").done
    assert store.last_pos() == 0 and [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert imports.import_sample(guarded, "tune-4-jobs", "s3cret").done
    open_ = app_ctx(MemoryStore(), access=Access(host="0.0.0.0"))
    refused = imports.import_sample(open_, "tune-4-jobs", "anything")
    assert not refused.done and refused.message.startswith("Imports are off")


def test_a_read_only_store_offers_nothing_that_writes(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    SQLiteStore(path).close()
    before = path.read_bytes()
    store = SQLiteStore(path, read_only=True)
    try:
        app = create_app(store, live=False, samples=SAMPLES)
        ctx = parts(app).context
        assert not ctx.writable
        text = layout_text(imports.layout(ctx))
        assert "read-only" in text and "--allow-import" in text
        assert "import-upload" not in text and "import-sample-button" not in text
        outcome = imports.import_sample(ctx, "tune-4-jobs", None)
        assert not outcome.done and "read-only" in outcome.message
        assert not imports.import_upload(ctx, data_url(AUTOTVM_LOG), "a.log", None).done
        deps = app.server.test_client().get("/_dash-dependencies").get_json()
        assert not any("import-message" in d["output"] for d in deps)
    finally:
        store.close()
    assert path.read_bytes() == before
    assert not (tmp_path / "runs-uploads").exists()


def test_a_writable_store_file_keeps_uploads_beside_it(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    try:
        ctx = app_ctx(store)
        assert ctx.writable
        outcome = imports.import_upload(ctx, data_url(AUTOTVM_LOG), "a.log", None)
        assert outcome.done, outcome.message
        assert len(list((tmp_path / "runs-uploads" / "logs").rglob("a.log"))) == 1
        assert len(store.records()) == 3
    finally:
        store.close()


def test_imported_events_reach_the_live_hub() -> None:
    store, hub = MemoryStore(), Hub()
    ctx = parts(create_app(store, live=hub, samples=SAMPLES)).context
    with hub.subscribe() as sub:
        assert imports.import_sample(ctx, "tune-4-jobs", None).done
        batch = sub.drain(0)
    assert [s.pos for s in batch.resolve(store)] == list(range(1, store.last_pos() + 1))


def test_the_summary_view_names_format_counts_and_bad_lines(tmp_path: Path) -> None:
    ctx = app_ctx(MemoryStore(), uploads_dir=tmp_path)
    outcome = imports.import_upload(ctx, data_url(AUTOTVM_LOG), "dense.log", None)
    text = layout_text(imports.summary_view(outcome))
    for part in ("dense.log: autotvm", "3 (2 valid)", "line 3: not valid JSON", "/records"):
        assert part in text, part
    many = dict(outcome.files[0], bad_lines=12)
    assert imports.bad_line_text(many)[-1] == "... and 11 more bad lines."
    assert imports.format_cost(None) == "none valid"
    assert imports.format_cost(2.5e-3) == "2.5 ms" and imports.format_cost(3.0) == "3 s"


# --- in the browser ---------------------------------------------------------------------


def drop(tab: Any, selector: str, name: str, raw: bytes) -> None:
    """Drop a file on a drop zone, as dragging it from the desktop does."""
    tab.evaluate(
        """([selector, name, bytes]) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], name));
            const zone = document.querySelector(selector + " input[type=file]").parentElement;
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true,
                                                      cancelable: true}));
        }""",
        [selector, name, list(raw)],
    )


def upload(tab: Any, selector: str, name: str, raw: bytes) -> None:
    tab.set_input_files(
        f"{selector} input[type=file]",
        files=[{"name": name, "mimeType": "text/plain", "buffer": raw}],
    )


@pytest.mark.browser
@pytest.mark.slow
def test_choosing_a_sample_shows_its_summary_and_the_records_page_lists_it(page) -> None:
    tab, console = page
    store = MemoryStore()
    expected = import_paths([SAMPLES["tune-4-jobs"]], None)[0]
    with served(create_app(store, samples=SAMPLES)) as running:
        tab.goto(running.url + "/")
        tab.click("a[href='/import']")
        tab.click("#import-sample")
        tab.get_by_role("option", name="tune-4-jobs").click()
        tab.click("#import-sample-button")
        message = tab.locator("#import-message")
        expect(message).to_have_text(
            f"Imported tune-4-jobs: {expected.events:,} new events of {expected.events:,}."
        )
        summary = tab.locator(".import-file")
        expect(summary).to_contain_text("tune-4-jobs: tuneloom")
        expect(summary).to_contain_text(f"{expected.records:,} ({expected.valid:,} valid)")
        tab.click("a[href='/records']")
        expect(tab.locator("#records-message")).to_contain_text(
            f"{expected.records:,} of {expected.records:,} records match."
        )
        tab.click("a[href='/import']")
        tab.click("#import-sample")
        tab.get_by_role("option", name="tune-4-jobs").click()
        tab.click("#import-sample-button")
        expect(message).to_contain_text("already in this store")
    assert store.last_pos() == expected.events
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_uploads_import_a_log_and_refuse_oversized_and_garbage_files(page, tmp_path: Path) -> None:
    tab, console = page
    store = MemoryStore()
    app = create_app(store, samples=SAMPLES, uploads_dir=tmp_path, upload_limit=2048)
    with served(app) as running:
        tab.goto(running.url + "/import")
        message = tab.locator("#import-message")
        upload(tab, "#import-upload", "dense.log", AUTOTVM_LOG)
        expect(message).to_contain_text("Imported dense.log: ")
        summary = tab.locator(".import-file")
        expect(summary).to_contain_text("dense.log: autotvm")
        expect(summary).to_contain_text("line 3: not valid JSON")
        expect(summary).to_contain_text("3 (2 valid)")
        before = store.last_pos()
        # Over the limit: the browser turns it away and says why; nothing reaches the store.
        upload(tab, "#import-upload", "big.log", b"x" * 4096)
        expect(message).to_have_text("big.log is 4 KiB; uploads are limited to 2 KiB.")
        upload(tab, "#import-upload", "model.onnx", b"x")
        expect(message).to_contain_text("model.onnx: only .json, .jsonl, .log or .txt")
        drop(tab, "#import-upload", "dropped.log", b"y" * 3000)
        expect(message).to_have_text("dropped.log is 2.9 KiB; uploads are limited to 2 KiB.")
        # Garbage within the limit reaches the server, which cannot read it.
        upload(tab, "#import-upload", "noise.txt", b"\x00\x01\x02 not a log \xff\n" * 8)
        expect(message).to_contain_text("noise.txt: unknown log format")
        expect(tab.locator(".import-file")).to_have_count(0)
        assert store.last_pos() == before
        # A file dropped within the limit is imported like a chosen one.
        drop(tab, "#import-upload", "again.log", b"# another run\n" + AUTOTVM_LOG)
        expect(message).to_contain_text("Imported again.log: ")
        tab.click("a[href='/records']")
        expect(tab.locator("#records-message")).to_contain_text("6 of 6 records match.")
    names = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert names == ["again.log", "dense.log"]
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_imports_need_the_token_off_loopback(page) -> None:
    tab, console = page
    store = MemoryStore()
    access = Access(host="0.0.0.0", token="s3cret-token")
    with served(create_app(store, samples=SAMPLES, access=access)) as running:
        tab.goto(running.url + "/import")
        message = tab.locator("#import-message")
        tab.click("#import-sample-button")
        expect(message).to_have_text("Imports need the access token: enter it above.")
        upload(tab, "#import-upload", "dense.log", AUTOTVM_LOG)
        expect(message).to_contain_text("need the access token")
        assert store.last_pos() == 0
        tab.fill("#import-token-input", "s3cret-token")
        tab.click("#import-token-apply")
        expect(tab.locator("#import-token-status")).to_have_text("Token accepted.")
        upload(tab, "#import-upload", "dense.log", AUTOTVM_LOG)
        expect(message).to_contain_text("Imported dense.log")
    assert len(store.records()) == 3
    assert console.errors == []


@pytest.mark.browser
@pytest.mark.slow
def test_a_read_only_store_says_so_on_the_page(page, tmp_path: Path) -> None:
    tab, console = page
    path = tmp_path / "runs.db"
    SQLiteStore(path).close()
    store = SQLiteStore(path, read_only=True)
    try:
        with served(create_app(store, samples=SAMPLES)) as running:
            tab.goto(running.url + "/import")
            expect(tab.locator("#import-readonly")).to_contain_text("read-only")
            assert tab.locator("#import-upload").count() == 0
            assert tab.locator("#import-sample-button").count() == 0
    finally:
        store.close()
    assert console.errors == []


# --- `tuneloom serve` -------------------------------------------------------------------


def _served_with(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `tuneloom serve ARGV` hands to the dashboard server, which is not started; a
    sample is imported through an app on the served store while it is open."""
    import dashboard.server
    from tuneloom.cli import main

    seen: dict[str, Any] = {}

    def fake_serve(store: Any, control: Any, hub: Any, inspector: Any, **options: Any) -> None:
        app = create_app(store, samples=options["samples"], upload_limit=options["upload_limit"])
        ctx = parts(app).context
        outcome = imports.import_sample(ctx, "tune-4-jobs", None)
        seen.update(options, writable=ctx.writable, imported=outcome.done)

    monkeypatch.setattr(dashboard.server, "serve", fake_serve)
    assert main(["serve", *argv]) == 0
    return seen


def test_serve_opens_the_store_writable_only_with_allow_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    SQLiteStore(db).close()
    before = db.read_bytes()
    plain = _served_with(["--db", str(db), "--port", "0"], monkeypatch)
    assert (plain["writable"], plain["imported"]) == (False, False)
    assert set(plain["samples"]) >= {"tune-4-jobs", "metaschedule-matmul-128"}
    assert plain["upload_limit"] == 64 * 1024 * 1024
    assert db.read_bytes() == before and not (tmp_path / "runs-uploads").exists()
    allowed = _served_with(["--db", str(db), "--allow-import", "--upload-limit", "8"], monkeypatch)
    assert (allowed["writable"], allowed["imported"]) == (True, True)
    assert allowed["upload_limit"] == 8 * 1024 * 1024
    with SQLiteStore(db, read_only=True) as store:
        assert len(store.records()) > 0
    sample = _served_with(["--sample", "simulated-8-jobs"], monkeypatch)
    assert sample["writable"] and sample["imported"]  # an in-memory copy takes imports


def test_serve_refuses_a_bad_upload_limit(capsys: pytest.CaptureFixture[str]) -> None:
    from tuneloom.cli import main

    assert main(["serve", "--sample", "tune-4-jobs", "--upload-limit", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--upload-limit must be a positive number of MiB" in err


def test_requests_larger_than_an_upload_are_refused_before_any_callback(tmp_path: Path) -> None:
    from dashboard.app import REQUEST_MARGIN

    store = MemoryStore()
    app = create_app(store, live=False, uploads_dir=tmp_path, upload_limit=3 * 1024)
    assert app.server.config["MAX_CONTENT_LENGTH"] == 4 * 1024 + REQUEST_MARGIN
    client = app.server.test_client()
    client.get("/_dash-layout")
    body = (
        b'{"output": "import-message.children", "pad": "'
        + b"x" * (REQUEST_MARGIN + 8 * 1024)
        + b'"}'
    )
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 413
    assert store.last_pos() == 0 and list(tmp_path.iterdir()) == []
