"""Browser tests of the dashboard's tables (AG Grid): paging, sorting, filtering and
selecting a row, each checked against what the server computes; no console errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import expect

from collectors.events import RecordEvent
from collectors.memory_store import MemoryStore
from collectors.sink import EventSink
from dashboard import grid
from dashboard.app import create_app, parts
from dashboard.pages import convergence, records
from tests.dashboard.browser import served
from tests.dashboard.synthetic import synthetic_history
from tuner.simulation import simulate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Rows of a grid in the order shown (AG Grid may keep its DOM rows in another order).
CELLS_JS = """([g, c]) => Array.from(
    document.querySelectorAll(`#${g} .ag-center-cols-container .ag-row`))
  .sort((a, b) => Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')))
  .map(r => { const cell = r.querySelector(`.ag-cell[col-id='${c}']`);
              return cell ? cell.textContent.trim() : null; })"""


def cells(tab: Any, grid_id: str, column: str) -> list[str | None]:
    return tab.evaluate(CELLS_JS, [grid_id, column])


def wait_cells(tab: Any, grid_id: str, column: str, expected: list[str]) -> None:
    """Wait until the grid shows exactly ``expected`` in ``column``, top to bottom."""
    try:
        tab.wait_for_function(
            f"([g, c, want]) => JSON.stringify(({CELLS_JS})([g, c])) === JSON.stringify(want)",
            arg=[grid_id, column, expected],
        )
    except Exception:
        shown = cells(tab, grid_id, column)
        raise AssertionError(f"{grid_id} shows {shown} in {column}, not {expected}") from None


def summary_text(tab: Any, grid_id: str) -> Any:
    return tab.locator(f"#{grid_id} .ag-paging-row-summary-panel")


def header(tab: Any, grid_id: str, column: str) -> Any:
    return tab.locator(f"#{grid_id} .ag-header-cell[col-id='{column}'] .ag-header-cell-label")


def floating_filter(tab: Any, grid_id: str, column: str) -> Any:
    return tab.locator(f"#{grid_id} .ag-floating-filter[col-id='{column}'] input:visible")


def next_page(tab: Any, grid_id: str) -> None:
    tab.locator(f"#{grid_id} .ag-paging-button[aria-label='Next Page']").click()


def texts(values: pd.Series) -> list[str]:
    return [str(int(v)) for v in values]


@pytest.fixture
def many_tasks_store() -> MemoryStore:
    """Three synthetic jobs and three simulated ones of six tasks: 27 (job, task) rows."""
    store = MemoryStore()
    synthetic_history(store)
    simulate(jobs=3, clients=1, devices=2, tasks=6, iterations=2, candidates=4, store=store,
             records=True)  # fmt: skip
    return store


def is_rows_response(response: Any) -> bool:
    return "_dash-update-component" in response.url and "getRowsResponse" in (
        response.request.post_data or ""
    )


def test_records_page_sort_filter_and_select_on_the_server(sample_store: MemoryStore, page):
    tab, console = page
    app = create_app(sample_store)
    table = records.records_table(parts(app).context.view.snapshot(), [], [], None)
    total = len(table)
    assert total > 3 * records.PAGE_SIZE
    with served(app) as running:
        with tab.expect_response(is_rows_response) as first:
            tab.goto(running.url + "/records")
        answer = first.value.json()["response"]["records-table"]["getRowsResponse"]
        # The browser gets a block of rows and the count, never the whole table.
        assert answer["rowCount"] == total and len(answer["rowData"]) == grid.BLOCK_SIZE
        wait_cells(tab, "records-table", "pos", texts(table["pos"][:25]))
        expect(summary_text(tab, "records-table")).to_contain_text(f"1 to 25 of {total}")

        # Sorting by latency, then the second page of that order.
        by_latency = table.sort_values("latency_ms", kind="stable", na_position="last")
        header(tab, "records-table", "latency_ms").click()
        wait_cells(tab, "records-table", "pos", texts(by_latency["pos"][:25]))
        next_page(tab, "records-table")
        wait_cells(tab, "records-table", "pos", texts(by_latency["pos"][25:50]))
        expect(summary_text(tab, "records-table")).to_contain_text(f"26 to 50 of {total}")
        header(tab, "records-table", "latency_ms").click()  # descending
        by_latency_desc = table.sort_values(
            "latency_ms", ascending=False, kind="stable", na_position="last"
        )
        wait_cells(tab, "records-table", "pos", texts(by_latency_desc["pos"][:25]))

        # Filtering with the row under the headers: a text filter, then a number one as well.
        matmul = table[table["task"].str.contains("matmul", case=False)]
        floating_filter(tab, "records-table", "task").fill("MatMul")
        expect(tab.locator("#records-message")).to_have_text(
            f"{len(matmul):,} of {total:,} records match."
        )
        wait_cells(tab, "records-table", "task", list(
            matmul.sort_values("latency_ms", ascending=False, kind="stable",
                               na_position="last")["task"][:25]))  # fmt: skip
        pos = int(matmul["pos"].iloc[len(matmul) // 2])
        floating_filter(tab, "records-table", "pos").fill(str(pos))
        expect(tab.locator("#records-message")).to_have_text(f"1 of {total:,} records match.")
        wait_cells(tab, "records-table", "pos", [str(pos)])

        # A click on a row selects its record for the inspector.
        tab.locator("#records-table .ag-row .ag-cell[col-id='task']").first.click()
        expect(tab.locator("#records-selection")).to_contain_text(f"Record {pos}")
        expect(tab.locator("#records-table .ag-row-selected")).to_have_count(1)
    assert console.errors == []


def test_records_grid_follows_the_job_filter(sample_store: MemoryStore, page) -> None:
    tab, console = page
    app = create_app(sample_store)
    snap = parts(app).context.view.snapshot()
    job = str(snap.jobs["job"].iloc[0])
    mine = records.records_table(snap, [job], [], None)
    with served(app) as running:
        tab.goto(running.url + "/records")
        tab.wait_for_selector("#records-table .ag-row")
        next_page(tab, "records-table")
        expect(summary_text(tab, "records-table")).to_contain_text("26 to 50")
        tab.click("#filter-jobs")
        tab.get_by_role("option", name=snap.labels.get(job, job), exact=True).click()
        expect(tab.locator("#records-message")).to_contain_text(
            f"{len(mine):,} of {len(mine):,} records match."
        )
        # Another selection starts again from its first page.
        wait_cells(tab, "records-table", "pos", texts(mine["pos"][:25]))
        expect(summary_text(tab, "records-table")).to_contain_text(f"1 to 25 of {len(mine)}")
    assert console.errors == []


def test_records_grid_takes_in_records_that_arrive_while_it_is_open(
    sample_store: MemoryStore, page
) -> None:
    tab, console = page
    app = create_app(sample_store)  # follows the store by polling it
    snap = parts(app).context.view.snapshot()
    before = len(snap.records)
    job, task = str(snap.records["job"].iloc[0]), str(snap.records["task"].iloc[0])
    with served(app) as running:
        tab.goto(running.url + "/records")
        expect(tab.locator("#records-message")).to_have_text(
            f"{before:,} of {before:,} records match."
        )
        sink = EventSink(sample_store, source="late")
        for candidate in range(3):
            sink.emit(RecordEvent, job=job, task=task, candidate=candidate, run_secs=(1e-3,))
        after = before + 3
        expect(tab.locator("#records-message")).to_have_text(
            f"{after:,} of {after:,} records match."
        )
        expect(summary_text(tab, "records-table")).to_contain_text(f"of {after}")
    assert console.errors == []


def test_convergence_summary_pages_sorts_filters_and_selects(many_tasks_store, page) -> None:
    tab, console = page
    app = create_app(many_tasks_store)
    summary = convergence.task_summary(parts(app).context.view.snapshot(), [], [])
    assert len(summary) > 15
    with served(app) as running:
        tab.goto(running.url + "/convergence")
        tab.wait_for_selector("#convergence-summary .ag-row")
        expect(summary_text(tab, "convergence-summary")).to_contain_text(
            f"1 to 15 of {len(summary)}"
        )
        next_page(tab, "convergence-summary")
        expect(summary_text(tab, "convergence-summary")).to_contain_text(
            f"16 to {len(summary)} of {len(summary)}"
        )
        wait_cells(tab, "convergence-summary", "task", list(summary["task"][15:]))

        # Sorted in the browser (tasks without a valid measurement first), on the same page.
        header(tab, "convergence-summary", "best_ms").click()
        fastest = summary.sort_values("best_ms", kind="stable", na_position="first")
        wait_cells(tab, "convergence-summary", "task", list(fastest["task"][15:]))

        floating_filter(tab, "convergence-summary", "task").fill("t3")
        t3 = fastest[fastest["task"].str.contains("t3")]
        assert 0 < len(t3) < 15 and t3["best_pos"].notna().all()
        wait_cells(tab, "convergence-summary", "best_pos", texts(t3["best_pos"]))

        tab.locator("#convergence-summary .ag-row[row-index='0'] .ag-cell").first.click()
        best = int(t3["best_pos"].iloc[0])
        expect(tab.locator("#convergence-selection")).to_contain_text(f"Record {best}")
    assert console.errors == []


def test_jobs_table_pages_sorts_filters_and_selects(page) -> None:
    tab, console = page
    store = MemoryStore()
    simulate(jobs=30, clients=1, devices=2, tasks=1, iterations=1, candidates=1, store=store)
    app = create_app(store)
    jobs = parts(app).context.view.snapshot().jobs
    with served(app) as running:
        tab.goto(running.url + "/jobs")
        tab.wait_for_selector("#jobs-table .ag-row")
        expect(summary_text(tab, "jobs-table")).to_contain_text("1 to 25 of 30")
        next_page(tab, "jobs-table")
        wait_cells(tab, "jobs-table", "job", list(jobs["job"][25:]))

        header(tab, "jobs-table", "job").click()
        header(tab, "jobs-table", "job").click()  # descending
        ordered = sorted(jobs["job"], reverse=True)
        wait_cells(tab, "jobs-table", "job", ordered[25:])  # still the second page

        wanted = ordered[3]
        floating_filter(tab, "jobs-table", "job").fill(wanted)
        wait_cells(tab, "jobs-table", "job", [wanted])
        tab.locator("#jobs-table .ag-row .ag-cell[col-id='job']").first.click()
        expect(tab.locator("#jobs-table .ag-row-selected")).to_have_count(1)
        # A read-only dashboard: the controls say so for the selected job.
        expect(tab.locator("#jobs-pause")).to_be_disabled()
    assert console.errors == []


def dense_log(shapes: int) -> bytes:
    """An AutoTVM log of one measurement for each of ``shapes`` dense workloads."""
    lines = []
    for i in range(shapes):
        lines.append(json.dumps({
            "input": ["llvm -keys=cpu", "dense_nopack.x86",
                      [["TENSOR", [1, 64 + i], "float32"], ["TENSOR", [32, 64 + i], "float32"],
                       None, "float32"], {}],
            "config": {"index": i, "code_hash": None, "entity": [["tile_x", "sp", [-1, 2]]]},
            "result": [[(i + 1) * 1e-5], 0, 0.5, 1000.0 + i],
            "version": 0.2, "tvm_version": "0.8.dev0",
        }))  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def test_import_summary_table_pages_sorts_and_filters(page, tmp_path: Path) -> None:
    tab, console = page
    store = MemoryStore()
    app = create_app(store, uploads_dir=tmp_path)
    with served(app) as running:
        tab.goto(running.url + "/import")
        tab.set_input_files(
            "#import-upload input[type=file]",
            files=[{"name": "dense.log", "mimeType": "text/plain", "buffer": dense_log(20)}],
        )
        expect(tab.locator("#import-message")).to_contain_text("Imported dense.log: ")
        table = ".import-file .tl-grid"
        tab.wait_for_selector(f"{table} .ag-row")
        expect(tab.locator(f"{table} .ag-paging-row-summary-panel")).to_contain_text(
            "1 to 15 of 20"
        )
        tab.locator(f"{table} .ag-paging-button[aria-label='Next Page']").click()
        expect(tab.locator(f"{table} .ag-paging-row-summary-panel")).to_contain_text(
            "16 to 20 of 20"
        )
        first_cell = f"{table} .ag-row[row-index='0'] .ag-cell[col-id='workload']"
        tab.locator(f"{table} .ag-header-cell[col-id='workload'] .ag-header-cell-label").click()
        tab.locator(f"{table} .ag-header-cell[col-id='workload'] .ag-header-cell-label").click()
        keys = [w["key"] for w in log_workloads(tmp_path / "same.log")]
        expect(tab.locator(first_cell)).to_have_text(max(keys))
        tab.locator(f"{table} .ag-floating-filter[col-id='workload'] input:visible").fill("83")
        expect(tab.locator(f"{table} .ag-paging-row-summary-panel")).to_contain_text(
            f"of {sum('83' in k for k in keys)}"
        )
        expect(tab.locator(first_cell)).to_contain_text("83")
    assert console.errors == []


def log_workloads(path: Path) -> list[dict[str, Any]]:
    """The workloads the import summary names for ``dense_log(20)`` (read into no store)."""
    from collectors.importers import import_paths

    path.write_bytes(dense_log(20))
    return import_paths([path], None)[0].to_dict()["workloads"]
